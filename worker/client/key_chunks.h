// How a worker cuts the keys of one pull or push into RPCs, and the packing
// of keys and rows into and out of them.
//
// A large pull or push is sent to a server as several RPCs, all in flight
// at once, of at most kMaxChunkKeys keys and kMaxChunkBytes of values each:
// the server looks up one chunk while another is on the wire, and the
// worker copies rows out of one while others arrive. The chunks of a push
// may be applied in any order, which is fine as its keys are distinct.
// Pure functions; thread-safe.
#ifndef PS_WORKER_CLIENT_KEY_CHUNKS_H_
#define PS_WORKER_CLIENT_KEY_CHUNKS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace ps {

inline constexpr size_t kMaxChunkKeys = 8192;
inline constexpr size_t kMaxChunkBytes = 2 << 20;

// The part of one sparse table in a request: positions in that table's
// keys, increasing.
struct TableChunk {
  size_t table = 0;
  absl::Span<const uint32_t> pos;
};

// The keys of one RPC to `server`, of one or more tables.
struct RequestChunk {
  size_t server = 0;
  std::vector<TableChunk> tables;

  size_t num_keys() const {
    size_t n = 0;
    for (const TableChunk& t : tables) n += t.pos.size();
    return n;
  }
};

// Cuts the keys of several tables into RPCs: pos[t][s] holds the positions
// of table t's keys owned by server s (rows of dims[t] floats). Per server,
// the tables' keys fill requests in table order, each request of at most
// kMaxChunkKeys keys and kMaxChunkBytes of rows (a request may hold parts of
// several tables; a single row larger than kMaxChunkBytes gets a request of
// its own). The chunks point into `pos`, which must outlive them.
std::vector<RequestChunk> ChunkTables(
    const std::vector<std::vector<std::vector<uint32_t>>>& pos,
    absl::Span<const int> dims);

// Appends keys[pos[0]], keys[pos[1]], ... packed little-endian to `out`.
void AppendKeys(absl::Span<const uint64_t> keys, absl::Span<const uint32_t> pos,
                std::string* out);

// Appends rows pos[0], pos[1], ... of `values` (dim floats each) to `out`,
// packed little-endian.
void AppendRows(absl::Span<const float> values, absl::Span<const uint32_t> pos,
                int dim, std::string* out);

// Row j of dst (dim floats) = row pos[j] of src.
void GatherRows(const float* src, absl::Span<const uint32_t> pos, int dim,
                float* dst);

// Row pos[j] of dst = row j of src.
void ScatterRows(const float* src, absl::Span<const uint32_t> pos, int dim,
                 float* dst);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_KEY_CHUNKS_H_
