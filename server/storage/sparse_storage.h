// Where a sparse table's rows live: the Storage of "Sparse table = Accessor +
// Rule + Storage" (docs/architecture.md). A row is `stride` contiguous floats
// (weights, then the rule's state); the table owns the rule and the initializer
// and reaches its rows only through ForEachShardGroup.
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
// ForEachShardGroup holds one sub-shard lock at a time per thread, and with
// a thread pool works on several groups at once (see ForEachShardGroup).
#ifndef PS_SERVER_STORAGE_SPARSE_STORAGE_H_
#define PS_SERVER_STORAGE_SPARSE_STORAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ps {

// Counters of a storage; memory storage reports only rows_in_memory.
struct StorageStats {
  int64_t rows_in_memory = 0;
  // Rows the memory tier holds within its budget (tiered storage; 0 for
  // memory storage, which has no budget).
  int64_t memory_capacity_rows = 0;
  // Rows in the disk tier, exact (kept in count records written with the
  // rows); a row may be there and, newer, in memory too. The table holds
  // size() rows, not rows_in_memory + rows_on_disk.
  int64_t rows_on_disk = 0;
  // Row lookups answered by the memory tier / that went to the disk tier.
  int64_t hits = 0;
  int64_t misses = 0;
  // Rows dropped from the memory tier, and how many of them were dirty and
  // written back.
  int64_t evictions = 0;
  int64_t write_backs = 0;
  int64_t memory_bytes = 0;
  // Accessor counters, filled by the table (sparse_table.h), not the
  // storage: keys counted but not yet admitted, rows admitted, pushes of
  // not-admitted keys dropped, rows deleted by shrink.
  int64_t pending_admissions = 0;
  int64_t admitted = 0;
  int64_t dropped_pushes = 0;
  int64_t shrunk = 0;
};

class ThreadPool;

class SparseStorage {
 public:
  // Whether a key without a row gets one now (admission).
  using AdmitFn = absl::FunctionRef<bool(uint64_t key)>;
  // Fills a new row (stride floats) of `key`.
  using InitRow = absl::FunctionRef<void(uint64_t key, float* row)>;
  // Works on one sub-shard group: rows[j] is the row of keys[idx[j]], idx in
  // increasing order; duplicate keys share one row; nullptr for a key
  // without a row that admit refused.
  using GroupFn = absl::FunctionRef<void(absl::Span<const uint32_t> idx,
                                         absl::Span<float* const> rows)>;
  // A row to delete? (key, row of stride floats).
  using RowPredicate = absl::FunctionRef<bool(uint64_t key, const float* row)>;
  using RowVisitor = absl::FunctionRef<void(uint64_t key, const float* row)>;

  virtual ~SparseStorage() = default;

  // Floats per row.
  virtual int stride() const = 0;

  // Groups `keys` by sub-shard. For each group, with its sub-shard locked:
  // finds every row of the group; a key without a row (in any tier) gets a
  // new one filled by `init` when admit(key) says so; then calls
  // fn(idx, rows). `modify` says whether fn writes the rows (a tiered
  // storage then marks them dirty). The rows are valid only inside fn.
  // With a thread pool set (SetThreadPool) and enough keys, groups run in
  // parallel on the pool and the calling thread, so admit, init and fn must
  // be safe to call concurrently for different sub-shards.
  // Errors (tiered storage only: a disk read or write-back failed, or a
  // stored row is malformed) leave the failing group untouched (fn not
  // called for it) and the first error is returned; other groups may have
  // been done (sequentially: exactly the groups before the failing one).
  [[nodiscard]] virtual absl::Status ForEachShardGroup(
      absl::Span<const uint64_t> keys, bool modify, AdmitFn admit, InitRow init,
      GroupFn fn) = 0;

  // Deletes, from every tier, each row for which pred(key, row) is true;
  // returns how many it deleted. Takes one sub-shard lock at a time, so
  // pulls and pushes go on meanwhile. Tiered: a disk scan or delete error,
  // after which the rows deleted so far stay deleted.
  [[nodiscard]] virtual absl::StatusOr<int64_t> EraseIf(RowPredicate pred) = 0;

  // Calls visit(key, row) once for every stored row, e.g. to dump or export
  // a table. Rows changed concurrently may be seen before or after the
  // change. Tiered: writes dirty rows back first, then scans the disk tier.
  [[nodiscard]] virtual absl::Status ForEachRow(RowVisitor visit) = 0;

  // Tiered: writes dirty rows back, then a consistent copy of the disk tier
  // into `dir` (a KvStore checkpoint: hard links). Memory storage:
  // Unimplemented (the table dumps its rows with ForEachRow instead).
  [[nodiscard]] virtual absl::Status CheckpointDisk(const std::string& dir) {
    return absl::UnimplementedError("storage without a disk tier: " + dir);
  }

  // Runs sub-shard groups of large calls on `pool` (not owned; nullptr:
  // sequentially on the caller's thread, the default). Call before use.
  void SetThreadPool(ThreadPool* pool) { pool_ = pool; }

  // Makes every row durable (tiered: writes dirty rows back). Memory: no-op.
  [[nodiscard]] virtual absl::Status Flush() = 0;

  // Rows stored (tiered: in memory plus the disk estimate, approximate).
  virtual int64_t size() const = 0;
  // Bytes used in memory by rows and index (approximate).
  virtual int64_t memory_bytes() const = 0;
  virtual StorageStats stats() const = 0;

 protected:
  ThreadPool* pool() const { return pool_; }

 private:
  ThreadPool* pool_ = nullptr;
};

// Keys per call from which ForEachShardGroup runs groups on the pool.
inline constexpr size_t kParallelGroupKeys = 2048;

// Positions of `keys` sorted by sub-shard: for sub-shard s, the positions
// order[begin[s] .. begin[s + 1]) in increasing order. begin has
// shard_num + 1 entries.
void GroupBySubShard(absl::Span<const uint64_t> keys, int shard_num,
                     std::vector<uint32_t>* order,
                     std::vector<uint32_t>* begin);

// The body of every ForEachShardGroup: groups `keys` by sub-shard
// (GroupBySubShard) and calls group(s, idx, rows) for every sub-shard s with
// keys, idx being its key positions and rows a span of idx.size() slots for
// the group's row pointers. In turn, stopping at the first error, or, with a
// pool and at least kParallelGroupKeys keys, in parallel on the pool.
// Returns the first error (in sub-shard order).
using ShardGroupFn = absl::FunctionRef<absl::Status(
    size_t s, absl::Span<const uint32_t> idx, absl::Span<float*> rows)>;
absl::Status RunShardGroups(ThreadPool* pool, absl::Span<const uint64_t> keys,
                            int shard_num, ShardGroupFn group);

}  // namespace ps

#endif  // PS_SERVER_STORAGE_SPARSE_STORAGE_H_
