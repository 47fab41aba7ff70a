#include "worker/data/batch.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "glog/logging.h"

namespace ps {

UniqueKeys Deduplicate(const Batch& batch) {
  UniqueKeys out;
  out.key_index.resize(batch.keys.size());
  absl::flat_hash_map<uint64_t, uint32_t> seen;
  seen.reserve(batch.keys.size());
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    auto [it, inserted] = seen.try_emplace(
        batch.keys[i], static_cast<uint32_t>(out.unique_keys.size()));
    if (inserted) out.unique_keys.push_back(batch.keys[i]);
    out.key_index[i] = it->second;
  }
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
  std::vector<absl::flat_hash_map<uint64_t, uint32_t>> seen(num_tables);
  std::vector<std::vector<uint64_t>> keys(num_tables);
  const size_t slots = static_cast<size_t>(batch.num_slots);
  for (size_t cell = 0; cell + 1 < batch.offsets.size(); ++cell) {
    const int t = slot_table[cell % slots];
    CHECK(t >= 0 && t < num_tables)
        << "slot " << cell % slots << " table " << t;
    for (uint32_t k = batch.offsets[cell]; k < batch.offsets[cell + 1]; ++k) {
      auto [it, inserted] = seen[t].try_emplace(
          batch.keys[k], static_cast<uint32_t>(keys[t].size()));
      if (inserted) keys[t].push_back(batch.keys[k]);
      out.key_index[k] = it->second;
    }
  }
  std::vector<size_t> begin(num_tables, 0);
  for (int t = 0; t < num_tables; ++t) {
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
