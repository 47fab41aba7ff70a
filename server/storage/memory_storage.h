// MemoryStorage: every row of a table's shard in memory (see
// sparse_storage.h). Per sub-shard, a RowIndex from key to row number and
// rows, each preceded by its key, in 64 KiB chunks; rows EraseIf deletes
// leave their numbers on a free list for the next new rows.
//
// ForEachShardGroup works in two phases per sub-shard group, under its lock:
// find (or create) every row, prefetching index slots a few keys ahead, then
// hand the rows to the caller, which prefetches rows a few ahead, so the
// cache misses of neighbouring keys overlap instead of being paid one by one.
// Thread-safe; never fails.
#ifndef PS_SERVER_STORAGE_MEMORY_STORAGE_H_
#define PS_SERVER_STORAGE_MEMORY_STORAGE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/storage/sparse_storage.h"

namespace ps {

struct MemoryStorageOptions {
  // Floats per row. Required, >= 1.
  int stride = 0;
  // Sub-shards, each with its own lock. Default: 16.
  int shard_num = 16;
};

// InvalidArgument for a stride < 1 or shard_num outside [1, 65535].
absl::StatusOr<std::unique_ptr<SparseStorage>> CreateMemoryStorage(
    const MemoryStorageOptions& options);

}  // namespace ps

#endif  // PS_SERVER_STORAGE_MEMORY_STORAGE_H_
