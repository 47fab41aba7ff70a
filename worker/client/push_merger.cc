#include "worker/client/push_merger.h"

#include <algorithm>
#include <utility>

#include "glog/logging.h"

namespace ps {

PushMerger::PushMerger(std::vector<int> dims, int64_t dense_size)
    : dense_(dense_size, 0) {
  tables_.resize(dims.size());
  for (size_t t = 0; t < dims.size(); ++t) tables_[t].dim = dims[t];
}

void PushMerger::Add(absl::Span<const SparsePush> parts,
                     absl::Span<const float> dense_grad) {
  CHECK_EQ(parts.size(), tables_.size());
  ++steps_;
  bool counted = steps_ == 1 || counted_;
  for (const SparsePush& part : parts) {
    counted = counted && part.shows.size() == part.keys.size() &&
              part.clicks.size() == part.keys.size();
  }
  counted_ = counted;
  for (size_t t = 0; t < parts.size(); ++t) {
    const SparsePush& part = parts[t];
    Table& table = tables_[t];
    const int dim = table.dim;
    CHECK_EQ(part.values.size(), part.keys.size() * dim) << "table " << t;
    if (steps_ == 1) {
      // One step's keys are distinct: no index until a second step comes
      // (most pushes carry one step, and building the map per step cost
      // more than the copies).
      table.keys.assign(part.keys.begin(), part.keys.end());
      table.grads.assign(part.values.begin(), part.values.end());
      if (counted) {
        table.shows.assign(part.shows.begin(), part.shows.end());
        table.clicks.assign(part.clicks.begin(), part.clicks.end());
      } else {
        table.shows.assign(part.keys.size(), 0.0f);
        table.clicks.assign(part.keys.size(), 0.0f);
      }
      continue;
    }
    if (steps_ == 2) {  // the first step's keys, indexed now
      table.index.reserve(table.keys.size() + part.keys.size());
      for (size_t k = 0; k < table.keys.size(); ++k) {
        table.index.emplace(table.keys[k], static_cast<uint32_t>(k));
      }
    }
    for (size_t i = 0; i < part.keys.size(); ++i) {
      auto [it, inserted] = table.index.try_emplace(
          part.keys[i], static_cast<uint32_t>(table.keys.size()));
      const float* g = part.values.data() + i * dim;
      if (inserted) {
        table.keys.push_back(part.keys[i]);
        table.grads.insert(table.grads.end(), g, g + dim);
        table.shows.push_back(counted ? part.shows[i] : 0.0f);
        table.clicks.push_back(counted ? part.clicks[i] : 0.0f);
      } else {
        float* dst = table.grads.data() + static_cast<size_t>(it->second) * dim;
        for (int d = 0; d < dim; ++d) dst[d] += g[d];
        if (counted) {
          table.shows[it->second] += part.shows[i];
          table.clicks[it->second] += part.clicks[i];
        }
      }
    }
  }
  if (!dense_grad.empty()) {
    has_dense_ = true;
    for (size_t i = 0; i < dense_grad.size(); ++i) dense_[i] += dense_grad[i];
  }
}

void PushMerger::Add(absl::Span<const uint64_t> keys,
                     absl::Span<const float> grads,
                     absl::Span<const float> dense_grad,
                     absl::Span<const float> shows,
                     absl::Span<const float> clicks) {
  const SparsePush part{0, tables_[0].dim, keys, grads, shows, clicks};
  Add(absl::MakeConstSpan(&part, 1), dense_grad);
}

void PushMerger::Clear() {
  for (Table& table : tables_) {
    if (steps_ > 1) table.index.clear();
    table.keys.clear();
    table.grads.clear();
    table.shows.clear();
    table.clicks.clear();
  }
  steps_ = 0;
  has_dense_ = false;
  counted_ = false;
  std::fill(dense_.begin(), dense_.end(), 0.0f);
}

}  // namespace ps
