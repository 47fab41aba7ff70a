// Gradients of several steps merged into one push: sparse gradients summed
// per table and key (first-seen key order), dense gradients summed. The trainer
// feeds every step's gradients here and sends the merged push whenever the
// communicator has room, so a backed-up push queue merges steps instead of
// growing or stalling. Not thread-safe (the trainer thread owns it).
#ifndef PS_WORKER_CLIENT_PUSH_MERGER_H_
#define PS_WORKER_CLIENT_PUSH_MERGER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "worker/client/ps_client.h"

namespace ps {

class PushMerger {
 public:
  // One row width per sparse table, in the order Add's parts come in.
  PushMerger(std::vector<int> dims, int64_t dense_size);
  PushMerger(int dim, int64_t dense_size)
      : PushMerger(std::vector<int>{dim}, dense_size) {}

  // Adds one step: parts[t] holds table t's distinct keys, its values
  // (keys.size() * dims[t] floats) and per key shows and clicks (summed per
  // key like the gradients), or none; dense_grad is empty or dense_size
  // floats. REQUIRES: one part per table (their `table` and `dim` fields are
  // not read).
  void Add(absl::Span<const SparsePush> parts,
           absl::Span<const float> dense_grad);
  // One table's step.
  void Add(absl::Span<const uint64_t> keys, absl::Span<const float> grads,
           absl::Span<const float> dense_grad,
           absl::Span<const float> shows = {},
           absl::Span<const float> clicks = {});

  int steps() const { return steps_; }
  bool empty() const { return steps_ == 0; }
  int num_tables() const { return static_cast<int>(tables_.size()); }
  const std::vector<uint64_t>& keys(int t = 0) const { return tables_[t].keys; }
  const std::vector<float>& grads(int t = 0) const { return tables_[t].grads; }
  // Per key: summed shows and clicks; empty unless every step had them.
  absl::Span<const float> shows(int t = 0) const {
    return counted_ ? absl::Span<const float>(tables_[t].shows)
                    : absl::Span<const float>();
  }
  absl::Span<const float> clicks(int t = 0) const {
    return counted_ ? absl::Span<const float>(tables_[t].clicks)
                    : absl::Span<const float>();
  }
  // Empty when no step carried a dense gradient.
  absl::Span<const float> dense() const {
    return has_dense_ ? absl::Span<const float>(dense_)
                      : absl::Span<const float>();
  }

  // Forgets everything (keeps capacity).
  void Clear();

 private:
  struct Table {
    int dim = 0;
    // Key -> its place in `keys`; built when a second step is added, so
    // in use (and filled) only while steps_ > 1.
    absl::flat_hash_map<uint64_t, uint32_t> index;
    std::vector<uint64_t> keys;
    std::vector<float> grads;
    std::vector<float> shows;
    std::vector<float> clicks;
  };

  std::vector<Table> tables_;
  int steps_ = 0;
  bool has_dense_ = false;
  bool counted_ = false;  // every step so far had shows and clicks
  std::vector<float> dense_;
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_PUSH_MERGER_H_
