#include "worker/train/geo_cache.h"

#include "glog/logging.h"

namespace ps {

namespace {

std::unique_ptr<OptimizerRule> MustCreate(const OptimizerConfig& config) {
  auto rule = OptimizerRule::Create(config);
  // Config validation checked these hyper-parameters already.
  CHECK(rule.ok()) << rule.status();
  return std::move(*rule);
}

}  // namespace

GeoCache::GeoCache(int dim, const OptimizerConfig& sparse_optimizer,
                   int64_t dense_size)
    : dim_(dim),
      sparse_rule_(MustCreate(sparse_optimizer)),
      state_(sparse_rule_->StateSize(dim)),
      dense_base_(dense_size, 0.0f) {}

std::vector<uint64_t> GeoCache::Missing(absl::Span<const uint64_t> keys) const {
  std::vector<uint64_t> missing;
  for (uint64_t k : keys) {
    if (!index_.contains(k)) missing.push_back(k);
  }
  return missing;
}

void GeoCache::Insert(absl::Span<const uint64_t> keys,
                      absl::Span<const float> values) {
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [it, inserted] =
        index_.try_emplace(keys[i], static_cast<uint32_t>(keys_.size()));
    if (!inserted) continue;
    keys_.push_back(keys[i]);
    const float* v = values.data() + i * dim_;
    values_.insert(values_.end(), v, v + dim_);
    base_.insert(base_.end(), v, v + dim_);
    auto [st, fresh] = state_index_.try_emplace(
        keys[i], static_cast<uint32_t>(state_index_.size()));
    if (fresh) {
      size_t at = states_.size();
      states_.resize(at + state_);
      sparse_rule_->InitState(absl::MakeSpan(states_.data() + at, state_));
    }
    row_state_.push_back(st->second);
  }
}

void GeoCache::Gather(absl::Span<const uint64_t> keys,
                      absl::Span<float> out) const {
  for (size_t i = 0; i < keys.size(); ++i) {
    const float* v =
        values_.data() + static_cast<size_t>(index_.at(keys[i])) * dim_;
    std::copy(v, v + dim_, out.begin() + i * dim_);
  }
}

void GeoCache::ApplySparse(absl::Span<const uint64_t> keys,
                           absl::Span<const float> grads, int64_t step,
                           absl::Span<const float> shows) {
  for (size_t i = 0; i < keys.size(); ++i) {
    const UpdateContext context{step, shows.size() == keys.size()
                                          ? shows.subspan(i, 1)
                                          : absl::Span<const float>()};
    size_t r = index_.at(keys[i]);
    sparse_rule_->Update(
        RowView{absl::MakeSpan(values_.data() + r * dim_, dim_),
                absl::MakeSpan(states_.data() +
                                   static_cast<size_t>(row_state_[r]) * state_,
                               state_)},
        grads.subspan(i * dim_, dim_), context);
  }
}

void GeoCache::SparseDeltas(std::vector<uint64_t>* keys,
                            std::vector<float>* deltas) const {
  *keys = keys_;
  deltas->resize(values_.size());
  for (size_t i = 0; i < values_.size(); ++i) {
    (*deltas)[i] = values_[i] - base_[i];
  }
}

std::vector<float> GeoCache::DenseDelta(absl::Span<const float> params) const {
  std::vector<float> delta(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    delta[i] = params[i] - dense_base_[i];
  return delta;
}

void GeoCache::Clear(int64_t step) {
  index_.clear();
  keys_.clear();
  values_.clear();
  base_.clear();
  row_state_.clear();
  synced_step_ = step;
}

void GeoCache::SetDenseBase(absl::Span<const float> params) {
  dense_base_.assign(params.begin(), params.end());
}

}  // namespace ps
