#include "server/memory_storage.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "server/storage_row_chunks.h"
#include "server/storage_row_index.h"

namespace ps {

void GroupBySubShard(absl::Span<const uint64_t> keys, int shard_num,
                     std::vector<uint32_t>* order,
                     std::vector<uint32_t>* begin) {
  begin->assign(shard_num + 1, 0);
  std::vector<uint16_t> shard_of(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    shard_of[i] = static_cast<uint16_t>(SubShardForKey(keys[i], shard_num));
    ++(*begin)[shard_of[i] + 1];
  }
  for (int s = 0; s < shard_num; ++s) (*begin)[s + 1] += (*begin)[s];
  order->resize(keys.size());
  std::vector<uint32_t> fill(begin->begin(), begin->end() - 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    (*order)[fill[shard_of[i]]++] = static_cast<uint32_t>(i);
  }
}

namespace {

// Keys whose index slots are prefetched ahead of the lookup.
constexpr size_t kPrefetchKeys = 8;

class MemoryStorage final : public SparseStorage {
 public:
  explicit MemoryStorage(const MemoryStorageOptions& options)
      : stride_(options.stride) {
    shards_.reserve(options.shard_num);
    for (int s = 0; s < options.shard_num; ++s) {
      shards_.push_back(std::make_unique<Shard>(stride_));
    }
  }

  int stride() const override { return stride_; }

  absl::Status ForEachShardGroup(absl::Span<const uint64_t> keys,
                                 bool /*modify*/, InitRow init,
                                 GroupFn fn) override {
    std::vector<uint32_t> order, begin;
    GroupBySubShard(keys, static_cast<int>(shards_.size()), &order, &begin);
    std::vector<float*> rows(keys.size());
    for (size_t s = 0; s < shards_.size(); ++s) {
      const uint32_t size = begin[s + 1] - begin[s];
      if (size == 0) continue;
      const absl::Span<const uint32_t> idx(order.data() + begin[s], size);
      const absl::Span<float*> group_rows(rows.data() + begin[s], size);
      Shard& shard = *shards_[s];
      absl::MutexLock lock(&shard.mu);
      shard.FindOrCreateAll(keys.data(), idx, group_rows, init);
      fn(idx, absl::Span<float* const>(group_rows));
    }
    return absl::OkStatus();
  }

  absl::Status Flush() override { return absl::OkStatus(); }

  int64_t size() const override {
    int64_t n = 0;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      n += s->num_rows;
    }
    return n;
  }

  int64_t memory_bytes() const override {
    int64_t bytes = 0;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      bytes += s->rows.bytes() + static_cast<int64_t>(s->index.capacity()) *
                                     RowIndex::kSlotBytes;
    }
    return bytes;
  }

  StorageStats stats() const override {
    StorageStats stats;
    stats.rows_in_memory = size();
    stats.memory_bytes = memory_bytes();
    return stats;
  }

 private:
  struct Shard {
    explicit Shard(int stride) : rows(stride) {}

    mutable absl::Mutex mu;
    RowIndex index ABSL_GUARDED_BY(mu);
    RowChunks rows ABSL_GUARDED_BY(mu);
    uint32_t num_rows ABSL_GUARDED_BY(mu) = 0;

    // out[j] = the row of keys[idx[j]], created if missing, for every j.
    void FindOrCreateAll(const uint64_t* keys, absl::Span<const uint32_t> idx,
                         absl::Span<float*> out, InitRow init)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      const size_t n = idx.size();
      const uint32_t* i = idx.data();
      for (size_t j = 0; j < std::min(n, kPrefetchKeys); ++j) {
        index.Prefetch(keys[i[j]]);
      }
      for (size_t j = 0; j < n; ++j) {
        if (j + kPrefetchKeys < n) index.Prefetch(keys[i[j + kPrefetchKeys]]);
        const uint64_t key = keys[i[j]];
        const auto [r, inserted] = index.FindOrInsert(key, num_rows);
        if (!inserted) {
          out.data()[j] = rows.Row(r);
          continue;
        }
        rows.Reserve(num_rows);
        float* row = rows.Row(num_rows++);
        init(key, row);
        out.data()[j] = row;
      }
    }
  };

  const int stride_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SparseStorage>> CreateMemoryStorage(
    const MemoryStorageOptions& options) {
  if (options.stride < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory storage: stride must be >= 1, got ",
                     options.stride));
  }
  if (options.shard_num < 1 || options.shard_num > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "memory storage: shard_num must be in [1, 65535], got ",
        options.shard_num));
  }
  return std::unique_ptr<SparseStorage>(
      std::make_unique<MemoryStorage>(options));
}

}  // namespace ps
