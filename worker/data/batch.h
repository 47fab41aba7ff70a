// A batch of examples as readers produce it and models consume it.
//
// Sparse features are a CSR over (example, slot): the keys of slot s of
// example i are keys[offsets[i * num_slots + s] .. offsets[i * num_slots + s +
// 1]). A slot may have zero keys (pooling then gives zeros). A Batch is a plain
// value type; not thread-safe.
#ifndef PS_WORKER_DATA_BATCH_H_
#define PS_WORKER_DATA_BATCH_H_

#include <cstdint>
#include <vector>

namespace ps {

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

// The distinct keys of a batch and, for every key occurrence, the index of
// its row among them: batch.keys[i] == unique_keys[key_index[i]]. Per
// distinct key: shows = its occurrences, clicks = those in positive examples
// (the sum of their labels), which servers with an accessor keep per row.
struct UniqueKeys {
  std::vector<uint64_t> unique_keys;
  std::vector<uint32_t> key_index;
  std::vector<float> shows;
  std::vector<float> clicks;
};

// Deduplicates batch.keys (first occurrence order).
UniqueKeys Deduplicate(const Batch& batch);

}  // namespace ps

#endif  // PS_WORKER_DATA_BATCH_H_
