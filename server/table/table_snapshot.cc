#include "server/table/table_snapshot.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/checksummed_file.h"
#include "common/status_macros.h"
#include "server/storage/kv_storage.h"
#include "server/storage/tiered_storage.h"

namespace ps {
namespace {

constexpr absl::string_view kRowsMagic = "PSROWS01";
constexpr uint32_t kRowsVersion = 1;
constexpr size_t kBatchRows = 8192;
constexpr uint64_t kMaxFormatBytes = 4096;

std::string FormatOf(const SparseTable& table) {
  return absl::StrCat("table=", table.name(), " dim=", table.dim(),
                      " stride=", table.stride(), " rule=", table.row_format());
}

// Every regular file under `dir`, relative to `base`.
absl::Status ListFiles(const std::string& base, const std::string& dir,
                       std::vector<std::string>* out) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    out->push_back(std::filesystem::relative(it->path(), base).string());
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot list '", dir, "': ", ec.message()));
  }
  return absl::OkStatus();
}

// Buffers rows and hands them to the sink in batches.
class RowBatcher {
 public:
  RowBatcher(int stride,
             absl::FunctionRef<absl::Status(absl::Span<const uint64_t>,
                                            absl::Span<const float>)>
                 sink)
      : stride_(stride), sink_(sink) {}

  absl::Status Add(uint64_t key, const float* row) {
    keys_.push_back(key);
    rows_.insert(rows_.end(), row, row + stride_);
    if (keys_.size() >= kBatchRows) return Flush();
    return absl::OkStatus();
  }
  absl::Status Flush() {
    if (keys_.empty()) return absl::OkStatus();
    absl::Status s = sink_(keys_, rows_);
    keys_.clear();
    rows_.clear();
    return s;
  }

 private:
  const int stride_;
  absl::FunctionRef<absl::Status(absl::Span<const uint64_t>,
                                 absl::Span<const float>)>
      sink_;
  std::vector<uint64_t> keys_;
  std::vector<float> rows_;
};

}  // namespace

std::string SparseSnapshotDir(int rank, const std::string& table) {
  return absl::StrCat("server-", rank, "/sparse-", table);
}

std::string DenseSnapshotFile(int rank, const std::string& table) {
  return absl::StrCat("server-", rank, "/dense-", table, ".bin");
}

absl::StatusOr<std::vector<CheckpointFile>> SaveTableSnapshot(
    SparseTable& table, const std::string& checkpoint_dir,
    const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("table '", table.name(),
                                            "': cannot create '", dir,
                                            "': ", ec.message()));
  }
  const std::string& base = checkpoint_dir;
  std::vector<CheckpointFile> described;
  const std::string disk = dir + "/rocksdb";
  absl::Status on_disk = table.CheckpointDisk(disk);
  if (on_disk.ok()) {
    std::vector<std::string> files;
    RETURN_IF_ERROR(ListFiles(base, disk, &files));
    // Checksumming the hard-linked files reads them all: spread the files
    // over the cores.
    std::vector<absl::StatusOr<CheckpointFile>> digests(
        files.size(), absl::UnknownError("not described"));
    const size_t threads = std::max<size_t>(
        1, std::min<size_t>(files.size(), std::thread::hardware_concurrency()));
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < files.size();) {
          digests[i] = DescribeCheckpointFile(base, files[i]);
        }
      });
    }
    for (std::thread& t : pool) t.join();
    for (auto& d : digests) {
      if (!d.ok()) return d.status();
      described.push_back(std::move(d).value());
    }
    return described;
  }
  if (on_disk.code() != absl::StatusCode::kUnimplemented) return on_disk;

  const std::string path = dir + "/rows.bin";
  ASSIGN_OR_RETURN(auto writer,
                   ChecksummedWriter::Create(path, kRowsMagic, kRowsVersion));
  RETURN_IF_ERROR(AppendString(writer.get(), FormatOf(table)));
  absl::Status written;
  const int stride = table.stride();
  RETURN_IF_ERROR(table.ForEachRow([&](uint64_t key, const float* row) {
    if (!written.ok()) return;
    // A restore refuses non-finite rows: refuse to write one.
    for (int i = 0; i < stride; ++i) {
      if (!std::isfinite(row[i])) {
        written = absl::FailedPreconditionError(absl::StrCat(
            "table '", table.name(), "' save: key ", key, " has value ", i,
            " = ", row[i], " (not finite); the checkpoint is not written"));
        return;
      }
    }
    written = writer->AppendU64(key);
    if (written.ok()) {
      written = writer->AppendFloats(absl::MakeConstSpan(row, stride));
    }
  }));
  RETURN_IF_ERROR(written);
  ASSIGN_OR_RETURN(FileDigest digest, writer->Close());
  CheckpointFile f;
  f.set_path(std::filesystem::relative(path, base).string());
  f.set_size(digest.size);
  f.set_crc32(digest.crc32);
  described.push_back(std::move(f));
  return described;
}

absl::Status ReadTableSnapshot(
    const std::string& dir, const SparseTable& table,
    absl::FunctionRef<bool(uint64_t key)> keep,
    absl::FunctionRef<absl::Status(absl::Span<const uint64_t> keys,
                                   absl::Span<const float> rows)>
        sink) {
  const int stride = table.stride();
  RowBatcher batcher(stride, sink);
  std::error_code ec;
  const std::string rows_path = dir + "/rows.bin";
  if (std::filesystem::exists(rows_path, ec)) {
    ASSIGN_OR_RETURN(auto reader, ChecksummedReader::Open(rows_path, kRowsMagic,
                                                          kRowsVersion));
    ASSIGN_OR_RETURN(std::string format, reader->ReadString(kMaxFormatBytes));
    if (format != FormatOf(table)) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", rows_path, "' holds rows of '", format,
                       "', the job wants '", FormatOf(table), "'"));
    }
    const uint64_t record = 8 + static_cast<uint64_t>(stride) * 4;
    if (reader->remaining() % record != 0) {
      return absl::DataLossError(absl::StrCat(
          "'", rows_path, "': ", reader->remaining(),
          " bytes of rows is not a whole number of ", record, "-byte rows"));
    }
    std::vector<float> row(stride);
    while (reader->remaining() > 0) {
      ASSIGN_OR_RETURN(uint64_t key, reader->ReadU64());
      RETURN_IF_ERROR(reader->ReadFloats(absl::MakeSpan(row)));
      if (keep(key)) RETURN_IF_ERROR(batcher.Add(key, row.data()));
    }
    // The checksum is checked before the last batch goes in; rows handed
    // over before a mismatch are discarded with the table by the caller.
    RETURN_IF_ERROR(reader->Finish());
    return batcher.Flush();
  }
  const std::string disk = dir + "/rocksdb";
  if (!std::filesystem::exists(disk, ec)) {
    return absl::NotFoundError(
        absl::StrCat("'", dir, "' holds no snapshot of table '", table.name(),
                     "' (neither rows.bin nor rocksdb/)"));
  }
  ASSIGN_OR_RETURN(auto kv, OpenRocksDbKvReadOnly(disk));
  std::vector<float> row(stride);
  const size_t row_bytes = static_cast<size_t>(stride) * sizeof(float);
  absl::Status status;
  RETURN_IF_ERROR(kv->Scan([&](absl::string_view k, absl::string_view v) {
    uint64_t key;
    if (!DecodeRowKey(k, &key)) {
      // Bookkeeping: the row counts (skipped) and the metadata record, whose
      // row format must match.
      if (k != absl::string_view("\0meta", 5)) return true;
      if (v.find(absl::StrCat("table=", table.name(), "\n")) != 0 ||
          v.find(absl::StrCat("\ndim=", table.dim(), "\n")) ==
              absl::string_view::npos) {
        status = absl::FailedPreconditionError(
            absl::StrCat("'", disk, "' holds rows of '", v,
                         "', the job wants '", FormatOf(table), "'"));
        return false;
      }
      return true;
    }
    if (v.size() != row_bytes) {
      status = absl::FailedPreconditionError(absl::StrCat(
          "'", disk, "': rows of ", v.size(), " bytes, the job's table '",
          table.name(), "' has rows of ", row_bytes, " bytes (",
          FormatOf(table), ")"));
      return false;
    }
    if (!keep(key)) return true;
    std::memcpy(row.data(), v.data(), row_bytes);
    status = batcher.Add(key, row.data());
    return status.ok();
  }));
  RETURN_IF_ERROR(status);
  return batcher.Flush();
}

}  // namespace ps
