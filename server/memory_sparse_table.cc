// In-memory SparseTable: per sub-shard, a hash map from key to row number and
// rows in fixed-size chunks of contiguous floats (no allocation per key, row
// pointers stable while the table lives).
#include <cmath>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "server/optimizer.h"
#include "server/sparse_table.h"

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

absl::Status CheckFinite(absl::Span<const float> values,
                         absl::string_view what) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": value ", i, " is ", values[i], " (not finite)"));
    }
  }
  return absl::OkStatus();
}

namespace {

class MemorySparseTable final : public SparseTable {
 public:
  MemorySparseTable(const SparseTableOptions& options,
                    std::unique_ptr<OptimizerRule> rule)
      : options_(options),
        rule_(std::move(rule)),
        dim_(options.dim),
        stride_(options.dim + rule_->StateSize(options.dim)),
        shards_(options.shard_num) {}

  const std::string& name() const override { return options_.name; }
  int dim() const override { return dim_; }

  absl::Status Pull(absl::Span<const uint64_t> keys,
                    absl::Span<float> values) override {
    if (values.size() != keys.size() * dim_) {
      return SizeError("pull", keys.size(), values.size());
    }
    ForEachShard(keys, [&](Shard& shard, size_t i) {
      const float* row = shard.FindOrCreate(keys[i], *this);
      std::copy(row, row + dim_, values.begin() + i * dim_);
    });
    return absl::OkStatus();
  }

  absl::Status Push(absl::Span<const uint64_t> keys,
                    absl::Span<const float> grads) override {
    if (grads.size() != keys.size() * dim_) {
      return SizeError("push", keys.size(), grads.size());
    }
    RETURN_IF_ERROR(CheckFinite(
        grads, absl::StrCat("table '", options_.name, "' push gradient")));
    const int state = stride_ - dim_;
    ForEachShard(keys, [&](Shard& shard, size_t i) {
      float* row = shard.FindOrCreate(keys[i], *this);
      rule_->Update(RowView{absl::MakeSpan(row, dim_),
                            absl::MakeSpan(row + dim_, state)},
                    grads.subspan(i * dim_, dim_));
    });
    return absl::OkStatus();
  }

  int64_t size() const override {
    int64_t n = 0;
    for (auto& s : shards_) {
      absl::MutexLock lock(&s.mu);
      n += s.num_rows;
    }
    return n;
  }

  int64_t memory_bytes() const override {
    int64_t bytes = 0;
    for (auto& s : shards_) {
      absl::MutexLock lock(&s.mu);
      bytes += static_cast<int64_t>(s.chunks.size()) * kChunkRows * stride_ *
                   sizeof(float) +
               static_cast<int64_t>(s.index.capacity()) *
                   (sizeof(uint64_t) + sizeof(uint32_t) + 1);
    }
    return bytes;
  }

 private:
  static constexpr int kChunkRows = 1024;

  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<uint64_t, uint32_t> index ABSL_GUARDED_BY(mu);
    std::vector<std::unique_ptr<float[]>> chunks ABSL_GUARDED_BY(mu);
    uint32_t num_rows ABSL_GUARDED_BY(mu) = 0;

    // REQUIRES: mu held.
    float* Row(uint32_t r, int stride) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return chunks[r / kChunkRows].get() +
             static_cast<size_t>(r % kChunkRows) * stride;
    }

    float* FindOrCreate(uint64_t key, const MemorySparseTable& t)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      auto [it, inserted] = index.try_emplace(key, num_rows);
      if (!inserted) return Row(it->second, t.stride_);
      if (num_rows % kChunkRows == 0) {
        chunks.push_back(
            std::make_unique<float[]>(static_cast<size_t>(kChunkRows) * t.stride_));
      }
      float* row = Row(num_rows++, t.stride_);
      for (int i = 0; i < t.dim_; ++i) {
        row[i] = InitialWeight(t.options_.initializer, t.options_.init_seed,
                               key, i);
      }
      t.rule_->InitState(absl::MakeSpan(row + t.dim_, t.stride_ - t.dim_));
      return row;
    }
  };

  absl::Status SizeError(absl::string_view op, size_t keys,
                         size_t floats) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", options_.name, "' ", op, ": ", keys, " keys x dim ", dim_,
        " needs ", keys * dim_, " floats, got ", floats));
  }

  // Calls fn(shard, i) for every key index i with the key's shard locked,
  // taking each shard's lock once.
  template <typename Fn>
  void ForEachShard(absl::Span<const uint64_t> keys, Fn fn) {
    const int n = static_cast<int>(shards_.size());
    std::vector<uint32_t> count(n + 1, 0);
    std::vector<uint16_t> shard_of(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      shard_of[i] = static_cast<uint16_t>(SubShardForKey(keys[i], n));
      ++count[shard_of[i] + 1];
    }
    for (int s = 0; s < n; ++s) count[s + 1] += count[s];
    std::vector<uint32_t> order(keys.size());
    std::vector<uint32_t> fill(count.begin(), count.end() - 1);
    for (size_t i = 0; i < keys.size(); ++i) {
      order[fill[shard_of[i]]++] = static_cast<uint32_t>(i);
    }
    for (int s = 0; s < n; ++s) {
      if (count[s] == count[s + 1]) continue;
      Shard& shard = shards_[s];
      absl::MutexLock lock(&shard.mu);
      for (uint32_t j = count[s]; j < count[s + 1]; ++j) fn(shard, order[j]);
    }
  }

  const SparseTableOptions options_;
  const std::unique_ptr<OptimizerRule> rule_;
  const int dim_;
  const int stride_;  // dim + state floats per row
  mutable std::vector<Shard> shards_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SparseTable>> SparseTable::Create(
    const SparseTableOptions& options) {
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
  ASSIGN_OR_RETURN(auto rule, OptimizerRule::Create(options.optimizer));
  return std::unique_ptr<SparseTable>(
      std::make_unique<MemorySparseTable>(options, std::move(rule)));
}

}  // namespace ps
