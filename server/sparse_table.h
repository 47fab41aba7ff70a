// A server's shard of one sparse embedding table: 64-bit keys to rows of
// `dim` floats plus the rule's optimizer state.
//
// Rows are created on first pull (or push) with a deterministic per-key
// initializer, so every server and every restart creates the same row for a
// key. Pull and Push are thread-safe; keys are split into sub-shards
// (common/hash.h SubShardForKey), each with its own lock, so calls touching
// different sub-shards never contend.
#ifndef PS_SERVER_SPARSE_TABLE_H_
#define PS_SERVER_SPARSE_TABLE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/config.pb.h"

namespace ps {

struct SparseTableOptions {
  std::string name;
  uint32_t table_id = 0;
  int dim = 8;
  // Sub-shards, each with its own lock. Default: 16.
  int shard_num = 16;
  OptimizerConfig optimizer;
  InitializerConfig initializer;
  // Seed of the per-key initializer. Default: 0.
  uint64_t init_seed = 0;
};

class SparseTable {
 public:
  // An in-memory table. InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<SparseTable>> Create(
      const SparseTableOptions& options);
  virtual ~SparseTable() = default;

  virtual const std::string& name() const = 0;
  virtual int dim() const = 0;

  // values[i * dim .. (i + 1) * dim) = weights of keys[i], creating missing
  // rows. InvalidArgument when values.size() != keys.size() * dim.
  virtual absl::Status Pull(absl::Span<const uint64_t> keys,
                            absl::Span<float> values) = 0;

  // Applies the rule to the row of every keys[i] with gradient
  // grads[i * dim .. (i + 1) * dim). Duplicate keys are applied in turn.
  // InvalidArgument (and nothing applied) when the size is wrong or a
  // gradient is not finite.
  virtual absl::Status Push(absl::Span<const uint64_t> keys,
                            absl::Span<const float> grads) = 0;

  // GEO: adds deltas[i * dim .. (i + 1) * dim) to the weights of keys[i]
  // (creating missing rows first); the rule is not applied. Same errors as
  // Push, and nothing is applied on an error.
  virtual absl::Status AddDeltas(absl::Span<const uint64_t> keys,
                                 absl::Span<const float> deltas) = 0;

  // Rows stored.
  virtual int64_t size() const = 0;
  // Bytes used by rows and index (approximate).
  virtual int64_t memory_bytes() const = 0;
};

// The value a row of `key` starts with at position i (shared by every
// storage so restarts and reshards agree).
float InitialWeight(const InitializerConfig& init, uint64_t seed, uint64_t key,
                    int i);

// InvalidArgument naming the first non-finite value, or OK.
absl::Status CheckFinite(absl::Span<const float> values,
                         absl::string_view what);

}  // namespace ps

#endif  // PS_SERVER_SPARSE_TABLE_H_
