// Fuzz target: a MEMORY table's checkpoint file rows.bin
// (server/table/table_snapshot.h), read back as a restore does: rows whose
// key passes a filter go into a fresh table (rows_fuzz.h) through PutRows.
//
// Each input is rows.bin as it is, then the payload of a well-formed
// rows.bin (so the bytes get past the checksum to the format string and the
// records). Errors must have the documented codes; a read that succeeds
// must have handed over whole rows of the table's stride.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "glog/logging.h"
#include "server/table/sparse_table.h"
#include "server/table/table_snapshot.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/rows_fuzz.h"

namespace {

std::string* dir;

void Restore(absl::string_view file) {
  ps::fuzz::WriteFileOrDie(*dir + "/rows.bin", file);
  auto table = ps::SparseTable::Create(ps::fuzz::RowsTableOptions());
  CHECK(table.ok()) << table.status();
  int64_t rows = 0;
  const absl::Status status = ps::ReadTableSnapshot(
      *dir, **table, [](uint64_t key) { return key % 3 != 0; },
      [&](absl::Span<const uint64_t> keys, absl::Span<const float> values) {
        CHECK_EQ(values.size(), keys.size() * (*table)->stride());
        for (uint64_t key : keys) CHECK_NE(key % 3, 0u);
        rows += static_cast<int64_t>(keys.size());
        return (*table)->PutRows(keys, values);
      });
  if (!status.ok()) {
    CHECK(absl::IsDataLoss(status) || absl::IsFailedPrecondition(status) ||
          absl::IsInvalidArgument(status))
        << status;
    return;
  }
  CHECK_LE((*table)->size(), rows);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  dir = new std::string(ps::fuzz::ScratchPath("server-0/sparse-emb"));
  std::filesystem::create_directories(*dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  Restore(bytes);
  Restore(ps::fuzz::ChecksummedImage("PSROWS01", 1, bytes));
  return 0;
}
