// TieredStorage: a SparseStorage (sparse_storage.h) whose memory tier holds
// the hot rows within a byte budget over a KvStore (kv_storage.h; RocksDB in
// production) that holds the rest, so a table can be many times larger than
// its memory.
//
// Per sub-shard: a RowIndex over a fixed number of row slots (the budget
// split evenly over the sub-shards), a frequency-aware eviction policy (new
// rows on probation, the rest in a counting clock: see MakeRoom in the .cc)
// and a dirty bit per slot. ForEachShardGroup, per sub-shard group under its
// lock:
//   1. looks the keys up in the memory tier (hits add to their use count);
//   2. reads every missing key with one KvStore::MultiGet; a key absent from
//      the disk tier too gets a new row from the initializer when admitted
//      (dirty, so every row is either dirty in memory or on disk);
//   3. makes room: evicts cold rows (never the group's own), writing the
//      dirty ones back in one batch; clean rows are just dropped;
//   4. calls fn on the rows, then marks them dirty when `modify`.
// A failed read or write-back returns an error naming the table before fn
// runs for the group, and loses nothing: victims stay in memory until their
// write-back succeeded. A group larger than its sub-shard's slots
// temporarily exceeds the budget.
//
// On disk: row keys are 8 bytes big-endian, values the row's stride floats
// (host order); key "\0meta" holds the owner (table, dim, rule, state size,
// server count and rank), checked at open. Flush() and the destructor write
// every dirty row back, so rows survive a clean restart; many dirty rows go
// as one sorted bulk write (KvStore::WriteSorted) with every sub-shard
// locked. EraseIf deletes from memory and disk (disk rows re-checked under
// their lock); ForEachRow flushes, then scans the disk tier;
// CheckpointDisk flushes, then makes a KvStore checkpoint.
//
// Thread-safe; the KvStore is called under a sub-shard lock (one sub-shard's
// I/O never blocks another's), except Flush's bulk write, which holds all.
#ifndef PS_SERVER_STORAGE_TIERED_STORAGE_H_
#define PS_SERVER_STORAGE_TIERED_STORAGE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/storage/kv_storage.h"
#include "server/storage/sparse_storage.h"

namespace ps {

struct TieredStorageOptions {
  // The owner, recorded in and checked against the store's metadata.
  std::string table_name;
  int dim = 0;
  std::string rule_name;
  // Floats per row (dim + the rule's state). Required, >= 1.
  int stride = 0;
  int num_servers = 1;
  int rank = 0;
  // Sub-shards, each with its own lock. Default: 16.
  int shard_num = 16;
  // Bytes of the memory tier: rows, keys, flags and index. Each sub-shard
  // keeps at least 16 rows whatever the budget. Default: 1 GiB.
  int64_t memory_budget_bytes = int64_t{1} << 30;
};

// Opens a tiered storage over `kv` (taking it). Writes the metadata record
// into an empty store. FailedPrecondition when the store belongs to another
// owner: "rocksdb dir X holds table 'a' dim 8 adagrad (state 8, server 0 of
// 1), config wants table 'b' dim 16 adam (state 32, server 0 of 2)".
// InvalidArgument for bad options; the store's error when it cannot be read.
absl::StatusOr<std::unique_ptr<SparseStorage>> OpenTieredStorage(
    const TieredStorageOptions& options, std::unique_ptr<KvStore> kv);

// The disk key of a row: `key` big-endian.
std::string EncodeRowKey(uint64_t key);
// The key of a disk key; false for anything but 8 bytes (e.g. metadata).
bool DecodeRowKey(absl::string_view bytes, uint64_t* key);

}  // namespace ps

#endif  // PS_SERVER_STORAGE_TIERED_STORAGE_H_
