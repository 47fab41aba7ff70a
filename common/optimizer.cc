#include "common/optimizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

#if defined(__SSE__) && defined(__GNUC__)
#include <xmmintrin.h>
#define PS_OPTIMIZER_SSE 1
#endif

namespace ps {

namespace {

// The update path works on Lanes: four floats in an SSE register where the
// target has SSE (x86-64 always does), else one float. g++ -O2 leaves loops
// of unknown length scalar, and sqrtf's errno check would stop it anyway, so
// the vector type is explicit. Lane arithmetic is IEEE single precision like
// the scalar tail's (no reassociation, no contraction: x86-64's baseline has
// no FMA), so both give bit-identical results.
#ifdef PS_OPTIMIZER_SSE
using Lanes = float __attribute__((vector_size(16)));
inline Lanes Sqrt(Lanes x) { return _mm_sqrt_ps(x); }
#else
using Lanes = float;
#endif
constexpr size_t kLanes = sizeof(Lanes) / sizeof(float);

inline float Sqrt(float x) { return std::sqrt(x); }

template <typename V>
inline V Splat(float x) {
  if constexpr (std::is_same_v<V, float>) {
    return x;
  } else {
    V v;
    for (size_t k = 0; k < kLanes; ++k) v[k] = x;
    return v;
  }
}

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

// std::clamp(w, -bound, bound) in every lane when bound > 0; 0 disables
// clipping.
template <typename V>
inline V Clip(V w, float bound) {
  if (!(bound > 0)) return w;
  const V lo = Splat<V>(-bound);
  const V hi = Splat<V>(bound);
  w = w < lo ? lo : w;
  return hi < w ? hi : w;
}

// g + l2 * w in every lane when l2 > 0: weight decay added to the gradient.
// With l2 = 0 the gradient is returned untouched, so rules without decay give
// exactly the results they gave before l2 existed (g + 0 * w could turn a -0
// gradient into +0).
template <typename V>
inline V Decay(V g, V w, float l2) {
  if (!(l2 > 0)) return g;
  return g + l2 * w;
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

// Each rule's math. A rule declares
//   kName;
//   kStates: floats of state per weight, InitialState() their start values;
//   kRowStates: floats of state per row, InitialRowState() their start
//     values, and BeginRow(row_state), which the update path calls once per
//     row update, before any weight, to advance that state and return a Row
//     of per-row scalars for the weights' math (NoRowState supplies all three
//     for rules that keep none);
//   Validate(config): its own hyper-parameters (learning_rate, weight_bound
//     and l2 are checked for all rules);
//   operator()(row, w, s, g): updates weight `w` and its states `s` from
//     gradient `g`, for V = float and V = Lanes alike.

struct NoRowState {
  static constexpr int kRowStates = 0;
  struct Row {};
  std::array<float, 0> InitialRowState() const { return {}; }
  Row BeginRow(float* /*row_state*/) const { return {}; }
};

// SGD: g += l2 * w; w -= lr * g.
struct SgdMath : NoRowState {
  static constexpr const char* kName = "sgd";
  static constexpr int kStates = 0;

  static absl::Status Validate(const OptimizerConfig&) {
    return absl::OkStatus();
  }
  explicit SgdMath(const OptimizerConfig& c)
      : lr(c.learning_rate()), l2(c.l2()), bound(c.weight_bound()) {}
  std::array<float, kStates> InitialState() const { return {}; }

  template <typename V>
  void operator()(const Row&, V& w, std::array<V, kStates>&, V g) const {
    g = Decay(g, w, l2);
    w = Clip(w - lr * g, bound);
  }

  float lr;
  float l2;
  float bound;
};

// Per-coordinate Adagrad: g += l2 * w; g2 += g^2;
// w -= lr * g / (sqrt(g2) + epsilon).
struct AdagradMath : NoRowState {
  static constexpr const char* kName = "adagrad";
  static constexpr int kStates = 1;  // g2

  static absl::Status Validate(const OptimizerConfig& c) {
    RETURN_IF_ERROR(CheckPositive("adagrad epsilon", c.epsilon()));
    return CheckNonNegative("adagrad initial_accumulator",
                            c.initial_accumulator());
  }
  explicit AdagradMath(const OptimizerConfig& c)
      : lr(c.learning_rate()),
        eps(c.epsilon()),
        init(c.initial_accumulator()),
        l2(c.l2()),
        bound(c.weight_bound()) {}
  std::array<float, kStates> InitialState() const { return {init}; }

  template <typename V>
  void operator()(const Row&, V& w, std::array<V, kStates>& s, V g) const {
    V& g2 = s[0];
    g = Decay(g, w, l2);
    g2 = g2 + g * g;
    w = Clip(w - lr * g / (Sqrt(g2) + eps), bound);
  }

  float lr;
  float eps;
  float init;
  float l2;
  float bound;
};

// Adam with the bias correction kept per row (a row's t counts its own
// updates, so rows first seen late are not under-corrected):
//   b1t *= beta1; b2t *= beta2                  (per row: beta^t)
//   lr_t = lr * sqrt(1 - b2t) / (1 - b1t)       (per row, in double)
//   g += l2 * w; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2
//   w -= lr_t * m / (sqrt(v) + epsilon)
struct AdamMath {
  static constexpr const char* kName = "adam";
  static constexpr int kStates = 2;     // m, v
  static constexpr int kRowStates = 2;  // beta1^t, beta2^t

  static absl::Status Validate(const OptimizerConfig& c) {
    RETURN_IF_ERROR(CheckDecay("adam beta1", c.beta1()));
    RETURN_IF_ERROR(CheckDecay("adam beta2", c.beta2()));
    return CheckPositive("adam epsilon", c.epsilon());
  }
  explicit AdamMath(const OptimizerConfig& c)
      : lr(c.learning_rate()),
        beta1(c.beta1()),
        beta2(c.beta2()),
        one_minus_beta1(1.0f - c.beta1()),
        one_minus_beta2(1.0f - c.beta2()),
        eps(c.epsilon()),
        l2(c.l2()),
        bound(c.weight_bound()) {}
  std::array<float, kStates> InitialState() const { return {0.0f, 0.0f}; }
  // beta^0.
  std::array<float, kRowStates> InitialRowState() const { return {1.0f, 1.0f}; }

  struct Row {
    float lr;  // lr_t of this update
  };
  Row BeginRow(float* beta_pow) const {
    beta_pow[0] *= beta1;
    beta_pow[1] *= beta2;
    const double correction =
        std::sqrt(1.0 - static_cast<double>(beta_pow[1])) /
        (1.0 - static_cast<double>(beta_pow[0]));
    return Row{static_cast<float>(lr * correction)};
  }

  template <typename V>
  void operator()(const Row& row, V& w, std::array<V, kStates>& s, V g) const {
    V& m = s[0];
    V& v = s[1];
    g = Decay(g, w, l2);
    m = beta1 * m + one_minus_beta1 * g;
    v = beta2 * v + one_minus_beta2 * (g * g);
    w = Clip(w - row.lr * m / (Sqrt(v) + eps), bound);
  }

  float lr;
  float beta1;
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float eps;
  float l2;
  float bound;
};

// FTRL-Proximal (McMahan et al. 2013, algorithm 1), per weight, alpha = lr:
//   sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
//   z += g - sigma * w; n += g^2
//   w = 0 if |z| <= l1,
//   else w = -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)
struct FtrlMath : NoRowState {
  static constexpr const char* kName = "ftrl";
  static constexpr int kStates = 2;  // z, n

  static absl::Status Validate(const OptimizerConfig& c) {
    RETURN_IF_ERROR(CheckNonNegative("ftrl ftrl_beta", c.ftrl_beta()));
    return CheckNonNegative("ftrl l1", c.l1());
  }
  explicit FtrlMath(const OptimizerConfig& c)
      : alpha(c.learning_rate()),
        beta(c.ftrl_beta()),
        l1(c.l1()),
        l2(c.l2()),
        bound(c.weight_bound()) {}
  std::array<float, kStates> InitialState() const { return {0.0f, 0.0f}; }

  template <typename V>
  void operator()(const Row&, V& w, std::array<V, kStates>& s, V g) const {
    V& z = s[0];
    V& n = s[1];
    const V new_n = n + g * g;
    const V sqrt_new_n = Sqrt(new_n);
    const V sigma = (sqrt_new_n - Sqrt(n)) / alpha;
    z = z + (g - sigma * w);
    n = new_n;
    const V zero = Splat<V>(0.0f);
    const V abs_z = z < zero ? -z : z;
    const V shrunk = z < zero ? z + l1 : z - l1;
    const V solved = -shrunk / ((beta + sqrt_new_n) / alpha + l2);
    w = Clip(abs_z <= Splat<V>(l1) ? zero : solved, bound);
  }

  float alpha;
  float beta;
  float l1;
  float l2;
  float bound;
};

// The update path, written once for every rule.
template <typename Math>
class Rule final : public OptimizerRule {
 public:
  explicit Rule(const OptimizerConfig& config) : math_(config) {}

  const char* Name() const override { return Math::kName; }
  int StateSize(int dim) const override {
    return Math::kStates * dim + Math::kRowStates;
  }

  void InitState(absl::Span<float> state) const override {
    size_t dim = 0;
    if constexpr (Math::kStates > 0) {
      dim = (state.size() - Math::kRowStates) / Math::kStates;
      const std::array<float, Math::kStates> init = math_.InitialState();
      for (int k = 0; k < Math::kStates; ++k) {
        std::fill_n(state.data() + k * dim, dim, init[k]);
      }
    }
    const std::array<float, Math::kRowStates> row = math_.InitialRowState();
    std::copy(row.begin(), row.end(), state.data() + Math::kStates * dim);
  }

  void Update(RowView row, absl::Span<const float> grad) const override {
    Apply(row.weights.data(), row.state.data(), grad.data(), grad.size());
  }

  void UpdateRows(int dim, absl::Span<float* const> rows,
                  absl::Span<const float* const> grads) const override {
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
      Apply(row[i], row[i] + dim, grad[i], dim);
    }
  }

 private:
  // Weights w[0, n), their states s[k * n + i], the row's own states
  // s[kStates * n + j], gradient g[0, n).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Apply(float* w, float* s, const float* g,
                                          size_t n) const {
    const typename Math::Row row = math_.BeginRow(s + Math::kStates * n);
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) Step<Lanes>(row, w, s, g, n, i);
    for (; i < n; ++i) Step<float>(row, w, s, g, n, i);
  }

  // Weights i .. i + lanes of V.
  template <typename V>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Step(const typename Math::Row& row,
                                         float* w, float* s, const float* g,
                                         size_t n, size_t i) const {
    V wv = Load<V>(w + i);
    std::array<V, Math::kStates> sv;
    for (int k = 0; k < Math::kStates; ++k) sv[k] = Load<V>(s + k * n + i);
    math_(row, wv, sv, Load<V>(g + i));
    Store(w + i, wv);
    for (int k = 0; k < Math::kStates; ++k) Store(s + k * n + i, sv[k]);
  }

  const Math math_;
};

template <typename Math>
absl::StatusOr<std::unique_ptr<OptimizerRule>> MakeRule(
    const OptimizerConfig& config) {
  RETURN_IF_ERROR(Math::Validate(config));
  return std::unique_ptr<OptimizerRule>(std::make_unique<Rule<Math>>(config));
}

}  // namespace

absl::StatusOr<std::unique_ptr<OptimizerRule>> OptimizerRule::Create(
    const OptimizerConfig& config) {
  RETURN_IF_ERROR(
      CheckPositive("optimizer learning_rate", config.learning_rate()));
  RETURN_IF_ERROR(
      CheckNonNegative("optimizer weight_bound", config.weight_bound()));
  RETURN_IF_ERROR(CheckNonNegative("optimizer l2", config.l2()));
  switch (config.type()) {
    case OptimizerConfig::SGD:
      return MakeRule<SgdMath>(config);
    case OptimizerConfig::ADAGRAD:
      return MakeRule<AdagradMath>(config);
    case OptimizerConfig::ADAM:
      return MakeRule<AdamMath>(config);
    case OptimizerConfig::FTRL:
      return MakeRule<FtrlMath>(config);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown optimizer type ", static_cast<int>(config.type())));
  }
}

}  // namespace ps
