// OpenRocksDbKv: KvStore over RocksDB (see kv_storage.h).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/sst_file_writer.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
#include "server/storage/kv_storage.h"

namespace ps {
namespace {

// The canonical code closest to a RocksDB status.
absl::StatusCode CodeOf(const rocksdb::Status& s) {
  if (s.IsCorruption()) return absl::StatusCode::kDataLoss;
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return absl::StatusCode::kUnavailable;
  }
  if (s.IsInvalidArgument()) return absl::StatusCode::kInvalidArgument;
  if (s.IsNotSupported()) return absl::StatusCode::kUnimplemented;
  if (s.IsIncomplete() || s.IsAborted()) return absl::StatusCode::kAborted;
  return absl::StatusCode::kInternal;
}

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what,
                       absl::string_view op) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(CodeOf(s),
                      absl::StrCat(what, ": ", op, ": ", s.ToString()));
}

struct CompressionName {
  RocksDbConfig::Compression config;
  rocksdb::CompressionType type;
  const char* name;
};
constexpr CompressionName kCompressions[] = {
    {RocksDbConfig::NONE, rocksdb::kNoCompression, "NONE"},
    {RocksDbConfig::LZ4, rocksdb::kLZ4Compression, "LZ4"},
    {RocksDbConfig::ZSTD, rocksdb::kZSTD, "ZSTD"},
};

class RocksDbKv final : public KvStore {
 public:
  RocksDbKv(std::unique_ptr<rocksdb::DB> db, std::string description,
            std::string dir, rocksdb::Options options)
      : db_(std::move(db)),
        description_(std::move(description)),
        dir_(std::move(dir)),
        options_(std::move(options)),
        bulk_ingest_(options_.prefix_extractor == nullptr) {}

  ~RocksDbKv() override {
    // Close reports only an unreleased snapshot, which we never take.
    rocksdb::Status s = db_->Close();
    static_cast<void>(s);
  }

  const std::string& description() const override { return description_; }

  absl::Status MultiGet(absl::Span<const std::string> keys,
                        std::vector<std::string>* values,
                        std::vector<bool>* found) override {
    const size_t n = keys.size();
    std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> pinned(n);
    std::vector<rocksdb::Status> statuses(n);
    db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), n,
                  slices.data(), pinned.data(), statuses.data(),
                  std::is_sorted(keys.begin(), keys.end()));
    values->resize(n);
    found->assign(n, false);
    for (size_t i = 0; i < n; ++i) {
      if (statuses[i].IsNotFound()) continue;
      if (!statuses[i].ok()) {
        return FromRocks(statuses[i], description_,
                         absl::StrCat("read of ", n, " keys"));
      }
      (*found)[i] = true;
      (*values)[i].assign(pinned[i].data(), pinned[i].size());
    }
    return absl::OkStatus();
  }

  absl::Status Write(
      absl::Span<const std::pair<std::string, std::string>> puts) override {
    rocksdb::WriteBatch batch;
    for (const auto& [key, value] : puts) {
      rocksdb::Status s = batch.Put(key, value);
      if (!s.ok()) {
        return FromRocks(s, description_, "batching a write");
      }
    }
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), description_,
                     absl::StrCat("write of ", puts.size(), " rows"));
  }

  absl::Status WriteSorted(size_t n, SortedItem item) override {
    if (n == 0) return absl::OkStatus();
    if (!bulk_ingest_) {
      // Plain tables cannot be ingested (RocksDB needs SeekToLast on the
      // file): write batches through the (hash) memtable instead, which is
      // all or nothing per batch only.
      constexpr size_t kBatch = 65536;
      for (size_t b = 0; b < n; b += kBatch) {
        rocksdb::WriteBatch batch;
        for (size_t i = b; i < std::min(n, b + kBatch); ++i) {
          auto [k, v] = item(i);
          rocksdb::Status s = batch.Put(rocksdb::Slice(k.data(), k.size()),
                                        rocksdb::Slice(v.data(), v.size()));
          if (!s.ok()) return FromRocks(s, description_, "batching a write");
        }
        RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &batch),
                                  description_,
                                  absl::StrCat("write of ", n, " rows")));
      }
      return absl::OkStatus();
    }
    const std::string file =
        absl::StrCat(dir_, "/bulk-", bulk_files_.fetch_add(1), ".sst.tmp");
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options_);
    RETURN_IF_ERROR(FromRocks(writer.Open(file), description_,
                              absl::StrCat("open ", file)));
    for (size_t i = 0; i < n; ++i) {
      auto [k, v] = item(i);
      rocksdb::Status s = writer.Put(rocksdb::Slice(k.data(), k.size()),
                                     rocksdb::Slice(v.data(), v.size()));
      if (!s.ok()) {
        std::remove(file.c_str());
        return FromRocks(
            s, description_,
            absl::StrCat("bulk write of ", n, " rows into ", file));
      }
    }
    rocksdb::Status s = writer.Finish();
    if (s.ok()) {
      rocksdb::IngestExternalFileOptions ingest;
      ingest.move_files = true;  // a rename (hard link), no copy
      s = db_->IngestExternalFile({file}, ingest);
    }
    std::remove(file.c_str());  // gone already when moved
    return FromRocks(s, description_,
                     absl::StrCat("bulk write of ", n, " rows"));
  }

  absl::Status Delete(absl::Span<const std::string> keys) override {
    rocksdb::WriteBatch batch;
    for (const std::string& key : keys) {
      rocksdb::Status s = batch.Delete(key);
      if (!s.ok()) return FromRocks(s, description_, "batching a delete");
    }
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), description_,
                     absl::StrCat("delete of ", keys.size(), " rows"));
  }

  absl::Status Update(
      absl::Span<const std::pair<std::string, std::string>> puts,
      absl::Span<const std::string> deletes) override {
    rocksdb::WriteBatch batch;
    for (const std::string& key : deletes) {
      rocksdb::Status s = batch.Delete(key);
      if (!s.ok()) return FromRocks(s, description_, "batching a delete");
    }
    for (const auto& [key, value] : puts) {
      rocksdb::Status s = batch.Put(key, value);
      if (!s.ok()) return FromRocks(s, description_, "batching a write");
    }
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), description_,
                     absl::StrCat("update (", puts.size(), " writes, ",
                                  deletes.size(), " deletes)"));
  }

  absl::Status Scan(
      absl::FunctionRef<bool(absl::string_view, absl::string_view)> visit)
      override {
    rocksdb::ReadOptions options;
    options.fill_cache = false;       // a scan would evict the hot blocks
    options.total_order_seek = true;  // every key, whatever the prefix index
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!visit(absl::string_view(it->key().data(), it->key().size()),
                 absl::string_view(it->value().data(), it->value().size()))) {
        break;
      }
    }
    return FromRocks(it->status(), description_, "scan");
  }

  absl::Status Checkpoint(const std::string& dir) override {
    rocksdb::Checkpoint* raw = nullptr;
    RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw),
                              description_, "checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    // log_size_for_flush 0: always flush the memtable, so the copy is SST
    // files (hard links) and no write-ahead log.
    return FromRocks(
        checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
        description_, absl::StrCat("checkpoint into ", dir));
  }

  int64_t EstimateNumKeys() const override {
    uint64_t n = 0;
    if (!db_->GetIntProperty("rocksdb.estimate-num-keys", &n)) return 0;
    return static_cast<int64_t>(n);
  }

 private:
  const std::unique_ptr<rocksdb::DB> db_;
  const std::string description_;
  const std::string dir_;
  const rocksdb::Options options_;
  // Block-based tables: bulk writes build and ingest a table file.
  const bool bulk_ingest_;
  std::atomic<int64_t> bulk_files_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksDbKvReadOnly(
    const std::string& dir) {
  const std::string what = absl::StrCat("rocksdb dir ", dir);
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/CURRENT", ec)) {
    return absl::NotFoundError(
        absl::StrCat(what, ": no database (no CURRENT file)"));
  }
  // Either table format (a checkpoint of a PLAIN or a BLOCK_BASED table);
  // plain tables are read by full scans, which is all a restore does.
  rocksdb::Options options;
  rocksdb::PlainTableOptions plain;
  plain.full_scan_mode = true;
  options.table_factory.reset(rocksdb::NewAdaptiveTableFactory(
      nullptr, nullptr,
      std::shared_ptr<rocksdb::TableFactory>(
          rocksdb::NewPlainTableFactory(plain))));
  options.allow_mmap_reads = true;
  options.max_sequential_skip_in_iterations =
      std::numeric_limits<uint64_t>::max();  // as for PLAIN tables above
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, dir, &raw);
  if (!s.ok()) return FromRocks(s, what, "open read-only");
  return std::unique_ptr<KvStore>(std::make_unique<RocksDbKv>(
      std::unique_ptr<rocksdb::DB>(raw), what, dir, options));
}

std::string SupportedCompressions() {
  std::vector<std::string> names;
  const std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  for (const CompressionName& c : kCompressions) {
    if (c.type == rocksdb::kNoCompression ||
        std::find(supported.begin(), supported.end(), c.type) !=
            supported.end()) {
      names.push_back(c.name);
    }
  }
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksDbKv(
    const std::string& dir, const RocksDbConfig& config) {
  const std::string what = absl::StrCat("rocksdb dir ", dir);
  const int64_t cache_bytes =
      config.has_block_cache_bytes() ? config.block_cache_bytes() : 64 << 20;
  const int64_t buffer_bytes =
      config.has_write_buffer_bytes() ? config.write_buffer_bytes() : 64 << 20;
  const int bloom_bits =
      config.has_bloom_bits_per_key() ? config.bloom_bits_per_key() : 10;
  const int jobs =
      config.has_max_background_jobs() ? config.max_background_jobs() : 2;
  if (cache_bytes < 0 || buffer_bytes < (1 << 16) || bloom_bits < 0 ||
      jobs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": need block_cache_bytes >= 0 (got ", cache_bytes,
                     "), write_buffer_bytes >= 65536 (got ", buffer_bytes,
                     "), bloom_bits_per_key >= 0 (got ", bloom_bits,
                     "), max_background_jobs >= 1 (got ", jobs, ")"));
  }
  const RocksDbConfig::Compression wanted =
      config.compression() == RocksDbConfig::COMPRESSION_UNSPECIFIED
          ? RocksDbConfig::NONE
          : config.compression();
  const CompressionName* compression = nullptr;
  for (const CompressionName& c : kCompressions) {
    if (c.config == wanted) compression = &c;
  }
  const std::vector<rocksdb::CompressionType> supported =
      rocksdb::GetSupportedCompressions();
  if (compression == nullptr ||
      (compression->type != rocksdb::kNoCompression &&
       std::find(supported.begin(), supported.end(), compression->type) ==
           supported.end())) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": compression ", RocksDbConfig::Compression_Name(wanted),
        " is not supported by this RocksDB (has ", SupportedCompressions(),
        ")"));
  }

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat(what, ": cannot create the directory: ", ec.message()));
  }

  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = compression->type;
  options.write_buffer_size = static_cast<size_t>(buffer_bytes);
  options.max_background_jobs = jobs;
  rocksdb::BlockBasedTableOptions table;
  if (cache_bytes > 0) {
    table.block_cache = rocksdb::NewLRUCache(static_cast<size_t>(cache_bytes));
  } else {
    table.no_block_cache = true;
  }
  if (bloom_bits > 0) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(bloom_bits));
  }
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  if (config.table_format() == RocksDbConfig::PLAIN) {
    if (compression->type != rocksdb::kNoCompression) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": table_format PLAIN cannot compress (compression ",
          compression->name, "); use NONE or BLOCK_BASED"));
    }
    // Row keys are 8 bytes; the 5-byte metadata key is its own prefix.
    options.prefix_extractor.reset(rocksdb::NewCappedPrefixTransform(8));
    rocksdb::PlainTableOptions plain;
    plain.bloom_bits_per_key = bloom_bits;
    plain.hash_table_ratio = 0.75;
    options.table_factory.reset(rocksdb::NewPlainTableFactory(plain));
    options.allow_mmap_reads = true;
    // A hash-indexed plain table supports SeekToFirst and Next in key order
    // but no Seek, which an iterator does after skipping this many hidden
    // entries (deleted or overwritten rows): never, so scans work.
    options.max_sequential_skip_in_iterations =
        std::numeric_limits<uint64_t>::max();
    // Buckets (8 bytes each, allocated with the memtable) a small part of
    // the write buffer: a memtable must not start out full.
    options.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(
        static_cast<size_t>(std::max<int64_t>(1024, buffer_bytes / 256))));
    options.allow_concurrent_memtable_write = false;
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return FromRocks(s, what, "open");
  return std::unique_ptr<KvStore>(std::make_unique<RocksDbKv>(
      std::unique_ptr<rocksdb::DB>(raw), what, dir, options));
}

}  // namespace ps
