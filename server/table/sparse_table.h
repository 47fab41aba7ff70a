// A server's shard of one sparse embedding table: 64-bit keys to rows of
// `dim` floats plus the rule's optimizer state.
//
// The table is the rule and the initializer over a SparseStorage
// (sparse_storage.h): MemoryStorage keeps every row in memory; TieredStorage
// keeps the hot rows within a byte budget over RocksDB, in
// <storage.dir>/<name>/server-<rank>, and its rows survive a restart.
//
// Rows are created on first pull (or push) with a deterministic per-key
// initializer, so every server and every restart creates the same row for a
// key. Pull and Push are thread-safe; keys are split into sub-shards
// (common/hash.h SubShardForKey), each with its own lock, so calls touching
// different sub-shards never contend.
//
// With an accessor (options.accessor, see AccessorConfig in
// proto/config.proto) a row is [weights (dim) | rule state | show | click |
// last-seen step]: pushes add their shows and clicks (decayed to the current
// step) and stamp the step; admission (min_count > 1) gives a key a row only
// at its min_count-th push, counting it meanwhile in bounded per-sub-shard
// counters; Shrink deletes old and low-score rows.
#ifndef PS_SERVER_TABLE_SPARSE_TABLE_H_
#define PS_SERVER_TABLE_SPARSE_TABLE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/initializer.h"
#include "proto/config.pb.h"
#include "server/storage/sparse_storage.h"

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
  // Where rows live (type, memory budget, root dir, RocksDB settings).
  // Default: MEMORY.
  SparseStorageConfig storage;
  // Counts, admission and shrink (see the file comment). Default: none.
  bool has_accessor = false;
  AccessorConfig accessor;
  // This server and the server count, recorded in a TIERED table's
  // metadata. Default: server 0 of 1.
  int rank = 0;
  int num_servers = 1;
};

class KvStore;
class ThreadPool;

// What a push carries besides gradients. shows / clicks: per key, empty for
// 1 show and 0 clicks each (used only with an accessor).
struct PushInfo {
  // The pusher's training step; the table's step is the largest seen.
  int64_t step = 0;
  absl::Span<const float> shows;
  absl::Span<const float> clicks;
};

class SparseTable {
 public:
  // A table over the storage options.storage names. InvalidArgument for
  // bad options (a TIERED table needs storage.dir); for TIERED, the errors
  // of OpenRocksDbKv and OpenTieredStorage (e.g. FailedPrecondition when the
  // directory belongs to another table).
  static absl::StatusOr<std::unique_ptr<SparseTable>> Create(
      const SparseTableOptions& options);
  // A TIERED table over `kv` (ignoring storage.type and storage.dir), e.g.
  // a FaultyKvStore in tests.
  static absl::StatusOr<std::unique_ptr<SparseTable>> CreateTiered(
      const SparseTableOptions& options, std::unique_ptr<KvStore> kv);
  // The RocksDB directory of a TIERED table:
  // <storage.dir>/<name>/server-<rank>.
  static std::string StorageDir(const SparseTableOptions& options);
  virtual ~SparseTable() = default;

  virtual const std::string& name() const = 0;
  virtual int dim() const = 0;

  // values[i * dim .. (i + 1) * dim) = weights of keys[i], creating missing
  // rows (with admission: the initializer's values of a key not admitted
  // yet, storing nothing). InvalidArgument when values.size() !=
  // keys.size() * dim. TIERED: a disk read or write-back error (naming the
  // table) with values partly filled.
  virtual absl::Status Pull(absl::Span<const uint64_t> keys,
                            absl::Span<float> values) = 0;

  // Applies the rule to the row of every keys[i] with gradient
  // grads[i * dim .. (i + 1) * dim). Duplicate keys are applied in turn.
  // InvalidArgument (and nothing applied) when the size is wrong or a
  // gradient is not finite. TIERED: a disk read or write-back error
  // (naming the table); the keys of the sub-shards before the failing one
  // were applied, the others not (see SparseStorage::ForEachShardGroup).
  // With admission, the gradients of keys not admitted (yet) are dropped.
  // InvalidArgument too when info's shows or clicks are neither empty nor
  // one per key, or not finite.
  virtual absl::Status Push(absl::Span<const uint64_t> keys,
                            absl::Span<const float> grads,
                            const PushInfo& info) = 0;
  absl::Status Push(absl::Span<const uint64_t> keys,
                    absl::Span<const float> grads) {
    return Push(keys, grads, PushInfo());
  }

  // GEO: adds deltas[i * dim .. (i + 1) * dim) to the weights of keys[i]
  // (creating missing rows first); the rule is not applied. Same errors as
  // Push, and nothing is applied on an error.
  // Counts one show per key, stamps info.step.
  virtual absl::Status AddDeltas(absl::Span<const uint64_t> keys,
                                 absl::Span<const float> deltas,
                                 const PushInfo& info) = 0;
  absl::Status AddDeltas(absl::Span<const uint64_t> keys,
                         absl::Span<const float> deltas) {
    return AddDeltas(keys, deltas, PushInfo());
  }

  // Deletes, from every tier, the rows unseen for more than
  // accessor.max_unseen_steps or scoring below accessor.min_score at the
  // table's current step; returns how many. Without an accessor (or with
  // neither limit set) deletes nothing. Concurrent pulls and pushes go on.
  // TIERED: a disk error, rows deleted so far staying deleted.
  virtual absl::StatusOr<int64_t> Shrink() = 0;

  // The largest step seen in a push (0 before any).
  virtual int64_t step() const = 0;

  // ResourceExhausted naming the table and its cap when creating rows for
  // the keys without one would pass storage.max_rows (MEMORY tables), else
  // OK. Changes nothing. Concurrent requests may each pass the check and
  // together pass the cap by their new keys.
  [[nodiscard]] virtual absl::Status CheckRoom(
      absl::Span<const uint64_t> keys) {
    return absl::OkStatus();
  }

  // Calls visit(key, row) for every stored row; row has stride() floats
  // (weights first). See SparseStorage::ForEachRow.
  [[nodiscard]] virtual absl::Status ForEachRow(
      absl::FunctionRef<void(uint64_t key, const float* row)> visit) = 0;
  // Floats per stored row: dim, the rule's state, 3 with an accessor.
  virtual int stride() const = 0;
  // The rule's name, "+accessor" appended with an accessor: with dim and
  // stride, what a stored row means.
  virtual std::string row_format() const = 0;

  // Stores whole rows (stride floats each, as ForEachRow gives them),
  // replacing any the table has: a restore, no rule, no admission.
  // InvalidArgument when rows.size() != keys.size() * stride or a value is
  // not finite. TIERED: disk errors.
  [[nodiscard]] virtual absl::Status PutRows(absl::Span<const uint64_t> keys,
                                             absl::Span<const float> rows) = 0;
  // Raises the table's step to at least `step` (a restore).
  virtual void RaiseStep(int64_t step) = 0;
  // TIERED: SparseStorage::CheckpointDisk. MEMORY: Unimplemented.
  [[nodiscard]] virtual absl::Status CheckpointDisk(const std::string& dir) = 0;

  // Runs large calls' sub-shard groups on `pool` (not owned). Call before
  // use. Default: none (on the calling thread).
  virtual void SetThreadPool(ThreadPool* pool) = 0;

  // Writes every row the storage holds only in memory to disk (TIERED; a
  // no-op for MEMORY). The destructor does it too, logging a failure.
  [[nodiscard]] virtual absl::Status Flush() = 0;

  // Rows stored (TIERED: approximate, rows in memory plus RocksDB's
  // estimate of rows on disk).
  virtual int64_t size() const = 0;
  // Bytes used in memory by rows and index (approximate).
  virtual int64_t memory_bytes() const = 0;
  virtual StorageStats stats() const = 0;
};

// InvalidArgument naming the first non-finite value, or OK.
absl::Status CheckFinite(absl::Span<const float> values,
                         absl::string_view what);

// One gradient or delta value must stay below 2^kMaxUpdateExponent (about
// 1.1e15) in magnitude: far past any trained model's, and low enough that
// sums of squares in the rules' state stay finite for ~10^8 updates.
inline constexpr int kMaxUpdateExponent = 50;
// InvalidArgument naming the first value that is not finite or not below
// 2^kMaxUpdateExponent in magnitude, or OK. Used on every push.
absl::Status CheckUpdate(absl::Span<const float> values,
                         absl::string_view what);
// value + delta, clipped to +-FLT_MAX when the sum overflows: delta adds
// (GEO, dense deltas) never make a weight infinite.
float AddClipped(float value, float delta);

}  // namespace ps

#endif  // PS_SERVER_TABLE_SPARSE_TABLE_H_
