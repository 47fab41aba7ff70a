// A sparse table's part of a checkpoint, written and read back.
//
// In a checkpoint folder, server r's part of table T is the folder
// server-<r>/sparse-<T>/ holding either
//   rows.bin  MEMORY tables: a checksummed file (common/checksummed_file.h,
//             magic "PSROWS01", version 1) whose payload is the format
//             string (AppendString: "table=T dim=D stride=S rule=R"), then
//             one record per row: key (u64) and stride floats, to the end;
//   rocksdb/  TIERED tables: a RocksDB checkpoint (hard links to the live
//             table's files, memtable flushed), row keys 8 bytes big-endian,
//             values stride floats, and the table's metadata record.
// Rows are whole (weights, optimizer state, accessor counts), so a restore
// loses nothing; because every row carries its key, a table can be restored
// onto another server count by routing rows (ServerForKey) — resharding.
//
// Thread-safe as the tables are; a save sees pushes made during it or not,
// so the caller holds pushes while saving (PsHandler does).
#ifndef PS_SERVER_TABLE_TABLE_SNAPSHOT_H_
#define PS_SERVER_TABLE_TABLE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/checkpoint.pb.h"
#include "server/table/sparse_table.h"

namespace ps {

// "server-<rank>/sparse-<table>".
std::string SparseSnapshotDir(int rank, const std::string& table);
// "server-<rank>/dense-<table>.bin".
std::string DenseSnapshotFile(int rank, const std::string& table);

// Writes `table` into `dir` (created; must not hold a snapshot already),
// which lies two levels under the checkpoint folder `checkpoint_dir`, and
// describes every file written (path relative to `checkpoint_dir`, size,
// crc32; rows.bin's digest comes from writing it, not from reading it
// back). Errors name the table and the file.
absl::StatusOr<std::vector<CheckpointFile>> SaveTableSnapshot(
    SparseTable& table, const std::string& checkpoint_dir,
    const std::string& dir);

// Reads the snapshot in `dir` and calls sink(keys, rows) with batches of
// whole rows (stride floats each) whose key satisfies keep(key). Refuses,
// with FailedPrecondition naming the folder and both formats, a snapshot of
// another table, dim or row format than `table`; DataLoss for a corrupt or
// truncated rows.bin (after the rows before the damage were handed over:
// the caller discards the table then); NotFound when `dir` holds neither
// form.
absl::Status ReadTableSnapshot(
    const std::string& dir, const SparseTable& table,
    absl::FunctionRef<bool(uint64_t key)> keep,
    absl::FunctionRef<absl::Status(absl::Span<const uint64_t> keys,
                                   absl::Span<const float> rows)>
        sink);

}  // namespace ps

#endif  // PS_SERVER_TABLE_TABLE_SNAPSHOT_H_
