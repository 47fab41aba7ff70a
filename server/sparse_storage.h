// Where a sparse table's rows live: the Storage of "Sparse table = Accessor +
// Rule + Storage" (DESIGN.md). A row is `stride` contiguous floats (weights,
// then the rule's state); the table owns the rule and the initializer and
// reaches its rows only through ForEachShardGroup.
//
// Implementations:
//   MemoryStorage (memory_storage.cc): every row in memory, sub-sharded
//     open-addressing index over 64-byte aligned row chunks.
//   TieredStorage (tiered_storage.h): a memory tier bounded by a byte budget
//     over a KvStore (RocksDB), misses read in one MultiGet per sub-shard
//     group, cold rows written back in batches.
//
// Thread-safety: every method may be called concurrently. Keys are split
// into sub-shards (common/hash.h SubShardForKey), each with its own lock;
// ForEachShardGroup holds one sub-shard lock at a time.
#ifndef PS_SERVER_SPARSE_STORAGE_H_
#define PS_SERVER_SPARSE_STORAGE_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/types/span.h"

namespace ps {

// Counters of a storage; memory storage reports only rows_in_memory.
struct StorageStats {
  int64_t rows_in_memory = 0;
  // Rows in the disk tier (RocksDB's estimate; approximate).
  int64_t rows_on_disk = 0;
  // Row lookups answered by the memory tier / that went to the disk tier.
  int64_t hits = 0;
  int64_t misses = 0;
  // Rows dropped from the memory tier, and how many of them were dirty and
  // written back.
  int64_t evictions = 0;
  int64_t write_backs = 0;
  int64_t memory_bytes = 0;
};

class SparseStorage {
 public:
  // Fills a new row (stride floats) of `key`.
  using InitRow = absl::FunctionRef<void(uint64_t key, float* row)>;
  // Works on one sub-shard group: rows[j] is the row of keys[idx[j]], idx in
  // increasing order; duplicate keys share one row.
  using GroupFn = absl::FunctionRef<void(absl::Span<const uint32_t> idx,
                                         absl::Span<float* const> rows)>;

  virtual ~SparseStorage() = default;

  // Floats per row.
  virtual int stride() const = 0;

  // Groups `keys` by sub-shard. For each group in turn, with its sub-shard
  // locked: finds every row of the group, creating missing ones with `init`,
  // then calls fn(idx, rows). `modify` says whether fn writes the rows (a
  // tiered storage then marks them dirty). The rows are valid only inside
  // fn.
  // Errors (tiered storage only: a disk read or write-back failed, or a
  // stored row is malformed) leave the failing group and the ones after it
  // untouched (fn not called for them); the groups before it were done.
  [[nodiscard]] virtual absl::Status ForEachShardGroup(
      absl::Span<const uint64_t> keys, bool modify, InitRow init,
      GroupFn fn) = 0;

  // Makes every row durable (tiered: writes dirty rows back). Memory: no-op.
  [[nodiscard]] virtual absl::Status Flush() = 0;

  // Rows stored (tiered: in memory plus the disk estimate, approximate).
  virtual int64_t size() const = 0;
  // Bytes used in memory by rows and index (approximate).
  virtual int64_t memory_bytes() const = 0;
  virtual StorageStats stats() const = 0;
};

// Positions of `keys` sorted by sub-shard: for sub-shard s, the positions
// order[begin[s] .. begin[s + 1]) in increasing order. begin has
// shard_num + 1 entries.
void GroupBySubShard(absl::Span<const uint64_t> keys, int shard_num,
                     std::vector<uint32_t>* order,
                     std::vector<uint32_t>* begin);

}  // namespace ps

#endif  // PS_SERVER_SPARSE_STORAGE_H_
