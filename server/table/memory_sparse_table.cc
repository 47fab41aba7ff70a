// SparseTable: the rule and the initializer over a SparseStorage (memory or
// tiered). The storage finds (or creates) the rows of each sub-shard group
// under its lock; the table then copies or updates them, prefetching rows a
// few ahead, so the cache misses of neighbouring keys overlap.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/optimizer.h"
#include "common/status_macros.h"
#include "server/storage/kv_storage.h"
#include "server/storage/memory_storage.h"
#include "server/storage/tiered_storage.h"
#include "server/table/sparse_table.h"

namespace ps {

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

// Whether every |value| < 2^kMaxUpdateExponent (NaN and Inf fail): the
// exponent field plus (256 - (127 + kMaxUpdateExponent)) carries into the
// sign bit exactly when the exponent is at or past the bound.
bool AllBelowUpdateBound(const float* values, size_t n) {
  constexpr size_t kBlock = 64;
  constexpr uint32_t kExponent = 0x7f800000u;
  constexpr uint32_t kAdd = uint32_t{256 - (127 + kMaxUpdateExponent)} << 23;
  uint32_t carry = 0;
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    uint32_t bits[kBlock];
    std::memcpy(bits, values + i, sizeof(bits));
    for (size_t k = 0; k < kBlock; ++k) carry |= (bits[k] & kExponent) + kAdd;
  }
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    carry |= (bits & kExponent) + kAdd;
  }
  return (carry & 0x80000000u) == 0;
}

}  // namespace

absl::Status CheckUpdate(absl::Span<const float> values,
                         absl::string_view what) {
  if (AllBelowUpdateBound(values.data(), values.size())) {
    return absl::OkStatus();
  }
  const float bound = std::ldexp(1.0f, kMaxUpdateExponent);
  for (size_t i = 0; i < values.size(); ++i) {
    if (!(std::fabs(values[i]) < bound)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": value ", i, " is ", values[i],
          std::isfinite(values[i])
              ? absl::StrCat(", past the bound of +-2^", kMaxUpdateExponent,
                             " on one update (a diverged worker?)")
              : " (not finite)"));
    }
  }
  return absl::OkStatus();
}

float AddClipped(float value, float delta) {
  const float sum = value + delta;
  if (std::isfinite(sum)) return sum;
  return sum > 0 ? std::numeric_limits<float>::max()
                 : -std::numeric_limits<float>::max();
}

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

// Admission counters of the keys not admitted yet, per sub-shard, each with
// its own lock (taken inside the storage's sub-shard lock, never the other
// way round). Bounded: a full sub-shard decrements every counter and drops
// those at zero (Misra-Gries), so frequent keys keep their counts.
class AdmissionCounters {
 public:
  AdmissionCounters(int shard_num, int min_count, int64_t max_keys)
      : min_count_(static_cast<uint32_t>(min_count)),
        cap_(std::max<size_t>(1, static_cast<size_t>(max_keys) / shard_num)),
        shards_(shard_num) {}

  // Counts a push of `key`; true (and forgets the key) at its min_count-th.
  bool CountAndAdmit(uint64_t key) {
    Shard& sh = shards_[SubShardForKey(key, static_cast<int>(shards_.size()))];
    absl::MutexLock lock(&sh.mu);
    auto it = sh.counts.find(key);
    const uint32_t count = (it == sh.counts.end() ? 0 : it->second) + 1;
    if (count >= min_count_) {
      if (it != sh.counts.end()) sh.counts.erase(it);
      return true;
    }
    if (it != sh.counts.end()) {
      it->second = count;
      return false;
    }
    while (sh.counts.size() >= cap_) {
      for (auto c = sh.counts.begin(); c != sh.counts.end();) {
        if (--c->second == 0) {
          sh.counts.erase(c++);
        } else {
          ++c;
        }
      }
    }
    sh.counts.emplace(key, count);
    return false;
  }

  int64_t pending() const {
    int64_t n = 0;
    for (const Shard& sh : shards_) {
      absl::MutexLock lock(&sh.mu);
      n += static_cast<int64_t>(sh.counts.size());
    }
    return n;
  }

 private:
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<uint64_t, uint32_t> counts ABSL_GUARDED_BY(mu);
  };
  const uint32_t min_count_;
  const size_t cap_;
  std::vector<Shard> shards_;
};

// Accessor floats at the end of a row.
constexpr int kAccessorFloats = 3;  // show, click, last-seen step (bits)

uint32_t LoadStep(const float* f) {
  uint32_t v;
  std::memcpy(&v, f, sizeof(v));
  return v;
}
void StoreStep(float* f, int64_t step) {
  const uint32_t v = static_cast<uint32_t>(
      std::clamp<int64_t>(step, 0, std::numeric_limits<uint32_t>::max()));
  std::memcpy(f, &v, sizeof(v));
}

class RuleSparseTable final : public SparseTable {
 public:
  RuleSparseTable(const SparseTableOptions& options,
                  std::unique_ptr<OptimizerRule> rule,
                  std::unique_ptr<SparseStorage> storage)
      : options_(options),
        rule_(std::move(rule)),
        storage_(std::move(storage)),
        dim_(options.dim),
        stride_(storage_->stride()),
        acc_(options.has_accessor ? stride_ - kAccessorFloats : -1),
        count_l2_(options.optimizer.l2_by_frequency()) {
    if (options.has_accessor && options.accessor.min_count() > 1) {
      admission_ = std::make_unique<AdmissionCounters>(
          options.shard_num, options.accessor.min_count(),
          options.accessor.max_pending_keys());
    }
  }

  using SparseTable::AddDeltas;
  using SparseTable::Push;

  const std::string& name() const override { return options_.name; }
  int dim() const override { return dim_; }
  int stride() const override { return stride_; }
  int64_t step() const override { return step_.load(); }

  absl::Status CheckRoom(absl::Span<const uint64_t> keys) override {
    const int64_t cap = options_.storage.type() == SparseStorageConfig::MEMORY
                            ? options_.storage.max_rows()
                            : 0;
    if (cap <= 0) return absl::OkStatus();
    const int64_t have = storage_->size();
    if (have + static_cast<int64_t>(keys.size()) <= cap) {
      return absl::OkStatus();
    }
    std::atomic<int64_t> missing{0};
    RETURN_IF_ERROR(storage_->ForEachShardGroup(
        keys, /*modify=*/false, [](uint64_t) { return false; },
        [](uint64_t, float*) {},
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          int64_t n = 0;
          for (size_t j = 0; j < idx.size(); ++j) n += rows[j] == nullptr;
          missing.fetch_add(n);
        }));
    if (have + missing.load() <= cap) return absl::OkStatus();
    return absl::ResourceExhaustedError(
        absl::StrCat("table '", options_.name, "' on server ", options_.rank,
                     " holds ", have, " rows and its cap is storage.max_rows ",
                     cap, ": this request would add ", missing.load(),
                     " (raise the cap, add servers, or shrink the table)"));
  }
  void SetThreadPool(ThreadPool* pool) override {
    storage_->SetThreadPool(pool);
  }

  absl::Status Pull(absl::Span<const uint64_t> keys,
                    absl::Span<float> values) override {
    if (values.size() != keys.size() * dim_) {
      return SizeError("pull", keys.size(), values.size());
    }
    float* out = values.data();
    const size_t row_bytes = dim_ * sizeof(float);
    const size_t ahead = PrefetchDistance(row_bytes);
    // With admission, pulls never make rows: only pushes count.
    const bool create = admission_ == nullptr;
    return storage_->ForEachShardGroup(
        keys, /*modify=*/false, [create](uint64_t) { return create; },
        [this](uint64_t key, float* row) { InitRow(key, row); },
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          const size_t n = idx.size();
          for (size_t j = 0; j < std::min(n, ahead); ++j) {
            if (rows[j] != nullptr) {
              PrefetchBytes</*kForWrite=*/false>(rows[j], row_bytes);
            }
          }
          for (size_t j = 0; j < n; ++j) {
            if (j + ahead < n && rows[j + ahead] != nullptr) {
              PrefetchBytes</*kForWrite=*/false>(rows[j + ahead], row_bytes);
            }
            float* dst = out + static_cast<size_t>(idx[j]) * dim_;
            if (rows[j] == nullptr) {
              InitWeights(keys[idx[j]], dst);
            } else {
              std::memcpy(dst, rows[j], row_bytes);
            }
          }
        });
  }

  absl::Status Push(absl::Span<const uint64_t> keys,
                    absl::Span<const float> grads,
                    const PushInfo& info) override {
    if (grads.size() != keys.size() * dim_) {
      return SizeError("push", keys.size(), grads.size());
    }
    RETURN_IF_ERROR(CheckUpdate(
        grads, absl::StrCat("table '", options_.name, "' push gradient")));
    RETURN_IF_ERROR(CheckCounts(keys.size(), info));
    const int64_t now = AdvanceStep(info.step);
    return storage_->ForEachShardGroup(
        keys, /*modify=*/true, [this](uint64_t key) { return Admit(key); },
        [this](uint64_t key, float* row) { InitRow(key, row); },
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          std::vector<float*> live;
          std::vector<const float*> row_grads;
          std::vector<float> counts;  // l2_by_frequency: per live row
          live.reserve(idx.size());
          row_grads.reserve(idx.size());
          if (count_l2_) counts.reserve(idx.size());
          int64_t dropped = 0;
          for (size_t j = 0; j < idx.size(); ++j) {
            if (rows[j] == nullptr) {
              ++dropped;
              continue;
            }
            live.push_back(rows[j]);
            row_grads.push_back(grads.data() +
                                static_cast<size_t>(idx[j]) * dim_);
            const float show = info.shows.empty() ? 1.0f : info.shows[idx[j]];
            if (acc_ >= 0) {
              Count(rows[j], show,
                    info.clicks.empty() ? 0.0f : info.clicks[idx[j]], now);
            }
            // The key's count (OptimizerConfig.l2_by_frequency): the
            // accessor's show count, this push's included, else the push's.
            if (count_l2_) counts.push_back(acc_ >= 0 ? rows[j][acc_] : show);
          }
          if (dropped > 0) dropped_pushes_.fetch_add(dropped);
          rule_->UpdateRows(dim_, live, row_grads,
                            UpdateContext{info.step, counts});
        });
  }

  absl::Status AddDeltas(absl::Span<const uint64_t> keys,
                         absl::Span<const float> deltas,
                         const PushInfo& info) override {
    if (deltas.size() != keys.size() * dim_) {
      return SizeError("delta push", keys.size(), deltas.size());
    }
    RETURN_IF_ERROR(CheckUpdate(
        deltas, absl::StrCat("table '", options_.name, "' push delta")));
    const int64_t now = AdvanceStep(info.step);
    return storage_->ForEachShardGroup(
        keys, /*modify=*/true, [this](uint64_t key) { return Admit(key); },
        [this](uint64_t key, float* row) { InitRow(key, row); },
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> rows) {
          int64_t dropped = 0;
          for (size_t j = 0; j < idx.size(); ++j) {
            if (rows[j] == nullptr) {
              ++dropped;
              continue;
            }
            const float* d = deltas.data() + static_cast<size_t>(idx[j]) * dim_;
            for (int i = 0; i < dim_; ++i) {
              rows[j][i] = AddClipped(rows[j][i], d[i]);
            }
            if (acc_ >= 0) Count(rows[j], 1.0f, 0.0f, now);
          }
          if (dropped > 0) dropped_pushes_.fetch_add(dropped);
        });
  }

  absl::StatusOr<int64_t> Shrink() override {
    if (acc_ < 0) return 0;
    const AccessorConfig& a = options_.accessor;
    const bool by_age = a.max_unseen_steps() > 0;
    const bool by_score = a.has_min_score();
    if (!by_age && !by_score) return 0;
    const int64_t now = step_.load();
    ASSIGN_OR_RETURN(const int64_t removed,
                     storage_->EraseIf([&](uint64_t, const float* row) {
                       const int64_t unseen = now - LoadStep(row + acc_ + 2);
                       if (by_age && unseen > a.max_unseen_steps()) return true;
                       return by_score && Score(row, now) < a.min_score();
                     }));
    shrunk_.fetch_add(removed);
    return removed;
  }

  absl::Status ForEachRow(
      absl::FunctionRef<void(uint64_t, const float*)> visit) override {
    return storage_->ForEachRow(visit);
  }

  std::string row_format() const override {
    return absl::StrCat(rule_->Name(), acc_ >= 0 ? "+accessor" : "");
  }

  absl::Status PutRows(absl::Span<const uint64_t> keys,
                       absl::Span<const float> rows) override {
    if (rows.size() != keys.size() * stride_) {
      return absl::InvalidArgumentError(
          absl::StrCat("table '", options_.name, "' restore: ", keys.size(),
                       " keys x stride ", stride_, " needs ",
                       keys.size() * stride_, " floats, got ", rows.size()));
    }
    RETURN_IF_ERROR(CheckFinite(
        rows, absl::StrCat("table '", options_.name, "' restored rows")));
    const size_t row_bytes = stride_ * sizeof(float);
    return storage_->ForEachShardGroup(
        keys, /*modify=*/true, [](uint64_t) { return true; },
        [](uint64_t, float*) {},
        [&](absl::Span<const uint32_t> idx, absl::Span<float* const> out) {
          for (size_t j = 0; j < idx.size(); ++j) {
            std::memcpy(out[j],
                        rows.data() + static_cast<size_t>(idx[j]) * stride_,
                        row_bytes);
          }
        });
  }

  void RaiseStep(int64_t step) override { AdvanceStep(step); }

  absl::Status CheckpointDisk(const std::string& dir) override {
    return storage_->CheckpointDisk(dir);
  }

  absl::Status Flush() override { return storage_->Flush(); }
  int64_t size() const override { return storage_->size(); }
  int64_t memory_bytes() const override { return storage_->memory_bytes(); }
  StorageStats stats() const override {
    StorageStats stats = storage_->stats();
    if (admission_ != nullptr) stats.pending_admissions = admission_->pending();
    stats.admitted = admitted_.load();
    stats.dropped_pushes = dropped_pushes_.load();
    stats.shrunk = shrunk_.load();
    return stats;
  }

 private:
  void InitWeights(uint64_t key, float* w) const {
    for (int i = 0; i < dim_; ++i) {
      w[i] = InitialWeight(options_.initializer, options_.init_seed, key, i);
    }
  }

  // Fills a new row: the key's initial weights, the rule's state, and with
  // an accessor no shows or clicks, seen now.
  void InitRow(uint64_t key, float* row) const {
    InitWeights(key, row);
    const int state_end = acc_ >= 0 ? acc_ : stride_;
    rule_->InitState(absl::MakeSpan(row + dim_, state_end - dim_));
    if (acc_ >= 0) {
      row[acc_] = 0.0f;
      row[acc_ + 1] = 0.0f;
      StoreStep(row + acc_ + 2, step_.load());
    }
  }

  bool Admit(uint64_t key) {
    if (admission_ != nullptr && !admission_->CountAndAdmit(key)) return false;
    admitted_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Factor by which counts decay over `steps` steps.
  double Decay(int64_t steps) const {
    const double half_life = options_.accessor.score_half_life_steps();
    if (half_life <= 0 || steps <= 0) return 1.0;
    return std::exp2(-static_cast<double>(steps) / half_life);
  }

  // Decays the row's counts to `now`, adds a push's, stamps `now`.
  void Count(float* row, float show, float click, int64_t now) const {
    const double f = Decay(now - LoadStep(row + acc_ + 2));
    row[acc_] = static_cast<float>(row[acc_] * f + show);
    row[acc_ + 1] = static_cast<float>(row[acc_ + 1] * f + click);
    StoreStep(row + acc_ + 2, now);
  }

  double Score(const float* row, int64_t now) const {
    const AccessorConfig& a = options_.accessor;
    const double f = Decay(now - LoadStep(row + acc_ + 2));
    const double show = row[acc_] * f;
    const double click = row[acc_ + 1] * f;
    return a.nonclick_weight() * (show - click) + a.click_weight() * click;
  }

  int64_t AdvanceStep(int64_t step) {
    int64_t seen = step_.load();
    while (step > seen && !step_.compare_exchange_weak(seen, step)) {
    }
    return std::max(seen, step);
  }

  absl::Status CheckCounts(size_t keys, const PushInfo& info) const {
    for (const auto& [what, v] : {std::make_pair("shows", info.shows),
                                  std::make_pair("clicks", info.clicks)}) {
      if (!v.empty() && v.size() != keys) {
        return absl::InvalidArgumentError(
            absl::StrCat("table '", options_.name, "' push: ", v.size(), " ",
                         what, " for ", keys, " keys"));
      }
      RETURN_IF_ERROR(CheckFinite(
          v, absl::StrCat("table '", options_.name, "' push ", what)));
    }
    return absl::OkStatus();
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
  const int stride_;     // dim + state (+ accessor) floats per row
  const int acc_;        // first accessor float, or -1 without an accessor
  const bool count_l2_;  // l2_by_frequency: UpdateRows gets the keys' counts
  std::unique_ptr<AdmissionCounters> admission_;
  std::atomic<int64_t> step_{0};
  std::atomic<int64_t> admitted_{0};
  std::atomic<int64_t> dropped_pushes_{0};
  std::atomic<int64_t> shrunk_{0};
};

int RowStride(const SparseTableOptions& options, const OptimizerRule& rule) {
  return options.dim + rule.StateSize(options.dim) +
         (options.has_accessor ? kAccessorFloats : 0);
}

absl::Status CheckOptions(const SparseTableOptions& options) {
  if (options.dim < 1 || options.dim > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("table '", options.name,
                     "': dim must be in [1, 4096], got ", options.dim));
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
      return absl::InvalidArgumentError(
          absl::StrCat("table '", options.name,
                       "': TIERED storage needs storage.dir (or the server's "
                       "--storage_dir)"));
    }
    ASSIGN_OR_RETURN(
        auto kv, OpenRocksDbKv(StorageDir(options), options.storage.rocksdb()));
    return CreateTiered(options, std::move(kv));
  }
  ASSIGN_OR_RETURN(auto rule, OptimizerRule::Create(options.optimizer));
  MemoryStorageOptions storage;
  storage.stride = RowStride(options, *rule);
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
  storage.rule_name =
      absl::StrCat(rule->Name(), options.has_accessor ? "+accessor" : "");
  storage.stride = RowStride(options, *rule);
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
