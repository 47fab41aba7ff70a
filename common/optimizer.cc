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

// Each rule's math. A rule declares kName, kStates (floats of state per
// weight), Validate (its own hyper-parameters; learning_rate and
// weight_bound are checked for all), InitialState, and an operator() that
// updates a weight `w` and its states `s` from gradient `g`, for V = float
// and V = Lanes alike.

// SGD: w -= lr * g.
struct SgdMath {
  static constexpr const char* kName = "sgd";
  static constexpr int kStates = 0;

  static absl::Status Validate(const OptimizerConfig&) {
    return absl::OkStatus();
  }
  explicit SgdMath(const OptimizerConfig& c)
      : lr(c.learning_rate()), bound(c.weight_bound()) {}
  std::array<float, kStates> InitialState() const { return {}; }

  template <typename V>
  void operator()(V& w, std::array<V, kStates>&, V g) const {
    w = Clip(w - lr * g, bound);
  }

  float lr;
  float bound;
};

// Per-coordinate Adagrad: g2 += g^2; w -= lr * g / (sqrt(g2) + epsilon).
struct AdagradMath {
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
        bound(c.weight_bound()) {}
  std::array<float, kStates> InitialState() const { return {init}; }

  template <typename V>
  void operator()(V& w, std::array<V, kStates>& s, V g) const {
    V& g2 = s[0];
    g2 = g2 + g * g;
    w = Clip(w - lr * g / (Sqrt(g2) + eps), bound);
  }

  float lr;
  float eps;
  float init;
  float bound;
};

// The update path, written once for every rule.
template <typename Math>
class Rule final : public OptimizerRule {
 public:
  explicit Rule(const OptimizerConfig& config) : math_(config) {}

  const char* Name() const override { return Math::kName; }
  int StateSize(int dim) const override { return Math::kStates * dim; }

  void InitState(absl::Span<float> state) const override {
    if (Math::kStates == 0) return;
    const size_t dim = state.size() / Math::kStates;
    const std::array<float, Math::kStates> init = math_.InitialState();
    for (int k = 0; k < Math::kStates; ++k) {
      std::fill_n(state.data() + k * dim, dim, init[k]);
    }
  }

  void Update(RowView row, absl::Span<const float> grad) const override {
    Apply(row.weights.data(), row.state.data(), grad.data(), grad.size());
  }

  void UpdateRows(int dim, absl::Span<float* const> rows,
                  absl::Span<const float* const> grads) const override {
    const size_t row_bytes = (1 + Math::kStates) * dim * sizeof(float);
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
  // Weights w[0, n), their states s[k * n + i], gradient g[0, n).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Apply(float* w, float* s, const float* g,
                                          size_t n) const {
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) Step<Lanes>(w, s, g, n, i);
    for (; i < n; ++i) Step<float>(w, s, g, n, i);
  }

  // Weights i .. i + lanes of V.
  template <typename V>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Step(float* w, float* s, const float* g,
                                         size_t n, size_t i) const {
    V wv = Load<V>(w + i);
    std::array<V, Math::kStates> sv;
    for (int k = 0; k < Math::kStates; ++k) sv[k] = Load<V>(s + k * n + i);
    math_(wv, sv, Load<V>(g + i));
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
  switch (config.type()) {
    case OptimizerConfig::SGD:
      return MakeRule<SgdMath>(config);
    case OptimizerConfig::ADAGRAD:
      return MakeRule<AdagradMath>(config);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown optimizer type ", static_cast<int>(config.type())));
  }
}

}  // namespace ps
