#include "worker/data/batch.h"

#include <vector>

#include "glog/logging.h"

namespace ps {

namespace {

// The distinct keys of one table of a batch, as an open-addressing index
// over the keys collected so far: a slot holds 1 + the key's position in
// `keys` (0: empty), so the table is 4 bytes a slot and the keys stay in
// first-occurrence order. Sized from the previous batch's distinct count
// (load at most 1/2, doubled when passed), and kept by each thread from
// batch to batch. Why not absl::flat_hash_map reserved per batch: that is
// 16 bytes a slot sized by the batch's key count, allocated (often
// mmap'ed) and cleared per batch, and in a running job, sharing two cores'
// caches with the servers, it cost about 40 ns a key, 12-16% of an LR
// job's CPU.
class DistinctKeys {
 public:
  // Ready for a new batch, whose keys vector (FindOrAdd) starts empty.
  void Begin() {
    size_t want = 64;
    while (want < 2 * last_distinct_ + 16) want <<= 1;
    Resize(want);
  }

  // The position of `key` in `keys`, appended first when new.
  uint32_t FindOrAdd(uint64_t key, std::vector<uint64_t>* keys) {
    size_t i = Home(key);
    while (true) {
      const uint32_t slot = slots_[i];
      if (slot == 0) {
        keys->push_back(key);
        const uint32_t at = static_cast<uint32_t>(keys->size() - 1);
        slots_[i] = at + 1;
        if (2 * keys->size() > slots_.size()) Grow(*keys);
        return at;
      }
      if ((*keys)[slot - 1] == key) return slot - 1;
      i = (i + 1) & mask_;
    }
  }

  // The batch is done: its distinct count sizes the next.
  void End(size_t distinct) { last_distinct_ = distinct; }

 private:
  size_t Home(uint64_t key) const {
    // Fibonacci hashing: the top bits of key * 2^64 / phi (keys need not
    // be hashed already: slot-format ids may be small integers).
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  void Resize(size_t size) {
    slots_.assign(size, 0);
    mask_ = size - 1;
    shift_ = 64;
    for (size_t s = size; s > 1; s >>= 1) --shift_;
  }

  void Grow(const std::vector<uint64_t>& keys) {
    Resize(2 * slots_.size());
    for (size_t at = 0; at < keys.size(); ++at) {
      size_t i = Home(keys[at]);
      while (slots_[i] != 0) i = (i + 1) & mask_;
      slots_[i] = static_cast<uint32_t>(at + 1);
    }
  }

  std::vector<uint32_t> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t last_distinct_ = 0;
};

// Per thread, per table (a prefetch thread deduplicates while the training
// thread may evaluate).
DistinctKeys& DistinctKeysOfThread(int table) {
  thread_local std::vector<DistinctKeys> per_table;
  if (static_cast<size_t>(table) >= per_table.size()) {
    per_table.resize(table + 1);
  }
  return per_table[table];
}

}  // namespace

UniqueKeys Deduplicate(const Batch& batch) {
  UniqueKeys out;
  out.key_index.resize(batch.keys.size());
  DistinctKeys& seen = DistinctKeysOfThread(0);
  seen.Begin();
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    out.key_index[i] = seen.FindOrAdd(batch.keys[i], &out.unique_keys);
  }
  seen.End(out.unique_keys.size());
  out.shows.assign(out.unique_keys.size(), 0.0f);
  out.clicks.assign(out.unique_keys.size(), 0.0f);
  const size_t per_example = static_cast<size_t>(batch.num_slots);
  for (int e = 0; e < batch.size(); ++e) {
    const uint32_t begin = batch.offsets[e * per_example];
    const uint32_t end = batch.offsets[(e + 1) * per_example];
    for (uint32_t k = begin; k < end; ++k) {
      out.shows[out.key_index[k]] += 1.0f;
      out.clicks[out.key_index[k]] += batch.labels[e];
    }
  }
  out.table_rows = {static_cast<int64_t>(out.unique_keys.size())};
  return out;
}

UniqueKeys Deduplicate(const Batch& batch, absl::Span<const int> slot_table,
                       int num_tables) {
  if (num_tables == 1) return Deduplicate(batch);
  CHECK_EQ(static_cast<int>(slot_table.size()), batch.num_slots);
  UniqueKeys out;
  out.key_index.resize(batch.keys.size());
  std::vector<std::vector<uint64_t>> keys(num_tables);
  for (int t = 0; t < num_tables; ++t) DistinctKeysOfThread(t).Begin();
  const size_t slots = static_cast<size_t>(batch.num_slots);
  for (size_t cell = 0; cell + 1 < batch.offsets.size(); ++cell) {
    const int t = slot_table[cell % slots];
    CHECK(t >= 0 && t < num_tables)
        << "slot " << cell % slots << " table " << t;
    DistinctKeys& seen = DistinctKeysOfThread(t);
    for (uint32_t k = batch.offsets[cell]; k < batch.offsets[cell + 1]; ++k) {
      out.key_index[k] = seen.FindOrAdd(batch.keys[k], &keys[t]);
    }
  }
  std::vector<size_t> begin(num_tables, 0);
  for (int t = 0; t < num_tables; ++t) {
    DistinctKeysOfThread(t).End(keys[t].size());
    begin[t] = out.unique_keys.size();
    out.table_rows.push_back(static_cast<int64_t>(keys[t].size()));
    out.unique_keys.insert(out.unique_keys.end(), keys[t].begin(),
                           keys[t].end());
  }
  out.shows.assign(out.unique_keys.size(), 0.0f);
  out.clicks.assign(out.unique_keys.size(), 0.0f);
  for (size_t cell = 0; cell + 1 < batch.offsets.size(); ++cell) {
    const size_t at = begin[slot_table[cell % slots]];
    const float label = batch.labels[cell / slots];
    for (uint32_t k = batch.offsets[cell]; k < batch.offsets[cell + 1]; ++k) {
      out.shows[at + out.key_index[k]] += 1.0f;
      out.clicks[at + out.key_index[k]] += label;
    }
  }
  return out;
}

}  // namespace ps
