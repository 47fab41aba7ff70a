#include "server/storage/memory_storage.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/thread_pool.h"
#include "server/storage/storage_row_chunks.h"
#include "server/storage/storage_row_index.h"

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

absl::Status RunShardGroups(ThreadPool* pool, absl::Span<const uint64_t> keys,
                            int shard_num, ShardGroupFn group_fn) {
  std::vector<uint32_t> order, begin;
  GroupBySubShard(keys, shard_num, &order, &begin);
  std::vector<float*> rows(keys.size());
  auto group = [&](size_t s) {
    const uint32_t size = begin[s + 1] - begin[s];
    return group_fn(s,
                    absl::Span<const uint32_t>(order.data() + begin[s], size),
                    absl::Span<float*>(rows.data() + begin[s], size));
  };
  const size_t shards = begin.size() - 1;
  if (pool == nullptr || pool->threads() == 0 ||
      begin[shards] < kParallelGroupKeys) {
    for (size_t s = 0; s < shards; ++s) {
      if (begin[s + 1] == begin[s]) continue;
      absl::Status status = group(s);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  std::vector<size_t> busy;
  for (size_t s = 0; s < shards; ++s) {
    if (begin[s + 1] > begin[s]) busy.push_back(s);
  }
  std::vector<absl::Status> statuses(busy.size());
  pool->ParallelFor(busy.size(),
                    [&](size_t i) { statuses[i] = group(busy[i]); });
  for (absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

namespace {

// Keys whose index slots are prefetched ahead of the lookup.
constexpr size_t kPrefetchKeys = 8;
// Floats before each row that hold its key.
constexpr int kKeyFloats = 2;
// Bytes per row chunk: the last, partly used chunk of a sub-shard wastes at
// most this, so large rows get fewer rows per chunk (dim 64 with Adagrad:
// 126) and the waste stays a few bytes per row.
constexpr size_t kChunkBytes = 64 << 10;

uint32_t ChunkRows(int floats) {
  return static_cast<uint32_t>(std::clamp<size_t>(
      kChunkBytes / (static_cast<size_t>(floats) * sizeof(float)), 16,
      RowChunks::kChunkRows));
}

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
                                 bool /*modify*/, AdmitFn admit, InitRow init,
                                 GroupFn fn) override {
    return RunShardGroups(pool(), keys, static_cast<int>(shards_.size()),
                          [&](size_t s, absl::Span<const uint32_t> idx,
                              absl::Span<float*> group_rows) {
                            Shard& shard = *shards_[s];
                            absl::MutexLock lock(&shard.mu);
                            shard.FindOrCreateAll(keys.data(), idx, group_rows,
                                                  admit, init);
                            fn(idx, absl::Span<float* const>(group_rows));
                            return absl::OkStatus();
                          });
  }

  absl::StatusOr<int64_t> EraseIf(RowPredicate pred) override {
    int64_t erased = 0;
    for (auto& shard : shards_) {
      absl::MutexLock lock(&shard->mu);
      erased += shard->EraseIf(pred);
    }
    return erased;
  }

  absl::Status ForEachRow(RowVisitor visit) override {
    for (auto& shard : shards_) {
      absl::MutexLock lock(&shard->mu);
      shard->ForEachRow(visit);
    }
    return absl::OkStatus();
  }

  absl::Status Flush() override { return absl::OkStatus(); }

  int64_t size() const override {
    int64_t n = 0;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      n += s->index.size();
    }
    return n;
  }

  int64_t memory_bytes() const override {
    int64_t bytes = 0;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      bytes +=
          s->rows.bytes() +
          static_cast<int64_t>(s->index.capacity()) * RowIndex::kSlotBytes +
          static_cast<int64_t>(s->free.capacity()) * 4;
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
  // Rows of kKeyFloats + stride floats: the key, then the row. A row number
  // below num_rows is live unless it is on the free list (its key slot then
  // holds kFreeMark, no key's index entry points to it).
  struct Shard {
    explicit Shard(int stride)
        : stride(stride),
          rows(kKeyFloats + stride, ChunkRows(kKeyFloats + stride)) {}

    const int stride;
    mutable absl::Mutex mu;
    RowIndex index ABSL_GUARDED_BY(mu);
    RowChunks rows ABSL_GUARDED_BY(mu);
    std::vector<uint32_t> free ABSL_GUARDED_BY(mu);  // erased row numbers
    std::vector<bool> dead ABSL_GUARDED_BY(mu);      // by row, for scans
    uint32_t num_rows ABSL_GUARDED_BY(mu) = 0;       // row numbers used

    uint64_t KeyOf(uint32_t r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      uint64_t key;
      std::memcpy(&key, rows.Row(r), sizeof(key));
      return key;
    }
    float* Data(uint32_t r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return rows.Row(r) + kKeyFloats;
    }

    uint32_t NewRow(uint64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      uint32_t r;
      if (!free.empty()) {
        r = free.back();
        free.pop_back();
        dead[r] = false;
      } else {
        r = num_rows++;
        rows.Reserve(r);
        if (!dead.empty()) dead.push_back(false);
      }
      std::memcpy(rows.Row(r), &key, sizeof(key));
      return r;
    }

    // out[j] = the row of keys[idx[j]], created if missing and admitted
    // (else nullptr), for every j.
    void FindOrCreateAll(const uint64_t* keys, absl::Span<const uint32_t> idx,
                         absl::Span<float*> out, AdmitFn admit, InitRow init)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      const size_t n = idx.size();
      const uint32_t* i = idx.data();
      const auto key_of = [this](uint32_t r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return KeyOf(r);
      };
      for (size_t j = 0; j < std::min(n, kPrefetchKeys); ++j) {
        index.Prefetch(keys[i[j]]);
      }
      for (size_t j = 0; j < n; ++j) {
        if (j + kPrefetchKeys < n) index.Prefetch(keys[i[j + kPrefetchKeys]]);
        const uint64_t key = keys[i[j]];
        const uint32_t found = index.Find(key, key_of);
        if (found != RowIndex::kNone) {
          out.data()[j] = Data(found);
          continue;
        }
        if (!admit(key)) {
          out.data()[j] = nullptr;
          continue;
        }
        const uint32_t r = NewRow(key);
        index.FindOrInsert(key, r, key_of);
        float* row = Data(r);
        init(key, row);
        out.data()[j] = row;
      }
    }

    // Live rows in row order (a scan of the chunks, not of the index).
    template <typename Fn>
    void ForEachLive(Fn&& fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      for (uint32_t r = 0; r < num_rows; ++r) {
        if (!dead.empty() && dead[r]) continue;
        fn(r);
      }
    }

    int64_t EraseIf(RowPredicate pred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (dead.empty()) dead.assign(num_rows, false);
      const auto key_of = [this](uint32_t r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return KeyOf(r);
      };
      int64_t erased = 0;
      ForEachLive([&](uint32_t r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        const uint64_t key = KeyOf(r);
        if (!pred(key, Data(r))) return;
        index.Erase(key, key_of);
        dead[r] = true;
        free.push_back(r);
        ++erased;
      });
      return erased;
    }

    void ForEachRow(RowVisitor visit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      ForEachLive([&](uint32_t r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        visit(KeyOf(r), Data(r));
      });
    }
  };

  const int stride_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SparseStorage>> CreateMemoryStorage(
    const MemoryStorageOptions& options) {
  if (options.stride < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "memory storage: stride must be >= 1, got ", options.stride));
  }
  if (options.shard_num < 1 || options.shard_num > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory storage: shard_num must be in [1, 65535], got ",
                     options.shard_num));
  }
  return std::unique_ptr<SparseStorage>(
      std::make_unique<MemoryStorage>(options));
}

}  // namespace ps
