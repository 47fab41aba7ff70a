#include "common/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ps {

namespace {

using optimizer_math::AdagradMath;
using optimizer_math::AdamMath;
using optimizer_math::FtrlMath;
using optimizer_math::Hyper;
using optimizer_math::kLanes;
using optimizer_math::Lanes;
using optimizer_math::SgdMath;
using optimizer_math::States;

template <typename V>
inline V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
inline void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

absl::Status CheckPositive(absl::string_view field, float value) {
  if (value > 0 && std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be positive, got ", value));
}

absl::Status CheckNonNegative(absl::string_view field, float value) {
  if (value >= 0 && std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be finite and >= 0, got ", value));
}

// A decay rate in [0, 1) (NaN fails both comparisons).
absl::Status CheckDecay(absl::string_view field, float value) {
  if (value >= 0 && value < 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be in [0, 1), got ", value));
}

// The learning-rate schedule of `c`, as Create documents.
absl::StatusOr<optimizer_math::Schedule> CheckedSchedule(
    const OptimizerConfig& c) {
  optimizer_math::Schedule s;
  if (c.warmup_steps() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer warmup_steps must be >= 0, got ", c.warmup_steps()));
  }
  s.warmup_steps = c.warmup_steps();
  switch (c.decay()) {
    case OptimizerConfig::NONE:
      return s;
    case OptimizerConfig::EXPONENTIAL:
      s.decay = optimizer_math::Decay::kExponential;
      if (!(c.decay_rate() > 0 && c.decay_rate() <= 1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer decay_rate must be in (0, 1] for an "
                         "EXPONENTIAL decay, got ",
                         c.decay_rate()));
      }
      break;
    case OptimizerConfig::INVERSE_SQRT:
      s.decay = optimizer_math::Decay::kInverseSqrt;
      break;
    case OptimizerConfig::COSINE:
      s.decay = optimizer_math::Decay::kCosine;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown optimizer decay ", static_cast<int>(c.decay())));
  }
  if (c.decay_steps() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer decay_steps must be > 0 with a decay, got ",
                     c.decay_steps()));
  }
  // FTRL divides by the rate, so it must stay positive.
  const bool ftrl = c.type() == OptimizerConfig::FTRL;
  if (!(c.min_learning_rate() >= 0 &&
        c.min_learning_rate() <= c.learning_rate()) ||
      (ftrl && !(c.min_learning_rate() > 0))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer min_learning_rate must be in ", ftrl ? "(0, " : "[0, ",
        c.learning_rate(), "] (the learning_rate", ftrl ? "; FTRL" : "",
        "), got ", c.min_learning_rate()));
  }
  s.decay_steps = c.decay_steps();
  s.decay_rate = c.decay_rate();
  s.min_learning_rate = c.min_learning_rate();
  return s;
}

// The hyper-parameters of `config` (learning_rate, weight_bound, l2 and the
// schedule for every rule; each rule's own for its type), as Create
// documents.
absl::StatusOr<Hyper> CheckedHyper(const OptimizerConfig& c) {
  RETURN_IF_ERROR(CheckPositive("optimizer learning_rate", c.learning_rate()));
  RETURN_IF_ERROR(CheckNonNegative("optimizer weight_bound", c.weight_bound()));
  RETURN_IF_ERROR(CheckNonNegative("optimizer l2", c.l2()));
  if (c.l2_by_frequency() && !(c.l2() > 0)) {
    return absl::InvalidArgumentError(
        "optimizer l2_by_frequency needs l2 > 0 (it scales l2)");
  }
  Hyper h;
  ASSIGN_OR_RETURN(h.schedule, CheckedSchedule(c));
  h.l2_by_frequency = c.l2_by_frequency();
  h.learning_rate = c.learning_rate();
  h.epsilon = c.epsilon();
  h.initial_accumulator = c.initial_accumulator();
  h.weight_bound = c.weight_bound();
  h.beta1 = c.beta1();
  h.beta2 = c.beta2();
  h.ftrl_beta = c.ftrl_beta();
  h.l1 = c.l1();
  h.l2 = c.l2();
  switch (c.type()) {
    case OptimizerConfig::SGD:
      h.kind = optimizer_math::Kind::kSgd;
      break;
    case OptimizerConfig::ADAGRAD:
      h.kind = optimizer_math::Kind::kAdagrad;
      RETURN_IF_ERROR(CheckPositive("adagrad epsilon", c.epsilon()));
      RETURN_IF_ERROR(CheckNonNegative("adagrad initial_accumulator",
                                       c.initial_accumulator()));
      break;
    case OptimizerConfig::ADAM:
      h.kind = optimizer_math::Kind::kAdam;
      RETURN_IF_ERROR(CheckDecay("adam beta1", c.beta1()));
      RETURN_IF_ERROR(CheckDecay("adam beta2", c.beta2()));
      RETURN_IF_ERROR(CheckPositive("adam epsilon", c.epsilon()));
      break;
    case OptimizerConfig::FTRL:
      h.kind = optimizer_math::Kind::kFtrl;
      RETURN_IF_ERROR(CheckNonNegative("ftrl ftrl_beta", c.ftrl_beta()));
      RETURN_IF_ERROR(CheckNonNegative("ftrl l1", c.l1()));
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown optimizer type ", static_cast<int>(c.type())));
  }
  return h;
}

// The update path, written once for every rule.
template <typename Math>
class Rule final : public OptimizerRule {
 public:
  explicit Rule(const Hyper& hyper)
      : hyper_(hyper),
        scheduled_(optimizer_math::HasSchedule(hyper.schedule)),
        math_(hyper) {}

  const char* Name() const override { return Math::kName; }
  int StateSize(int dim) const override {
    return Math::kStates * dim + Math::kRowStates;
  }

  void InitState(absl::Span<float> state) const override {
    size_t dim = 0;
    if constexpr (Math::kStates > 0) {
      dim = (state.size() - Math::kRowStates) / Math::kStates;
      const States<float, Math::kStates> init = math_.InitialState();
      for (int k = 0; k < Math::kStates; ++k) {
        std::fill_n(state.data() + k * dim, dim, init[k]);
      }
    }
    const States<float, Math::kRowStates> row = math_.InitialRowState();
    for (int j = 0; j < Math::kRowStates; ++j) {
      state[Math::kStates * dim + j] = row[j];
    }
  }

  using OptimizerRule::Update;
  using OptimizerRule::UpdateRows;

  void Update(RowView row, absl::Span<const float> grad,
              const UpdateContext& context) const override {
    const Math math = MathAt(context.step);
    const float* count = context.counts.empty() ? nullptr : &context.counts[0];
    Apply(CountedMath(math, count), row.weights.data(), row.state.data(),
          grad.data(), grad.size());
  }

  void UpdateRows(int dim, absl::Span<float* const> rows,
                  absl::Span<const float* const> grads,
                  const UpdateContext& context) const override {
    const Math math = MathAt(context.step);
    const bool counted = hyper_.l2_by_frequency && !context.counts.empty();
    const size_t row_bytes = (dim + StateSize(dim)) * sizeof(float);
    const size_t ahead = PrefetchDistance(row_bytes);
    const size_t n = rows.size();
    float* const* row = rows.data();
    const float* const* grad = grads.data();
    for (size_t i = 0; i < std::min(n, ahead); ++i) {
      PrefetchBytes</*kForWrite=*/true>(row[i], row_bytes);
    }
    for (size_t i = 0; i < n; ++i) {
      if (i + ahead < n) {
        PrefetchBytes</*kForWrite=*/true>(row[i + ahead], row_bytes);
      }
      if (counted) {
        Apply(CountedMath(math, &context.counts[i]), row[i], row[i] + dim,
              grad[i], dim);
      } else {
        Apply(math, row[i], row[i] + dim, grad[i], dim);
      }
    }
  }

 private:
  // The math at the learning rate of an update at `step`.
  Math MathAt(int64_t step) const {
    if (!scheduled_) return math_;
    return Math(optimizer_math::AtStep(hyper_, step));
  }

  // `math` with the l2 of a row whose key occurred *count times
  // (l2_by_frequency; count null: 1).
  Math CountedMath(const Math& math, const float* count) const {
    if (!hyper_.l2_by_frequency || count == nullptr) return math;
    Math counted = math;
    counted.l2 = optimizer_math::FrequencyL2(hyper_.l2, *count);
    return counted;
  }

  // Weights w[0, n), their states s[k * n + i], the row's own states
  // s[kStates * n + j], gradient g[0, n).
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void Apply(const Math& math, float* w,
                                                 float* s, const float* g,
                                                 size_t n) {
    const typename Math::Row row = math.BeginRow(s + Math::kStates * n);
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) Step<Lanes>(math, row, w, s, g, n, i);
    for (; i < n; ++i) Step<float>(math, row, w, s, g, n, i);
  }

  // Weights i .. i + lanes of V.
  template <typename V>
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void Step(const Math& math,
                                                const typename Math::Row& row,
                                                float* w, float* s,
                                                const float* g, size_t n,
                                                size_t i) {
    V wv = Load<V>(w + i);
    States<V, Math::kStates> sv;
    for (int k = 0; k < Math::kStates; ++k) sv[k] = Load<V>(s + k * n + i);
    math(row, wv, sv, Load<V>(g + i));
    Store(w + i, wv);
    for (int k = 0; k < Math::kStates; ++k) Store(s + k * n + i, sv[k]);
  }

  const Hyper hyper_;
  const bool scheduled_;  // hyper_ has a schedule: MathAt builds a Math
  const Math math_;       // at the base learning rate
};

}  // namespace

absl::StatusOr<optimizer_math::Hyper> OptimizerHyper(
    const OptimizerConfig& config) {
  return CheckedHyper(config);
}

absl::StatusOr<std::unique_ptr<OptimizerRule>> OptimizerRule::Create(
    const OptimizerConfig& config) {
  ASSIGN_OR_RETURN(const Hyper hyper, CheckedHyper(config));
  switch (hyper.kind) {
    case optimizer_math::Kind::kSgd:
      return std::unique_ptr<OptimizerRule>(
          std::make_unique<Rule<SgdMath>>(hyper));
    case optimizer_math::Kind::kAdagrad:
      return std::unique_ptr<OptimizerRule>(
          std::make_unique<Rule<AdagradMath>>(hyper));
    case optimizer_math::Kind::kAdam:
      return std::unique_ptr<OptimizerRule>(
          std::make_unique<Rule<AdamMath>>(hyper));
    case optimizer_math::Kind::kFtrl:
      return std::unique_ptr<OptimizerRule>(
          std::make_unique<Rule<FtrlMath>>(hyper));
  }
  return absl::InternalError("unreachable optimizer kind");
}

}  // namespace ps
