// In-memory SparseTable: per sub-shard, an index from key to row number and
// rows in fixed-size, cache-line aligned chunks of contiguous floats (no
// allocation per key, row pointers stable while the table lives).
//
// Pull and Push work in two phases per sub-shard group, under its lock: find
// (or create) every row, prefetching index slots a few keys ahead, then
// copy or update the rows, prefetching rows a few ahead, so that the cache
// misses of neighbouring keys overlap instead of being paid one by one.
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

// Rows are allocated in chunks aligned to a cache line, so a row of 16
// floats (dim 8 with Adagrad) is one line and a row of 2^k lines is never
// split over 2^k + 1.
constexpr size_t kCacheLine = 64;

struct AlignedFree {
  void operator()(float* p) const {
    ::operator delete[](p, std::align_val_t(kCacheLine));
  }
};
using Chunk = std::unique_ptr<float[], AlignedFree>;

Chunk NewChunk(size_t floats) {
  return Chunk(static_cast<float*>(
      ::operator new[](floats * sizeof(float), std::align_val_t(kCacheLine))));
}

// Keys whose index slots are prefetched ahead of the lookup.
constexpr size_t kPrefetchKeys = 8;

// A map from key to row number for one sub-shard: open addressing with
// linear probing over 16-byte slots (4 to a cache line), at most 3/4 full,
// so a lookup mostly reads the one line its key's hash points to, which
// Prefetch(key) fetches ahead. (absl::flat_hash_map::prefetch fetches only
// the first of the four lines of a probe group's slots; measured here, this
// index made pulls of dim <= 16 about 1.5x faster.) Not thread-safe: the
// shard's lock guards it.
class RowIndex {
 public:
  static constexpr size_t kSlotBytes = 16;

  RowIndex() : slots_(kMinCapacity) {}

  void Prefetch(uint64_t key) const { __builtin_prefetch(&slots_[Home(key)]); }

  // The row of `key`; when missing, first inserts key -> `row`. Returns the
  // row and whether it inserted.
  std::pair<uint32_t, bool> FindOrInsert(uint64_t key, uint32_t row) {
    const size_t mask = slots_.size() - 1;
    for (size_t i = Home(key);; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.row == kEmpty) break;
      if (slot.key == key) return {slot.row, false};
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
    Place(Slot{key, row});
    ++size_;
    return {row, true};
  }

  size_t capacity() const { return slots_.size(); }

 private:
  static constexpr uint32_t kEmpty = ~0u;  // never a row number
  static constexpr size_t kMinCapacity = 16;

  struct Slot {
    uint64_t key = 0;
    uint32_t row = kEmpty;
  };
  static_assert(sizeof(Slot) == kSlotBytes);

  // Low bits of the mixed key (the sub-shard comes from its high bits).
  size_t Home(uint64_t key) const { return Mix64(key) & (slots_.size() - 1); }

  // REQUIRES: slot.key absent, a free slot.
  void Place(const Slot& slot) {
    const size_t mask = slots_.size() - 1;
    size_t i = Home(slot.key);
    while (slots_[i].row != kEmpty) i = (i + 1) & mask;
    slots_[i] = slot;
  }

  void Grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& slot : old) {
      if (slot.row != kEmpty) Place(slot);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

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
    float* out = values.data();
    const size_t row_bytes = dim_ * sizeof(float);
    const size_t ahead = PrefetchDistance(row_bytes);
    ForEachShardGroup(keys, [&](absl::Span<const uint32_t> idx,
                                absl::Span<float* const> rows) {
      const size_t n = idx.size();
      for (size_t j = 0; j < std::min(n, ahead); ++j) {
        PrefetchBytes</*kForWrite=*/false>(rows.data()[j], row_bytes);
      }
      for (size_t j = 0; j < n; ++j) {
        if (j + ahead < n) {
          PrefetchBytes</*kForWrite=*/false>(rows.data()[j + ahead], row_bytes);
        }
        std::memcpy(out + static_cast<size_t>(idx.data()[j]) * dim_,
                    rows.data()[j], row_bytes);
      }
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
    std::vector<const float*> row_grads;
    ForEachShardGroup(keys, [&](absl::Span<const uint32_t> idx,
                                absl::Span<float* const> rows) {
      row_grads.resize(idx.size());
      for (size_t j = 0; j < idx.size(); ++j) {
        row_grads[j] = grads.data() + static_cast<size_t>(idx.data()[j]) * dim_;
      }
      rule_->UpdateRows(dim_, rows, row_grads);
    });
    return absl::OkStatus();
  }

  absl::Status AddDeltas(absl::Span<const uint64_t> keys,
                         absl::Span<const float> deltas) override {
    if (deltas.size() != keys.size() * dim_) {
      return SizeError("delta push", keys.size(), deltas.size());
    }
    RETURN_IF_ERROR(CheckFinite(
        deltas, absl::StrCat("table '", options_.name, "' push delta")));
    ForEachShardGroup(keys, [&](absl::Span<const uint32_t> idx,
                                absl::Span<float* const> rows) {
      for (size_t j = 0; j < idx.size(); ++j) {
        const float* d = deltas.data() + static_cast<size_t>(idx[j]) * dim_;
        for (int i = 0; i < dim_; ++i) rows[j][i] += d[i];
      }
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
               static_cast<int64_t>(s.index.capacity()) * RowIndex::kSlotBytes;
    }
    return bytes;
  }

 private:
  static constexpr int kChunkRows = 1024;

  struct Shard {
    mutable absl::Mutex mu;
    RowIndex index ABSL_GUARDED_BY(mu);
    std::vector<Chunk> chunks ABSL_GUARDED_BY(mu);
    uint32_t num_rows ABSL_GUARDED_BY(mu) = 0;

    float* Row(uint32_t r, int stride) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return chunks[r / kChunkRows].get() +
             static_cast<size_t>(r % kChunkRows) * stride;
    }

    // rows[j] = the row of keys[idx[j]], created if missing, for every j.
    // Row pointers stay valid while the table lives.
    void FindOrCreateAll(const uint64_t* keys, absl::Span<const uint32_t> idx,
                         absl::Span<float*> rows, const MemorySparseTable& t)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      const size_t n = idx.size();
      const uint32_t* i = idx.data();
      for (size_t j = 0; j < std::min(n, kPrefetchKeys); ++j) {
        index.Prefetch(keys[i[j]]);
      }
      for (size_t j = 0; j < n; ++j) {
        if (j + kPrefetchKeys < n) index.Prefetch(keys[i[j + kPrefetchKeys]]);
        rows.data()[j] = FindOrCreate(keys[i[j]], t);
      }
    }

    float* FindOrCreate(uint64_t key, const MemorySparseTable& t)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      const auto [r, inserted] = index.FindOrInsert(key, num_rows);
      if (!inserted) return Row(r, t.stride_);
      if (num_rows % kChunkRows == 0) {
        chunks.push_back(NewChunk(static_cast<size_t>(kChunkRows) * t.stride_));
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

  // Groups the keys by sub-shard. For each group in turn, with its shard
  // locked (each lock taken once): first finds or creates the row of every
  // key of the group, then calls fn(idx, rows), where idx lists the
  // positions in `keys` of the group's keys in increasing order and rows[j]
  // is the row of keys[idx[j]] (the same row for duplicate keys).
  template <typename Fn>
  void ForEachShardGroup(absl::Span<const uint64_t> keys, Fn fn) {
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
    std::vector<float*> rows(keys.size());
    for (int s = 0; s < n; ++s) {
      const uint32_t begin = count[s];
      const uint32_t size = count[s + 1] - begin;
      if (size == 0) continue;
      const absl::Span<const uint32_t> idx(order.data() + begin, size);
      const absl::Span<float*> group_rows(rows.data() + begin, size);
      Shard& shard = shards_[s];
      absl::MutexLock lock(&shard.mu);
      shard.FindOrCreateAll(keys.data(), idx, group_rows, *this);
      fn(idx, absl::Span<float* const>(group_rows));
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
