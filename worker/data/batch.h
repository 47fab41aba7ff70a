// A batch of examples as readers produce it and models consume it.
//
// Sparse features are a CSR over (example, slot): the keys of slot s of
// example i are keys[offsets[i * num_slots + s] .. offsets[i * num_slots + s +
// 1]). A slot may have zero keys (pooling then gives zeros). Offsets are
// 32-bit, so a batch holds at most kMaxBatchKeys keys: readers refuse a
// batch_size whose examples could have more (DataReader::Open). A Batch is a
// plain value type; not thread-safe.
#ifndef PS_WORKER_DATA_BATCH_H_
#define PS_WORKER_DATA_BATCH_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/types/span.h"

namespace ps {

// The most keys a Batch can hold: its offsets are uint32.
inline constexpr int64_t kMaxBatchKeys = std::numeric_limits<uint32_t>::max();

struct Batch {
  int num_slots = 0;
  int num_dense = 0;
  std::vector<float> labels;            // one per example, 0 or 1
  std::vector<float> dense;             // size() * num_dense, row-major
  std::vector<uint32_t> offsets = {0};  // size() * num_slots + 1
  std::vector<uint64_t> keys;

  int size() const { return static_cast<int>(labels.size()); }
  void Clear() {
    labels.clear();
    dense.clear();
    offsets.assign(1, 0);
    keys.clear();
  }
};

// The distinct keys of a batch per sparse table, and for every key
// occurrence the index of its row among its table's: unique_keys holds
// table 0's distinct keys, then table 1's, ... (table_rows[t] each), and
// batch.keys[i] == unique_keys[TableBegin(t) + key_index[i]] where t is the
// table of key i's slot. One key in two tables is two rows. Per distinct key:
// shows = its occurrences, clicks = those in positive examples (the sum of
// their labels), which servers with an accessor keep per row.
struct UniqueKeys {
  std::vector<uint64_t> unique_keys;
  std::vector<uint32_t> key_index;
  std::vector<float> shows;
  std::vector<float> clicks;
  std::vector<int64_t> table_rows;

  int num_tables() const { return static_cast<int>(table_rows.size()); }
  // Where table t's keys start in unique_keys.
  size_t TableBegin(int t) const {
    size_t begin = 0;
    for (int u = 0; u < t; ++u) begin += static_cast<size_t>(table_rows[u]);
    return begin;
  }
  // Table t's part of unique_keys, or of a vector laid out like it (shows,
  // clicks).
  template <typename T>
  absl::Span<const T> OfTable(const std::vector<T>& per_key, int t) const {
    return absl::MakeConstSpan(per_key).subspan(
        TableBegin(t), static_cast<size_t>(table_rows[t]));
  }
};

// Deduplicates batch.keys as one table (first occurrence order).
UniqueKeys Deduplicate(const Batch& batch);

// Deduplicates batch.keys per table: the keys of slot s belong to table
// slot_table[s] (in [0, num_tables); one entry per slot of the batch), each
// table's in first occurrence order.
UniqueKeys Deduplicate(const Batch& batch, absl::Span<const int> slot_table,
                       int num_tables);

}  // namespace ps

#endif  // PS_WORKER_DATA_BATCH_H_
