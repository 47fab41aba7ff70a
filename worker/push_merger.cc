#include "worker/push_merger.h"

#include <algorithm>

namespace ps {

void PushMerger::Add(absl::Span<const uint64_t> keys,
                     absl::Span<const float> grads,
                     absl::Span<const float> dense_grad) {
  ++steps_;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [it, inserted] =
        index_.try_emplace(keys[i], static_cast<uint32_t>(keys_.size()));
    const float* g = grads.data() + i * dim_;
    if (inserted) {
      keys_.push_back(keys[i]);
      grads_.insert(grads_.end(), g, g + dim_);
    } else {
      float* dst = grads_.data() + static_cast<size_t>(it->second) * dim_;
      for (int d = 0; d < dim_; ++d) dst[d] += g[d];
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
  std::fill(dense_.begin(), dense_.end(), 0.0f);
}

}  // namespace ps
