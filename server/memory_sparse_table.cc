// SparseTable: the rule and the initializer over a SparseStorage (memory or
// tiered). The storage finds (or creates) the rows of each sub-shard group
// under its lock; the table then copies or updates them, prefetching rows a
// few ahead, so the cache misses of neighbouring keys overlap.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "server/kv_storage.h"
#include "server/memory_storage.h"
#include "common/optimizer.h"
#include "server/sparse_table.h"
#include "server/tiered_storage.h"

namespace ps {

float InitialWeight(const InitializerConfig& init, uint64_t seed, uint64_t key,
                    int i) {
  switch (init.type()) {
    case InitializerConfig::ZEROS:
      return 0.0f;
    case InitializerConfig::NORMAL: {
      // Box-Muller from two hashed uniforms.
      float u1 = HashUniform(seed, key, 2 * i) + 1e-7f;
      float u2 = HashUniform(seed, key, 2 * i + 1);
      return init.scale() * std::sqrt(-2.0f * std::log(u1)) *
             std::cos(6.2831853f * u2);
    }
    case InitializerConfig::UNIFORM:
    default:
      return init.scale() * (2.0f * HashUniform(seed, key, i) - 1.0f);
  }
}

namespace {

// Whether every value is finite (its exponent is not all ones). Blocks of a
// constant length let g++ -O2 vectorize the scan.
bool AllFinite(const float* values, size_t n) {
  constexpr size_t kBlock = 64;
  constexpr uint32_t kExponent = 0x7f800000u;
  // An all-ones exponent plus one carries into the sign bit.
  uint32_t carry = 0;
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    uint32_t bits[kBlock];
    std::memcpy(bits, values + i, sizeof(bits));
    for (size_t k = 0; k < kBlock; ++k) {
      carry |= (bits[k] & kExponent) + 0x00800000u;
    }
  }
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    carry |= (bits & kExponent) + 0x00800000u;
  }
  return (carry & 0x80000000u) == 0;
}

}  // namespace

absl::Status CheckFinite(absl::Span<const float> values,
                         absl::string_view what) {
  if (AllFinite(values.data(), values.size())) return absl::OkStatus();
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": value ", i, " is ", values[i], " (not finite)"));
    }
  }
  return absl::OkStatus();
}

namespace {

class RuleSparseTable final : public SparseTable {
 public:
  RuleSparseTable(const SparseTableOptions& options,
                  std::unique_ptr<OptimizerRule> rule,
                  std::unique_ptr<SparseStorage> storage)
      : options_(options),
        rule_(std::move(rule)),
        storage_(std::move(storage)),
        dim_(options.dim),
        stride_(storage_->stride()) {}

  const std::string& name() const override { return options_.name; }
  int dim() const override { return dim_; }

  absl::Status Pull(absl::Span<const uint64_t> keys,
                    absl::Span<float> values) override {
    if (values.size() != keys.size() * dim_) {
      return SizeError("pull", keys.size(), values.size());
    }
    float* out = values.data();
    const size_t row_bytes = dim_ * sizeof(float);
    const size_t ahead = PrefetchDistance(row_bytes);
    return storage_->ForEachShardGroup(
        keys, /*modify=*/false, [this](uint64_t key, float* row) { InitRow(key, row); },
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          const size_t n = idx.size();
          for (size_t j = 0; j < std::min(n, ahead); ++j) {
            PrefetchBytes</*kForWrite=*/false>(rows.data()[j], row_bytes);
          }
          for (size_t j = 0; j < n; ++j) {
            if (j + ahead < n) {
              PrefetchBytes</*kForWrite=*/false>(rows.data()[j + ahead],
                                                 row_bytes);
            }
            std::memcpy(out + static_cast<size_t>(idx.data()[j]) * dim_,
                        rows.data()[j], row_bytes);
          }
        });
  }

  absl::Status Push(absl::Span<const uint64_t> keys,
                    absl::Span<const float> grads) override {
    if (grads.size() != keys.size() * dim_) {
      return SizeError("push", keys.size(), grads.size());
    }
    RETURN_IF_ERROR(CheckFinite(
        grads, absl::StrCat("table '", options_.name, "' push gradient")));
    std::vector<const float*> row_grads;
    return storage_->ForEachShardGroup(
        keys, /*modify=*/true, [this](uint64_t key, float* row) { InitRow(key, row); },
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          row_grads.resize(idx.size());
          for (size_t j = 0; j < idx.size(); ++j) {
            row_grads[j] =
                grads.data() + static_cast<size_t>(idx.data()[j]) * dim_;
          }
          rule_->UpdateRows(dim_, rows, row_grads);
        });
  }

  absl::Status AddDeltas(absl::Span<const uint64_t> keys,
                         absl::Span<const float> deltas) override {
    if (deltas.size() != keys.size() * dim_) {
      return SizeError("delta push", keys.size(), deltas.size());
    }
    RETURN_IF_ERROR(CheckFinite(
        deltas, absl::StrCat("table '", options_.name, "' push delta")));
    return storage_->ForEachShardGroup(
        keys, /*modify=*/true, [this](uint64_t key, float* row) { InitRow(key, row); },
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          for (size_t j = 0; j < idx.size(); ++j) {
            const float* d = deltas.data() + static_cast<size_t>(idx[j]) * dim_;
            for (int i = 0; i < dim_; ++i) rows[j][i] += d[i];
          }
        });
  }

  absl::Status Flush() override { return storage_->Flush(); }
  int64_t size() const override { return storage_->size(); }
  int64_t memory_bytes() const override { return storage_->memory_bytes(); }
  StorageStats stats() const override { return storage_->stats(); }

 private:
  // Fills a new row: the key's initial weights, then the rule's state.
  void InitRow(uint64_t key, float* row) const {
    for (int i = 0; i < dim_; ++i) {
      row[i] = InitialWeight(options_.initializer, options_.init_seed, key, i);
    }
    rule_->InitState(absl::MakeSpan(row + dim_, stride_ - dim_));
  }

  absl::Status SizeError(absl::string_view op, size_t keys,
                         size_t floats) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", options_.name, "' ", op, ": ", keys, " keys x dim ", dim_,
        " needs ", keys * dim_, " floats, got ", floats));
  }

  const SparseTableOptions options_;
  const std::unique_ptr<OptimizerRule> rule_;
  const std::unique_ptr<SparseStorage> storage_;
  const int dim_;
  const int stride_;  // dim + state floats per row
};

absl::Status CheckOptions(const SparseTableOptions& options) {
  if (options.dim < 1 || options.dim > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", options.name, "': dim must be in [1, 4096], got ",
        options.dim));
  }
  if (options.shard_num < 1 || options.shard_num > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", options.name, "': shard_num must be in [1, 65535], got ",
        options.shard_num));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SparseTable::StorageDir(const SparseTableOptions& options) {
  return absl::StrCat(options.storage.dir(), "/", options.name, "/server-",
                      options.rank);
}

absl::StatusOr<std::unique_ptr<SparseTable>> SparseTable::Create(
    const SparseTableOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));
  if (options.storage.type() == SparseStorageConfig::TIERED) {
    if (options.storage.dir().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", options.name,
          "': TIERED storage needs storage.dir (or the server's "
          "--storage_dir)"));
    }
    ASSIGN_OR_RETURN(auto kv, OpenRocksDbKv(StorageDir(options),
                                            options.storage.rocksdb()));
    return CreateTiered(options, std::move(kv));
  }
  ASSIGN_OR_RETURN(auto rule, OptimizerRule::Create(options.optimizer));
  MemoryStorageOptions storage;
  storage.stride = options.dim + rule->StateSize(options.dim);
  storage.shard_num = options.shard_num;
  ASSIGN_OR_RETURN(auto memory, CreateMemoryStorage(storage));
  return std::unique_ptr<SparseTable>(std::make_unique<RuleSparseTable>(
      options, std::move(rule), std::move(memory)));
}

absl::StatusOr<std::unique_ptr<SparseTable>> SparseTable::CreateTiered(
    const SparseTableOptions& options, std::unique_ptr<KvStore> kv) {
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(auto rule, OptimizerRule::Create(options.optimizer));
  TieredStorageOptions storage;
  storage.table_name = options.name;
  storage.dim = options.dim;
  storage.rule_name = rule->Name();
  storage.stride = options.dim + rule->StateSize(options.dim);
  storage.num_servers = options.num_servers;
  storage.rank = options.rank;
  storage.shard_num = options.shard_num;
  if (options.storage.has_memory_budget_bytes()) {
    storage.memory_budget_bytes = options.storage.memory_budget_bytes();
  }
  ASSIGN_OR_RETURN(auto tiered, OpenTieredStorage(storage, std::move(kv)));
  return std::unique_ptr<SparseTable>(std::make_unique<RuleSparseTable>(
      options, std::move(rule), std::move(tiered)));
}

}  // namespace ps
