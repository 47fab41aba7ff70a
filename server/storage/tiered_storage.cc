#include "server/storage/tiered_storage.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"
#include "glog/logging.h"
#include "server/storage/storage_row_chunks.h"
#include "server/storage/storage_row_index.h"

namespace ps {

std::string EncodeRowKey(uint64_t key) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>((key >> (56 - 8 * i)) & 0xFF);
  }
  return out;
}

bool DecodeRowKey(absl::string_view bytes, uint64_t* key) {
  if (bytes.size() != 8) return false;
  uint64_t k = 0;
  for (char c : bytes) k = (k << 8) | static_cast<uint8_t>(c);
  *key = k;
  return true;
}

namespace {

uint64_t DecodeKnownKey(absl::string_view bytes) {
  uint64_t key = 0;
  DecodeRowKey(bytes, &key);
  return key;
}

const std::string& MetaKey() {
  static const std::string* key = new std::string("\0meta", 5);
  return *key;
}

// Rows written per batch by Flush.
constexpr size_t kFlushBatchRows = 4096;
// From this many dirty rows Flush writes them in one sorted bulk write.
constexpr size_t kBulkRows = 16384;
// Keys whose index slots are prefetched ahead of the lookup.
constexpr size_t kPrefetchKeys = 8;
// Most turns of the clock hand per MakeRoom.
constexpr uint64_t kMaxTurns = 10;
// MakeRoom evicts 1/this of the capacity beyond what it needs, so that
// evictions (and their write-backs) come in batches. It also sets how long
// a new row stays on probation: about that many later arrivals. 16 gave
// the best hit rate in sparse_table_bench (Zipf 1.1, 10x over budget,
// long runs): 0.689, against 0.678 with 32, 0.687 with 8, 0.670 with 4.
constexpr uint32_t kEvictSlack = 16;
// The probation queue holds at most 1/this of the capacity (4-byte
// entries: at most 2 bytes per row of the budget). 4 cost 0.01 of hit
// rate in sparse_table_bench, 8 more.
constexpr uint32_t kMaxProbationShare = 2;

// Slot flags.
constexpr uint8_t kUsed = 1;
constexpr uint8_t kDirty = 4;    // differs from the disk tier
constexpr uint8_t kPinned = 8;   // in use by the running group: not evictable
constexpr uint8_t kOnDisk = 16;  // the disk tier holds the key (maybe older)
constexpr uint8_t kProbation = 32;  // came in by a miss, not used since

// The count record of sub-shard s of n: how many row keys of that sub-shard
// the disk tier holds, in decimal. Written in the same batch as every write
// or delete that changes it, so it is exact across restarts; longer than a
// row key, so scans skip it.
std::string CountKey(int n, int s) {
  return absl::StrCat(absl::string_view("\0meta/rows/", 11), n, "/", s);
}

// The owner record stored under MetaKey().
struct Meta {
  std::string table;
  int dim = 0;
  std::string rule;
  int state = 0;
  int num_servers = 0;
  int rank = 0;

  std::string Encode() const {
    return absl::StrCat("table=", table, "\ndim=", dim, "\nrule=", rule,
                        "\nstate=", state, "\nnum_servers=", num_servers,
                        "\nrank=", rank);
  }
  static bool Decode(absl::string_view text, Meta* m) {
    int fields = 0;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(line, absl::MaxSplits('=', 1));
      const auto& [k, v] = kv;
      bool ok = true;
      if (k == "table") {
        m->table = std::string(v);
      } else if (k == "rule") {
        m->rule = std::string(v);
      } else if (k == "dim") {
        ok = absl::SimpleAtoi(v, &m->dim);
      } else if (k == "state") {
        ok = absl::SimpleAtoi(v, &m->state);
      } else if (k == "num_servers") {
        ok = absl::SimpleAtoi(v, &m->num_servers);
      } else if (k == "rank") {
        ok = absl::SimpleAtoi(v, &m->rank);
      } else {
        continue;
      }
      if (!ok) return false;
      ++fields;
    }
    return fields == 6;
  }
  bool operator==(const Meta& o) const {
    return table == o.table && dim == o.dim && rule == o.rule &&
           state == o.state && num_servers == o.num_servers && rank == o.rank;
  }
  std::string Describe() const {
    return absl::StrCat("table '", table, "' dim ", dim, " ", rule, " (state ",
                        state, ", server ", rank, " of ", num_servers, ")");
  }
};

class TieredStorage final : public SparseStorage {
 public:
  TieredStorage(const TieredStorageOptions& options,
                std::unique_ptr<KvStore> kv)
      : options_(options),
        stride_(options.stride),
        row_bytes_(static_cast<size_t>(options.stride) * sizeof(float)),
        kv_(std::move(kv)) {
    // Memory per resident row: the row, its key, flags and use count, a
    // free-list entry, its index slots at 3/4 load and its share of the
    // probation queue.
    const int64_t per_row = static_cast<int64_t>(row_bytes_) + 8 + 1 + 1 + 4 +
                            RowIndex::kSlotBytes * 4 / 3 +
                            4 / kMaxProbationShare;
    const int64_t per_shard =
        options.memory_budget_bytes / options.shard_num / per_row;
    const uint32_t capacity =
        static_cast<uint32_t>(std::clamp<int64_t>(per_shard, 16, 1 << 30));
    // RowChunks rounds chunks down to a power of two: at most a sixteenth
    // of the capacity per chunk keeps the last chunk's unused rows (the
    // memory allocated beyond the budget) under 1/16 of it.
    const uint32_t chunk_rows =
        std::clamp<uint32_t>(capacity / 16, 1, RowChunks::kChunkRows);
    shards_.reserve(options.shard_num);
    for (int s = 0; s < options.shard_num; ++s) {
      shards_.push_back(
          std::make_unique<Shard>(s, stride_, capacity, chunk_rows));
    }
  }

  ~TieredStorage() override {
    absl::Status s = Flush();
    if (!s.ok()) {
      LOG(ERROR) << "table '" << options_.table_name
                 << "': dirty rows lost at close: " << s;
    }
  }

  int stride() const override { return stride_; }

  absl::Status ForEachShardGroup(absl::Span<const uint64_t> keys, bool modify,
                                 AdmitFn admit, InitRow init,
                                 GroupFn fn) override {
    return RunShardGroups(pool(), keys, static_cast<int>(shards_.size()),
                          [&](size_t s, absl::Span<const uint32_t> idx,
                              absl::Span<float*> group_rows) {
                            Shard& shard = *shards_[s];
                            absl::MutexLock lock(&shard.mu);
                            return DoGroup(shard, keys.data(), idx, group_rows,
                                           modify, admit, init, fn);
                          });
  }

  // Memory tier first: a row in memory is the newest copy; its disk copy is
  // deleted before it leaves memory, so a failed delete loses nothing. Then
  // the disk tier: rows found by a scan are read again and re-checked under
  // their sub-shard's lock (and skipped when in memory), so a row changed
  // since the scan is judged by its current value.
  absl::StatusOr<int64_t> EraseIf(RowPredicate pred) override {
    int64_t erased = 0;
    for (auto& shard : shards_) {
      Shard& sh = *shard;
      absl::MutexLock lock(&sh.mu);
      std::vector<uint32_t> victims;
      std::vector<std::string> disk_keys;
      for (uint32_t s = 0; s < sh.num_slots; ++s) {
        if ((sh.flags[s] & kUsed) && pred(sh.keys[s], sh.rows.Row(s))) {
          victims.push_back(s);
          if (sh.flags[s] & kOnDisk) {
            disk_keys.push_back(EncodeRowKey(sh.keys[s]));
          }
        }
      }
      RETURN_IF_ERROR(DeleteOnDisk(sh, disk_keys));
      for (uint32_t s : victims) DropSlot(sh, s);
      erased += static_cast<int64_t>(victims.size());
    }
    std::vector<uint64_t> candidates;
    auto sweep = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(int64_t n, EraseOnDisk(candidates, pred));
      erased += n;
      candidates.clear();
      return absl::OkStatus();
    };
    absl::Status status;
    RETURN_IF_ERROR(
        Annotate(kv_->Scan([&](absl::string_view key, absl::string_view value) {
          uint64_t k;
          if (!DecodeRowKey(key, &k) || value.size() != row_bytes_) {
            return true;  // the metadata record
          }
          std::vector<float> row(stride_);
          std::memcpy(row.data(), value.data(), row_bytes_);
          if (!pred(k, row.data())) return true;
          candidates.push_back(k);
          if (candidates.size() < kFlushBatchRows) return true;
          status = sweep();
          return status.ok();
        })));
    RETURN_IF_ERROR(status);
    RETURN_IF_ERROR(sweep());
    return erased;
  }

  absl::Status CheckpointDisk(const std::string& dir) override {
    RETURN_IF_ERROR(Flush());
    return Annotate(kv_->Checkpoint(dir));
  }

  absl::Status ForEachRow(RowVisitor visit) override {
    RETURN_IF_ERROR(Flush());
    std::vector<float> row(stride_);
    return Annotate(
        kv_->Scan([&](absl::string_view key, absl::string_view value) {
          uint64_t k;
          if (!DecodeRowKey(key, &k) || value.size() != row_bytes_) return true;
          std::memcpy(row.data(), value.data(), row_bytes_);
          visit(k, row.data());
          return true;
        }));
  }

  // Many dirty rows (a checkpoint, a close) go to disk as one sorted bulk
  // write (KvStore::WriteSorted: RocksDB ingests a table file) with every
  // sub-shard locked; a few go through the ordinary batched writes.
  absl::Status Flush() override {
    std::vector<std::unique_ptr<absl::MutexLock>> locks;
    for (auto& shard : shards_) {
      locks.push_back(std::make_unique<absl::MutexLock>(&shard->mu));
    }
    struct Dirty {
      uint64_t key;
      uint32_t shard;
      uint32_t slot;
    };
    std::vector<Dirty> dirty;
    for (uint32_t i = 0; i < shards_.size(); ++i) {
      const Shard& sh = *shards_[i];
      for (uint32_t s = 0; s < SlotsOf(sh); ++s) {
        if (FlagsOf(sh, s) & kDirty) dirty.push_back({KeyOfSlot(sh, s), i, s});
      }
    }
    if (dirty.size() < kBulkRows) {
      locks.clear();
      return FlushInBatches();
    }
    std::sort(dirty.begin(), dirty.end(),
              [](const Dirty& a, const Dirty& b) { return a.key < b.key; });
    // A bulk write cannot carry the count records: they are deleted first
    // and written after it, so a crash in between leaves none, and the next
    // open counts the rows (LoadCounts).
    std::vector<std::string> count_keys;
    for (const auto& sh : shards_) count_keys.push_back(CountKeyOf(sh->id));
    RETURN_IF_ERROR(Annotate(kv_->Update({}, count_keys)));
    std::string key;
    RETURN_IF_ERROR(Annotate(kv_->WriteSorted(dirty.size(), [&](size_t i) {
      key = EncodeRowKey(dirty[i].key);
      const Shard& sh = *shards_[dirty[i].shard];
      return std::make_pair(absl::string_view(key),
                            absl::string_view(reinterpret_cast<const char*>(
                                                  RowOf(sh, dirty[i].slot)),
                                              row_bytes_));
    })));
    for (const Dirty& d : dirty) MarkWritten(*shards_[d.shard], d.slot);
    return Annotate(kv_->Write(CountRecords()));
  }

  absl::Status FlushInBatches() {
    for (auto& shard : shards_) {
      absl::MutexLock lock(&shard->mu);
      std::vector<uint32_t> dirty;
      for (uint32_t s = 0; s < shard->num_slots; ++s) {
        if (shard->flags[s] & kDirty) dirty.push_back(s);
      }
      for (size_t b = 0; b < dirty.size(); b += kFlushBatchRows) {
        const absl::Span<const uint32_t> batch(
            dirty.data() + b, std::min(kFlushBatchRows, dirty.size() - b));
        RETURN_IF_ERROR(WriteBack(*shard, batch));
        for (uint32_t s : batch) shard->flags[s] &= ~kDirty;
      }
    }
    return absl::OkStatus();
  }

  // Exact: rows on disk (maybe also in memory) and rows only in memory.
  int64_t size() const override {
    int64_t rows = 0;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      rows += s->on_disk + s->memory_only;
    }
    return rows;
  }

  int64_t memory_bytes() const override {
    int64_t bytes = 0;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      bytes +=
          s->rows.bytes() +
          static_cast<int64_t>(s->index.capacity()) * RowIndex::kSlotBytes +
          static_cast<int64_t>(s->keys.capacity()) * 8 +
          static_cast<int64_t>(s->flags.capacity()) +
          static_cast<int64_t>(s->uses.capacity()) +
          static_cast<int64_t>(s->probation.size()) * 4 +
          static_cast<int64_t>(s->free.capacity()) * 4;
    }
    return bytes;
  }

  StorageStats stats() const override {
    StorageStats stats;
    for (const auto& s : shards_) {
      absl::MutexLock lock(&s->mu);
      stats.rows_in_memory += s->resident;
      stats.memory_capacity_rows += s->capacity;
      stats.hits += s->hits;
      stats.misses += s->misses;
      stats.evictions += s->evictions;
      stats.write_backs += s->write_backs;
      stats.rows_on_disk += s->on_disk;
    }
    stats.memory_bytes = memory_bytes();
    return stats;
  }

  // Reads or writes the owner record.
  // Reads every sub-shard's count record; without all of them (a store
  // written before they existed, another shard_num, or a crash during a
  // bulk write) counts the rows by a scan and writes the records.
  // `fresh`: CheckMeta just created the store, which holds no rows.
  absl::Status LoadCounts(bool fresh) {
    const int n = static_cast<int>(shards_.size());
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) keys.push_back(CountKeyOf(i));
    std::vector<std::string> values;
    std::vector<bool> found;
    RETURN_IF_ERROR(Annotate(kv_->MultiGet(keys, &values, &found)));
    std::vector<int64_t> counts(n, 0);
    bool complete = true;
    for (int i = 0; i < n && complete; ++i) {
      complete =
          found[i] && absl::SimpleAtoi(values[i], &counts[i]) && counts[i] >= 0;
    }
    if (!complete) counts.assign(n, 0);
    if (!complete && !fresh) {
      RETURN_IF_ERROR(Annotate(
          kv_->Scan([&](absl::string_view key, absl::string_view value) {
            uint64_t k;
            if (DecodeRowKey(key, &k) && value.size() == row_bytes_) {
              ++counts[SubShardForKey(k, n)];
            }
            return true;
          })));
      int64_t total = 0;
      for (int64_t c : counts) total += c;
      LOG(INFO) << "table '" << options_.table_name << "': counted " << total
                << " rows in " << kv_->description()
                << " (no complete count records)";
    }
    for (int i = 0; i < n; ++i) {
      absl::MutexLock lock(&shards_[i]->mu);
      shards_[i]->on_disk = counts[i];
    }
    if (complete) return absl::OkStatus();
    std::vector<std::pair<std::string, std::string>> puts;
    for (int i = 0; i < n; ++i)
      puts.emplace_back(keys[i], absl::StrCat(counts[i]));
    return Annotate(kv_->Write(puts));
  }

  // True when the store had no owner record (new): CheckMeta wrote it.
  absl::StatusOr<bool> CheckMeta() {
    Meta want{options_.table_name,  options_.dim,
              options_.rule_name,   options_.stride - options_.dim,
              options_.num_servers, options_.rank};
    std::vector<std::string> values;
    std::vector<bool> found;
    RETURN_IF_ERROR(Annotate(kv_->MultiGet({MetaKey()}, &values, &found)));
    if (!found[0]) {
      RETURN_IF_ERROR(Annotate(kv_->Write({{MetaKey(), want.Encode()}})));
      return true;
    }
    Meta have;
    if (!Meta::Decode(values[0], &have)) {
      return absl::FailedPreconditionError(absl::StrCat(
          kv_->description(), " has a malformed metadata record ('", values[0],
          "'), config wants ", want.Describe()));
    }
    if (!(have == want)) {
      return absl::FailedPreconditionError(
          absl::StrCat(kv_->description(), " holds ", have.Describe(),
                       ", config wants ", want.Describe()));
    }
    return false;
  }

 private:
  struct Shard {
    Shard(int id, int stride, uint32_t capacity, uint32_t chunk_rows)
        : id(id), capacity(capacity), rows(stride, chunk_rows) {
      index.Reserve(capacity);
      keys.reserve(capacity);
      flags.reserve(capacity);
      uses.reserve(capacity);
    }

    mutable absl::Mutex mu;
    const int id;             // sub-shard number
    const uint32_t capacity;  // resident rows within the budget
    RowIndex index ABSL_GUARDED_BY(mu);
    RowChunks rows ABSL_GUARDED_BY(mu);
    std::vector<uint64_t> keys ABSL_GUARDED_BY(mu);  // per slot
    std::vector<uint8_t> flags ABSL_GUARDED_BY(mu);  // per slot
    std::vector<uint8_t> uses ABSL_GUARDED_BY(mu);   // per slot, see MakeRoom
    // Slots of the rows on probation (see MakeRoom), oldest first. Entries
    // whose slot left probation since are skipped; a slot freed and reused
    // while queued is seen at its older place (it may leave probation a
    // little early: a matter of policy, never of correctness).
    std::deque<uint32_t> probation ABSL_GUARDED_BY(mu);
    std::vector<uint32_t> free ABSL_GUARDED_BY(mu);  // unused slots
    uint32_t num_slots ABSL_GUARDED_BY(mu) = 0;      // slots ever used
    uint32_t resident ABSL_GUARDED_BY(mu) = 0;
    uint32_t hand ABSL_GUARDED_BY(mu) = 0;
    int64_t hits ABSL_GUARDED_BY(mu) = 0;
    int64_t misses ABSL_GUARDED_BY(mu) = 0;
    int64_t evictions ABSL_GUARDED_BY(mu) = 0;
    int64_t write_backs ABSL_GUARDED_BY(mu) = 0;
    // Row keys of this sub-shard on disk (as its count record says), and
    // resident rows not on disk (new ones): size() is their sum.
    int64_t on_disk ABSL_GUARDED_BY(mu) = 0;
    int64_t memory_only ABSL_GUARDED_BY(mu) = 0;

    uint32_t AllocSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (!free.empty()) {
        const uint32_t s = free.back();
        free.pop_back();
        return s;
      }
      rows.Reserve(num_slots);
      keys.push_back(0);
      flags.push_back(0);
      uses.push_back(0);
      return num_slots++;
    }
  };

  std::string CountKeyOf(int s) const {
    return CountKey(static_cast<int>(shards_.size()), s);
  }

  static uint64_t KeyOfSlot(const Shard& sh,
                            uint32_t s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return sh.keys[s];
  }
  // For Flush, which holds every lock through MutexLock objects the
  // analysis cannot follow.
  static uint32_t SlotsOf(const Shard& sh) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return sh.num_slots;
  }
  static uint8_t FlagsOf(const Shard& sh,
                         uint32_t s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return sh.flags[s];
  }
  static const float* RowOf(const Shard& sh,
                            uint32_t s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return sh.rows.Row(s);
  }
  // After a bulk write of slot s.
  static void MarkWritten(Shard& sh,
                          uint32_t s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!(sh.flags[s] & kOnDisk)) {
      ++sh.on_disk;
      --sh.memory_only;
    }
    sh.flags[s] = (sh.flags[s] & ~kDirty) | kOnDisk;
  }
  // Every sub-shard's count record (callers hold every lock).
  std::vector<std::pair<std::string, std::string>> CountRecords() const
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    std::vector<std::pair<std::string, std::string>> puts;
    for (const auto& sh : shards_) {
      puts.emplace_back(CountKeyOf(sh->id), absl::StrCat(sh->on_disk));
    }
    return puts;
  }

  // Puts slot s on probation. The queue holds at most
  // kMaxProbationShare of the capacity: beyond, its oldest row joins the
  // main set as it is (while the tier is under its budget, nothing leaves
  // probation by eviction).
  void EnterProbation(Shard& sh, uint32_t s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sh.mu) {
    while (sh.probation.size() >=
           std::max<size_t>(sh.capacity / kMaxProbationShare, 16)) {
      sh.flags[sh.probation.front()] &= ~kProbation;
      sh.probation.pop_front();
    }
    sh.flags[s] |= kProbation;
    sh.probation.push_back(s);
  }

  // Removes slot s's row from memory (its disk copy, if any, stays).
  void DropSlot(Shard& sh, uint32_t s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sh.mu) {
    sh.index.Erase(sh.keys[s], [&sh](uint32_t t) { return KeyOfSlot(sh, t); });
    if (!(sh.flags[s] & kOnDisk)) --sh.memory_only;
    sh.flags[s] = 0;
    sh.free.push_back(s);
    --sh.resident;
  }

  // Deletes the disk rows of `keys` (sorted by the scan) that are not in
  // memory and still satisfy pred, one sub-shard at a time under its lock.
  absl::StatusOr<int64_t> EraseOnDisk(absl::Span<const uint64_t> keys,
                                      RowPredicate pred) {
    std::vector<uint32_t> order, begin;
    GroupBySubShard(keys, static_cast<int>(shards_.size()), &order, &begin);
    int64_t erased = 0;
    for (size_t s = 0; s + 1 < begin.size(); ++s) {
      if (begin[s + 1] == begin[s]) continue;
      Shard& sh = *shards_[s];
      absl::MutexLock lock(&sh.mu);
      std::vector<std::string> disk_keys;
      for (uint32_t o = begin[s]; o < begin[s + 1]; ++o) {
        const uint64_t key = keys[order[o]];
        if (sh.index.Find(key, [&sh](uint32_t t) {
              return KeyOfSlot(sh, t);
            }) == RowIndex::kNone) {
          disk_keys.push_back(EncodeRowKey(key));
        }
      }
      std::vector<std::string> values;
      std::vector<bool> found;
      RETURN_IF_ERROR(Annotate(kv_->MultiGet(disk_keys, &values, &found)));
      std::vector<std::string> deletes;
      std::vector<float> row(stride_);
      for (size_t u = 0; u < disk_keys.size(); ++u) {
        uint64_t key;
        if (!found[u] || values[u].size() != row_bytes_ ||
            !DecodeRowKey(disk_keys[u], &key)) {
          continue;
        }
        std::memcpy(row.data(), values[u].data(), row_bytes_);
        if (pred(key, row.data())) deletes.push_back(std::move(disk_keys[u]));
      }
      RETURN_IF_ERROR(DeleteOnDisk(sh, deletes));
      erased += static_cast<int64_t>(deletes.size());
    }
    return erased;
  }

  absl::Status Annotate(const absl::Status& s) const {
    if (s.ok()) return s;
    return absl::Status(s.code(), absl::StrCat("table '", options_.table_name,
                                               "': ", s.message()));
  }

  // Writes the rows of `slots` of `shard` to the disk tier in one
  // batch, with the sub-shard's new count record.
  absl::Status WriteBack(Shard& shard, absl::Span<const uint32_t> slots)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    if (slots.empty()) return absl::OkStatus();
    std::vector<std::pair<std::string, std::string>> puts;
    puts.reserve(slots.size() + 1);
    int64_t added = 0;
    for (uint32_t s : slots) {
      added += (shard.flags[s] & kOnDisk) ? 0 : 1;
      puts.emplace_back(
          EncodeRowKey(shard.keys[s]),
          std::string(reinterpret_cast<const char*>(shard.rows.Row(s)),
                      row_bytes_));
    }
    // In key order: RocksDB's memtable inserts a sorted batch faster.
    std::sort(puts.begin(), puts.end());
    if (added > 0) {
      puts.emplace_back(CountKeyOf(shard.id),
                        absl::StrCat(shard.on_disk + added));
    }
    RETURN_IF_ERROR(Annotate(kv_->Write(puts)));
    shard.on_disk += added;
    shard.memory_only -= added;
    for (uint32_t s : slots) shard.flags[s] |= kOnDisk;
    return absl::OkStatus();
  }

  // Deletes the disk rows of `keys` (all on disk) of `shard` in one
  // batch with its new count record.
  absl::Status DeleteOnDisk(Shard& shard, absl::Span<const std::string> keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    if (keys.empty()) return absl::OkStatus();
    const int64_t left = shard.on_disk - static_cast<int64_t>(keys.size());
    RETURN_IF_ERROR(Annotate(
        kv_->Update({{CountKeyOf(shard.id), absl::StrCat(left)}}, keys)));
    shard.on_disk = left;
    return absl::OkStatus();
  }

  // Evicts cold, unpinned rows until `need` more fit within the capacity
  // (plus a little slack so evictions come in batches). Dirty victims are
  // written back first; on a write error nothing is evicted.
  //
  // The policy: a row read from disk or made new starts on probation (a
  // FIFO) with a use count of zero; every use of a resident row adds one
  // (up to 255). Victims come first from the oldest rows on probation that
  // were not used since they came; the used ones leave probation for the
  // main set. The main set is a counting clock (GCLOCK): the hand takes
  // one off each count it passes and evicts the rows it finds at zero, so
  // a row stays while it is used more often than the hand comes round and
  // its count carries what it earned over many turns. Keys used once (most
  // keys of a long-tailed load) leave within about capacity / kEvictSlack
  // arrivals instead of holding a row for a whole turn, and the main set
  // converges on the most frequent keys, as a static hot set chosen with
  // hindsight would: on Zipf(1.1) 10x over the budget (sparse_table_bench)
  // 0.685-0.704 of lookups hit against 0.706-0.714 for that hot set, where
  // the reference-bit clock this replaced got 0.59. After two turns without
  // enough victims the hand halves the counts instead, which bounds a
  // call to about ten turns.
  absl::Status MakeRoom(Shard& sh, size_t need)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sh.mu) {
    if (sh.resident + need <= sh.capacity) return absl::OkStatus();
    const size_t excess = sh.resident + need - sh.capacity;
    const size_t target =
        std::min<size_t>(excess + sh.capacity / kEvictSlack, sh.resident);
    std::vector<uint32_t> victims, dirty;
    auto take = [&](uint32_t s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(sh.mu) {
      sh.flags[s] |= kPinned;
      victims.push_back(s);
      if (sh.flags[s] & kDirty) dirty.push_back(s);
    };
    // Probation first, oldest first: rows used since they came join the
    // clock, the others go.
    for (size_t n = sh.probation.size(); n > 0 && victims.size() < target;
         --n) {
      const uint32_t s = sh.probation.front();
      sh.probation.pop_front();
      uint8_t& f = sh.flags[s];
      if (!(f & kProbation)) continue;  // gone
      if (f & kPinned) {
        sh.probation.push_back(s);
        continue;
      }
      f &= ~kProbation;
      if (sh.uses[s] == 0) take(s);
    }
    const uint64_t turn = sh.num_slots;
    for (uint64_t steps = 0;
         victims.size() < target && steps < kMaxTurns * turn; ++steps) {
      const uint32_t s = sh.hand;
      sh.hand = sh.hand + 1 >= sh.num_slots ? 0 : sh.hand + 1;
      uint8_t& f = sh.flags[s];
      if (!(f & kUsed) || (f & (kPinned | kProbation))) continue;
      uint8_t& uses = sh.uses[s];
      if (uses > 0) {
        uses = steps < 2 * turn ? uses - 1 : uses >> 1;
        continue;
      }
      take(s);
    }
    absl::Status written = WriteBack(sh, dirty);
    for (uint32_t s : victims) {
      if (!written.ok()) {
        sh.flags[s] &= ~kPinned;
        continue;
      }
      DropSlot(sh, s);
    }
    if (!written.ok()) return written;
    sh.evictions += static_cast<int64_t>(victims.size());
    sh.write_backs += static_cast<int64_t>(dirty.size());
    return absl::OkStatus();
  }

  absl::Status DoGroup(Shard& sh, const uint64_t* keys,
                       absl::Span<const uint32_t> idx, absl::Span<float*> out,
                       bool modify, AdmitFn admit, InitRow init, GroupFn fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sh.mu) {
    const size_t n = idx.size();
    const uint32_t* in = idx.data();
    const auto key_of = [&sh](uint32_t t) { return KeyOfSlot(sh, t); };
    std::vector<uint32_t> slot(n, RowIndex::kNone);
    // (key, j) of the keys missing from the memory tier.
    std::vector<std::pair<uint64_t, uint32_t>> missing;
    for (size_t j = 0; j < std::min(n, kPrefetchKeys); ++j) {
      sh.index.Prefetch(keys[in[j]]);
    }
    for (size_t j = 0; j < n; ++j) {
      if (j + kPrefetchKeys < n) sh.index.Prefetch(keys[in[j + kPrefetchKeys]]);
      const uint64_t key = keys[in[j]];
      const uint32_t s = sh.index.Find(key, key_of);
      if (s == RowIndex::kNone) {
        missing.emplace_back(key, static_cast<uint32_t>(j));
      } else {
        slot[j] = s;
        sh.flags[s] |= kPinned;
        sh.uses[s] += sh.uses[s] < 255;
      }
    }
    sh.hits += static_cast<int64_t>(n - missing.size());
    // Called with sh.mu held, as the whole function (lambdas are checked
    // apart from their enclosing function, so the requirement is restated).
    auto unpin = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sh.mu) {
      for (uint32_t s : slot) {
        if (s != RowIndex::kNone) sh.flags[s] &= ~kPinned;
      }
    };
    if (!missing.empty()) {
      std::sort(missing.begin(), missing.end());
      std::vector<std::string> disk_keys;
      disk_keys.reserve(missing.size());
      for (size_t m = 0; m < missing.size(); ++m) {
        if (m == 0 || missing[m].first != missing[m - 1].first) {
          disk_keys.push_back(EncodeRowKey(missing[m].first));
        }
      }
      sh.misses += static_cast<int64_t>(disk_keys.size());
      std::vector<std::string> values;
      std::vector<bool> found;
      absl::Status read = Annotate(kv_->MultiGet(disk_keys, &values, &found));
      for (size_t u = 0; read.ok() && u < disk_keys.size(); ++u) {
        if (found[u] && values[u].size() != row_bytes_) {
          read = absl::DataLossError(
              absl::StrCat("table '", options_.table_name,
                           "': ", kv_->description(), " holds a row of ",
                           values[u].size(), " bytes, expected ", row_bytes_));
        }
      }
      // Rows to make: those on disk and the admitted new ones.
      std::vector<bool> admitted(disk_keys.size());
      size_t making = 0;
      for (size_t u = 0; read.ok() && u < disk_keys.size(); ++u) {
        admitted[u] = found[u] || admit(DecodeKnownKey(disk_keys[u]));
        making += admitted[u];
      }
      if (read.ok()) read = MakeRoom(sh, making);
      if (!read.ok()) {
        unpin();
        return read;
      }
      size_t u = 0;
      uint32_t s = RowIndex::kNone;
      for (size_t m = 0; m < missing.size(); ++m) {
        const uint64_t key = missing[m].first;
        if (m == 0 || key != missing[m - 1].first) {
          if (!admitted[u]) {
            s = RowIndex::kNone;
          } else {
            s = sh.AllocSlot();
            sh.keys[s] = key;
            sh.index.FindOrInsert(key, s, key_of);
            // A new row is dirty: every row is then in memory dirty or on
            // disk, which Flush, ForEachRow and size() rely on.
            sh.flags[s] = kUsed | kPinned | (found[u] ? kOnDisk : kDirty);
            sh.uses[s] = 0;
            EnterProbation(sh, s);
            sh.memory_only += found[u] ? 0 : 1;
            float* row = sh.rows.Row(s);
            if (found[u]) {
              std::memcpy(row, values[u].data(), row_bytes_);
            } else {
              init(key, row);
            }
            ++sh.resident;
          }
          ++u;
        }
        slot[missing[m].second] = s;
      }
    }
    for (size_t j = 0; j < n; ++j) {
      out.data()[j] =
          slot[j] == RowIndex::kNone ? nullptr : sh.rows.Row(slot[j]);
    }
    fn(idx, absl::Span<float* const>(out));
    const uint8_t set = modify ? kDirty : 0;
    for (uint32_t s : slot) {
      if (s != RowIndex::kNone) sh.flags[s] = (sh.flags[s] & ~kPinned) | set;
    }
    return absl::OkStatus();
  }

  const TieredStorageOptions options_;
  const int stride_;
  const size_t row_bytes_;
  const std::unique_ptr<KvStore> kv_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SparseStorage>> OpenTieredStorage(
    const TieredStorageOptions& options, std::unique_ptr<KvStore> kv) {
  const std::string who = absl::StrCat("table '", options.table_name, "'");
  if (options.dim < 1 || options.stride < options.dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": tiered storage needs 1 <= dim <= stride, got dim ",
                     options.dim, ", stride ", options.stride));
  }
  if (options.shard_num < 1 || options.shard_num > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": shard_num must be in [1, 65535], got ", options.shard_num));
  }
  if (options.memory_budget_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": memory_budget_bytes must be >= 0, got ",
                     options.memory_budget_bytes));
  }
  if (kv == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": no key-value store"));
  }
  auto storage = std::make_unique<TieredStorage>(options, std::move(kv));
  ASSIGN_OR_RETURN(const bool fresh, storage->CheckMeta());
  RETURN_IF_ERROR(storage->LoadCounts(fresh));
  return std::unique_ptr<SparseStorage>(std::move(storage));
}

}  // namespace ps
