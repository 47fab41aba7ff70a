#include "worker/client/push_merger.h"

#include <algorithm>

namespace ps {

void PushMerger::Add(absl::Span<const uint64_t> keys,
                     absl::Span<const float> grads,
                     absl::Span<const float> dense_grad,
                     absl::Span<const float> shows,
                     absl::Span<const float> clicks) {
  ++steps_;
  const bool counted = shows.size() == keys.size() &&
                       clicks.size() == keys.size() &&
                       (steps_ == 1 || counted_);
  counted_ = counted;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [it, inserted] =
        index_.try_emplace(keys[i], static_cast<uint32_t>(keys_.size()));
    const float* g = grads.data() + i * dim_;
    if (inserted) {
      keys_.push_back(keys[i]);
      grads_.insert(grads_.end(), g, g + dim_);
      shows_.push_back(counted ? shows[i] : 0.0f);
      clicks_.push_back(counted ? clicks[i] : 0.0f);
    } else {
      float* dst = grads_.data() + static_cast<size_t>(it->second) * dim_;
      for (int d = 0; d < dim_; ++d) dst[d] += g[d];
      if (counted) {
        shows_[it->second] += shows[i];
        clicks_[it->second] += clicks[i];
      }
    }
  }
  if (!dense_grad.empty()) {
    has_dense_ = true;
    for (size_t i = 0; i < dense_grad.size(); ++i) dense_[i] += dense_grad[i];
  }
}

void PushMerger::Clear() {
  steps_ = 0;
  has_dense_ = false;
  index_.clear();
  keys_.clear();
  grads_.clear();
  shows_.clear();
  clicks_.clear();
  counted_ = false;
  std::fill(dense_.begin(), dense_.end(), 0.0f);
}

}  // namespace ps
