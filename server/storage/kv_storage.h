// KvStore: the thin key-value interface under TieredStorage, so the disk
// tier can be RocksDB in production and a fault-injecting wrapper in tests.
//
//   OpenRocksDbKv   RocksDB in a directory, opened (created if missing),
//                   never wiped. Every rocksdb::Status is checked and turned
//                   into an absl::Status naming the directory.
//   FaultyKvStore   wraps another KvStore and fails chosen reads or writes.
//
// Thread-safety: every method of every implementation may be called
// concurrently.
#ifndef PS_SERVER_STORAGE_KV_STORAGE_H_
#define PS_SERVER_STORAGE_KV_STORAGE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "proto/config.pb.h"

namespace ps {

class KvStore {
 public:
  virtual ~KvStore() = default;

  // What the store is, for messages: "rocksdb dir /x/y".
  virtual const std::string& description() const = 0;

  // For each keys[i]: (*found)[i] and, when found, (*values)[i]. An error
  // (with values unspecified) when any read fails. Faster with the keys in
  // order.
  [[nodiscard]] virtual absl::Status MultiGet(
      absl::Span<const std::string> keys, std::vector<std::string>* values,
      std::vector<bool>* found) = 0;

  // Writes every (key, value) atomically (one batch); all or nothing.
  // Faster with the keys in order.
  [[nodiscard]] virtual absl::Status Write(
      absl::Span<const std::pair<std::string, std::string>> puts) = 0;

  // Writes n (key, value) pairs given in strictly increasing key order, as
  // item(i) returns them: for bulk writes (a flush of many rows) RocksDB
  // with block-based tables builds one table file and ingests it, bypassing
  // the memtable and the log, many times faster than Write (all or
  // nothing); with plain tables it writes batches. Default: Write.
  using SortedItem =
      absl::FunctionRef<std::pair<absl::string_view, absl::string_view>(
          size_t i)>;
  [[nodiscard]] virtual absl::Status WriteSorted(size_t n, SortedItem item) {
    std::vector<std::pair<std::string, std::string>> puts;
    puts.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      auto [k, v] = item(i);
      puts.emplace_back(std::string(k), std::string(v));
    }
    return Write(puts);
  }

  // Deletes every key (one batch); all or nothing. Absent keys are fine.
  [[nodiscard]] virtual absl::Status Delete(
      absl::Span<const std::string> keys) = 0;

  // Deletes `deletes` and writes `puts` in one batch (all or nothing); a
  // key in both ends up written.
  [[nodiscard]] virtual absl::Status Update(
      absl::Span<const std::pair<std::string, std::string>> puts,
      absl::Span<const std::string> deletes) = 0;

  // Calls visit(key, value) for every stored pair in key order, over a
  // consistent snapshot, until visit returns false. The views are valid
  // only during the call.
  [[nodiscard]] virtual absl::Status Scan(
      absl::FunctionRef<bool(absl::string_view key, absl::string_view value)>
          visit) = 0;

  // Keys stored (an estimate).
  virtual int64_t EstimateNumKeys() const = 0;

  // A consistent copy of the store in `dir` (which must not exist), sharing
  // immutable files by hard links where it can (RocksDB Checkpoint: the
  // memtable is flushed first). Unimplemented for stores without it.
  [[nodiscard]] virtual absl::Status Checkpoint(const std::string& dir) {
    return absl::UnimplementedError(
        absl::StrCat(description(), ": no checkpoint support (", dir, ")"));
  }
};

// RocksDB in `dir` (created with its parents if missing). Default for each
// unset field of `config`: see RocksDbConfig in proto/config.proto.
// InvalidArgument for a compression this RocksDB lacks or a negative size;
// Unavailable/Internal (naming the directory) when RocksDB cannot open it.
absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksDbKv(
    const std::string& dir, const RocksDbConfig& config);

// RocksDB in `dir`, opened read-only (e.g. a checkpoint being restored):
// nothing in the directory changes. Write, Delete and Checkpoint fail.
// NotFound when `dir` holds no database.
absl::StatusOr<std::unique_ptr<KvStore>> OpenRocksDbKvReadOnly(
    const std::string& dir);

// The compressions this build of RocksDB supports, e.g. "NONE, LZ4, ZSTD".
std::string SupportedCompressions();

// For tests: forwards to `base` but fails, with Unavailable("injected ...")
// naming the base store, every read (MultiGet, Scan) or write (Write,
// Delete) once the number of reads or writes done reaches a threshold set by
// FailReadsFrom / FailWritesFrom, until Heal().
class FaultyKvStore final : public KvStore {
 public:
  explicit FaultyKvStore(std::unique_ptr<KvStore> base)
      : base_(std::move(base)) {}

  // Calls numbered from 0; call n and later fail. -1: never.
  void FailReadsFrom(int64_t n) { fail_reads_from_ = n; }
  void FailWritesFrom(int64_t n) { fail_writes_from_ = n; }
  void Heal() {
    fail_reads_from_ = -1;
    fail_writes_from_ = -1;
  }
  int64_t reads() const { return reads_; }
  int64_t writes() const { return writes_; }

  const std::string& description() const override {
    return base_->description();
  }
  absl::Status MultiGet(absl::Span<const std::string> keys,
                        std::vector<std::string>* values,
                        std::vector<bool>* found) override {
    const int64_t n = reads_++;
    const int64_t from = fail_reads_from_;
    if (from >= 0 && n >= from) {
      return absl::UnavailableError(absl::StrCat(base_->description(),
                                                 ": injected read failure (",
                                                 keys.size(), " keys)"));
    }
    return base_->MultiGet(keys, values, found);
  }
  absl::Status Write(
      absl::Span<const std::pair<std::string, std::string>> puts) override {
    const int64_t n = writes_++;
    const int64_t from = fail_writes_from_;
    if (from >= 0 && n >= from) {
      return absl::UnavailableError(absl::StrCat(base_->description(),
                                                 ": injected write failure (",
                                                 puts.size(), " rows)"));
    }
    return base_->Write(puts);
  }
  absl::Status WriteSorted(size_t n, SortedItem item) override {
    if (Fails(writes_++, fail_writes_from_)) {
      return absl::UnavailableError(absl::StrCat(
          base_->description(), ": injected write failure (", n, " rows)"));
    }
    return base_->WriteSorted(n, item);
  }
  absl::Status Delete(absl::Span<const std::string> keys) override {
    if (Fails(writes_++, fail_writes_from_)) {
      return absl::UnavailableError(absl::StrCat(base_->description(),
                                                 ": injected delete failure (",
                                                 keys.size(), " keys)"));
    }
    return base_->Delete(keys);
  }
  absl::Status Update(
      absl::Span<const std::pair<std::string, std::string>> puts,
      absl::Span<const std::string> deletes) override {
    if (Fails(writes_++, fail_writes_from_)) {
      return absl::UnavailableError(
          absl::StrCat(base_->description(), ": injected update failure (",
                       puts.size(), " writes, ", deletes.size(), " deletes)"));
    }
    return base_->Update(puts, deletes);
  }
  absl::Status Scan(
      absl::FunctionRef<bool(absl::string_view, absl::string_view)> visit)
      override {
    if (Fails(reads_++, fail_reads_from_)) {
      return absl::UnavailableError(
          absl::StrCat(base_->description(), ": injected scan failure"));
    }
    return base_->Scan(visit);
  }
  int64_t EstimateNumKeys() const override { return base_->EstimateNumKeys(); }

 private:
  static bool Fails(int64_t n, int64_t from) { return from >= 0 && n >= from; }

  const std::unique_ptr<KvStore> base_;
  std::atomic<int64_t> fail_reads_from_{-1};
  std::atomic<int64_t> fail_writes_from_{-1};
  std::atomic<int64_t> reads_{0};
  std::atomic<int64_t> writes_{0};
};

}  // namespace ps

#endif  // PS_SERVER_STORAGE_KV_STORAGE_H_
