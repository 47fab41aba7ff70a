#include "worker/data/batch.h"

#include "absl/container/flat_hash_map.h"

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
  return out;
}

}  // namespace ps
