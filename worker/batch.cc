#include "worker/batch.h"

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
  return out;
}

}  // namespace ps
