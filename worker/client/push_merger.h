// Gradients of several steps merged into one push: sparse gradients summed
// per key (first-seen key order), dense gradients summed. The trainer feeds
// every step's gradients here and sends the merged push whenever the
// communicator has room, so a backed-up push queue merges steps instead of
// growing or stalling. Not thread-safe (the trainer thread owns it).
#ifndef PS_WORKER_CLIENT_PUSH_MERGER_H_
#define PS_WORKER_CLIENT_PUSH_MERGER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace ps {

class PushMerger {
 public:
  PushMerger(int dim, int64_t dense_size) : dim_(dim), dense_(dense_size, 0) {}

  // Adds one step: grads has keys.size() * dim floats, dense_grad is empty
  // or dense_size floats; shows and clicks one per key (summed per key like
  // the gradients), or empty.
  void Add(absl::Span<const uint64_t> keys, absl::Span<const float> grads,
           absl::Span<const float> dense_grad,
           absl::Span<const float> shows = {},
           absl::Span<const float> clicks = {});

  int steps() const { return steps_; }
  bool empty() const { return steps_ == 0; }
  const std::vector<uint64_t>& keys() const { return keys_; }
  const std::vector<float>& grads() const { return grads_; }
  // Per key: summed shows and clicks; empty unless every step had them.
  absl::Span<const float> shows() const {
    return counted_ ? absl::Span<const float>(shows_)
                    : absl::Span<const float>();
  }
  absl::Span<const float> clicks() const {
    return counted_ ? absl::Span<const float>(clicks_)
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
  const int dim_;
  int steps_ = 0;
  bool has_dense_ = false;
  absl::flat_hash_map<uint64_t, uint32_t> index_;
  std::vector<uint64_t> keys_;
  std::vector<float> grads_;
  bool counted_ = false;  // every step so far had shows and clicks
  std::vector<float> shows_;
  std::vector<float> clicks_;
  std::vector<float> dense_;
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_PUSH_MERGER_H_
