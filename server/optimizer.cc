#include "server/optimizer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace ps {

namespace {

// Clips to [-bound, bound] when bound > 0.
inline float Bound(float w, float bound) {
  return bound > 0 ? std::clamp(w, -bound, bound) : w;
}

class SgdRule final : public OptimizerRule {
 public:
  explicit SgdRule(const OptimizerConfig& c)
      : lr_(c.learning_rate()), bound_(c.weight_bound()) {}
  const char* Name() const override { return "sgd"; }
  int StateSize(int) const override { return 0; }
  void InitState(absl::Span<float>) const override {}
  void Update(RowView row, absl::Span<const float> grad) const override {
    for (size_t i = 0; i < grad.size(); ++i) {
      row.weights[i] = Bound(row.weights[i] - lr_ * grad[i], bound_);
    }
  }

 private:
  const float lr_;
  const float bound_;
};

// Per-coordinate Adagrad: g2 += g^2; w -= lr * g / (sqrt(g2) + epsilon).
class AdagradRule final : public OptimizerRule {
 public:
  explicit AdagradRule(const OptimizerConfig& c)
      : lr_(c.learning_rate()),
        eps_(c.epsilon()),
        init_(c.initial_accumulator()),
        bound_(c.weight_bound()) {}
  const char* Name() const override { return "adagrad"; }
  int StateSize(int dim) const override { return dim; }
  void InitState(absl::Span<float> state) const override {
    std::fill(state.begin(), state.end(), init_);
  }
  void Update(RowView row, absl::Span<const float> grad) const override {
    for (size_t i = 0; i < grad.size(); ++i) {
      float g = grad[i];
      float g2 = row.state[i] + g * g;
      row.state[i] = g2;
      row.weights[i] =
          Bound(row.weights[i] - lr_ * g / (std::sqrt(g2) + eps_), bound_);
    }
  }

 private:
  const float lr_;
  const float eps_;
  const float init_;
  const float bound_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<OptimizerRule>> OptimizerRule::Create(
    const OptimizerConfig& config) {
  if (!(config.learning_rate() > 0) || !std::isfinite(config.learning_rate())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer learning_rate must be positive, got ",
        config.learning_rate()));
  }
  switch (config.type()) {
    case OptimizerConfig::SGD:
      return std::make_unique<SgdRule>(config);
    case OptimizerConfig::ADAGRAD:
      return std::make_unique<AdagradRule>(config);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown optimizer type ", static_cast<int>(config.type())));
  }
}

}  // namespace ps
