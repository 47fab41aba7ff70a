// The arithmetic of the optimizer rules (formulas in proto/config.proto,
// OptimizerConfig), written once for every place a rule runs:
//  - the servers' update path (common/optimizer.cc), on four floats at a
//    time (Lanes) and on single floats;
//  - a worker's backend, which updates a dense vector in its own memory
//    (Backend::DenseOptimizerStep: the CPU backend on the host, the CUDA
//    backend in a kernel).
// Header-only, with no dependency beyond the C++ library, and every function
// PS_HOST_DEVICE, so nvcc compiles the same source for the device. The CUDA
// backend builds its optimizer kernel without FMA contraction (-fmad=false)
// and with IEEE division and square root, and the host libraries that use
// this header (ps_common, ps_kernels) build with -ffp-contract=off, so the
// device gives bit-identical results to the host on any target.
//
// Each rule's math declares
//   kStates: floats of state per weight, InitialState() their start values;
//   kRowStates: floats of state per row, InitialRowState() their start
//     values, and BeginRow(row_state), run once per row update before any
//     weight: it advances that state and returns a Row of per-row scalars
//     for the weights' math (NoRowState supplies all three for rules that
//     keep none);
//   operator()(row, w, s, g): updates weight `w` and its states `s` from
//     gradient `g`, for V = float and V = Lanes alike.
// Row layout as in common/optimizer.h: for weight i of n, its state k sits at
// state[k * n + i], the row's state j at state[kStates * n + j].
#ifndef PS_COMMON_OPTIMIZER_MATH_H_
#define PS_COMMON_OPTIMIZER_MATH_H_

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "common/host_device.h"

#if !defined(__CUDACC__) && defined(__SSE__) && defined(__GNUC__)
#include <xmmintrin.h>
#define PS_OPTIMIZER_LANES 1
#endif

namespace ps {
namespace optimizer_math {

enum class Kind : int32_t { kSgd = 0, kAdagrad = 1, kAdam = 2, kFtrl = 3 };
enum class Decay : int32_t {
  kNone = 0,
  kExponential = 1,
  kInverseSqrt = 2,
  kCosine = 3
};

// The learning-rate schedule (OptimizerConfig's warmup_steps, decay,
// decay_steps, decay_rate, min_learning_rate; formulas there).
struct Schedule {
  int64_t warmup_steps = 0;
  Decay decay = Decay::kNone;
  int64_t decay_steps = 0;
  float decay_rate = 0;
  float min_learning_rate = 0;
};

// A rule and its hyper-parameters, as plain values (a kernel argument).
// Made from an OptimizerConfig by OptimizerHyper (common/optimizer.h), which
// checks them. The rules' math reads learning_rate as the rate of the update
// at hand: code that runs a schedule passes AtStep(hyper, step).
struct Hyper {
  Kind kind = Kind::kSgd;
  float learning_rate = 0;
  float epsilon = 0;
  float initial_accumulator = 0;
  float weight_bound = 0;
  float beta1 = 0;
  float beta2 = 0;
  float ftrl_beta = 0;
  float l1 = 0;
  float l2 = 0;
  Schedule schedule;
  // OptimizerConfig.l2_by_frequency: a row's l2 is FrequencyL2(l2, count).
  bool l2_by_frequency = false;
};

// True when `s` changes the rate at some step.
inline bool HasSchedule(const Schedule& s) {
  return s.warmup_steps > 0 || s.decay != Decay::kNone;
}

// The learning rate of an update at `step` (OptimizerConfig's formulas):
// computed in double, rounded to float once. Exactly h.learning_rate without
// a schedule. Host code only (the backends get the result in a Hyper).
inline float ScheduledLearningRate(const Hyper& h, int64_t step) {
  const Schedule& s = h.schedule;
  if (!HasSchedule(s)) return h.learning_rate;
  const double t = static_cast<double>(step < 1 ? 1 : step);
  const double lr = h.learning_rate;
  const double floor = s.min_learning_rate;
  const double warm =
      s.warmup_steps > 0
          ? std::fmin(1.0, t / static_cast<double>(s.warmup_steps))
          : 1.0;
  const double u = std::fmax(0.0, t - static_cast<double>(s.warmup_steps));
  const double d = static_cast<double>(s.decay_steps);
  double decayed = lr;
  switch (s.decay) {
    case Decay::kNone:
      break;
    case Decay::kExponential:
      decayed = std::fmax(
          floor, lr * std::pow(static_cast<double>(s.decay_rate), u / d));
      break;
    case Decay::kInverseSqrt:
      decayed = std::fmax(floor, lr * std::sqrt(d / (d + u)));
      break;
    case Decay::kCosine: {
      constexpr double kPi = 3.14159265358979323846;
      const double progress = std::fmin(u, d) / d;
      decayed = floor + (lr - floor) * (1.0 + std::cos(kPi * progress)) / 2.0;
      break;
    }
  }
  return static_cast<float>(warm * decayed);
}

// The l2 of a row whose key occurred `count` times (l2_by_frequency):
// l2 / max(1, count), in float.
PS_HOST_DEVICE inline float FrequencyL2(float l2, float count) {
  return count > 1.0f ? l2 / count : l2;
}

// `h` with the learning rate of an update at `step`.
inline Hyper AtStep(Hyper h, int64_t step) {
  h.learning_rate = ScheduledLearningRate(h, step);
  return h;
}

// A fixed-size array usable in device code (std::array's members are not
// __device__).
template <typename V, int N>
struct States {
  V v[N > 0 ? N : 1];
  PS_HOST_DEVICE V& operator[](int k) { return v[k]; }
  PS_HOST_DEVICE const V& operator[](int k) const { return v[k]; }
};

// Lanes: four floats in an SSE register where the host compiler targets SSE
// (x86-64 always does), else one float; the servers' update path works on
// them. g++ -O2 leaves loops of unknown length scalar, and sqrtf's errno
// check would stop it anyway, so the vector type is explicit. Lane
// arithmetic is IEEE single precision like the scalar tail's (no
// reassociation, no contraction: x86-64's baseline has no FMA), so both give
// bit-identical results.
#ifdef PS_OPTIMIZER_LANES
using Lanes = float __attribute__((vector_size(16)));
inline Lanes Sqrt(Lanes x) { return _mm_sqrt_ps(x); }
#else
using Lanes = float;
#endif
constexpr int kLanes = sizeof(Lanes) / sizeof(float);

PS_HOST_DEVICE inline float Sqrt(float x) { return sqrtf(x); }

template <typename V>
PS_HOST_DEVICE inline V Splat(float x) {
  if constexpr (std::is_same_v<V, float>) {
    return x;
  } else {
    V v;
    for (int k = 0; k < kLanes; ++k) v[k] = x;
    return v;
  }
}

// std::clamp(w, -bound, bound) in every lane when bound > 0; 0 disables
// clipping.
template <typename V>
PS_HOST_DEVICE inline V Clip(V w, float bound) {
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
PS_HOST_DEVICE inline V Decay(V g, V w, float l2) {
  if (!(l2 > 0)) return g;
  return g + l2 * w;
}

struct NoRowState {
  static constexpr int kRowStates = 0;
  struct Row {};
  PS_HOST_DEVICE States<float, 0> InitialRowState() const { return {}; }
  PS_HOST_DEVICE Row BeginRow(float* /*row_state*/) const { return {}; }
};

// SGD: g += l2 * w; w -= lr * g.
struct SgdMath : NoRowState {
  static constexpr const char* kName = "sgd";
  static constexpr int kStates = 0;

  PS_HOST_DEVICE explicit SgdMath(const Hyper& h)
      : lr(h.learning_rate), l2(h.l2), bound(h.weight_bound) {}
  PS_HOST_DEVICE States<float, kStates> InitialState() const { return {}; }

  template <typename V>
  PS_HOST_DEVICE void operator()(const Row&, V& w, States<V, kStates>&,
                                 V g) const {
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

  PS_HOST_DEVICE explicit AdagradMath(const Hyper& h)
      : lr(h.learning_rate),
        eps(h.epsilon),
        init(h.initial_accumulator),
        l2(h.l2),
        bound(h.weight_bound) {}
  PS_HOST_DEVICE States<float, kStates> InitialState() const {
    return {{init}};
  }

  template <typename V>
  PS_HOST_DEVICE void operator()(const Row&, V& w, States<V, kStates>& s,
                                 V g) const {
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

  PS_HOST_DEVICE explicit AdamMath(const Hyper& h)
      : lr(h.learning_rate),
        beta1(h.beta1),
        beta2(h.beta2),
        one_minus_beta1(1.0f - h.beta1),
        one_minus_beta2(1.0f - h.beta2),
        eps(h.epsilon),
        l2(h.l2),
        bound(h.weight_bound) {}
  PS_HOST_DEVICE States<float, kStates> InitialState() const {
    return {{0.0f, 0.0f}};
  }
  // beta^0.
  PS_HOST_DEVICE States<float, kRowStates> InitialRowState() const {
    return {{1.0f, 1.0f}};
  }

  struct Row {
    float lr;  // lr_t of this update
  };
  PS_HOST_DEVICE Row BeginRow(float* beta_pow) const {
    beta_pow[0] *= beta1;
    beta_pow[1] *= beta2;
    const double correction = sqrt(1.0 - static_cast<double>(beta_pow[1])) /
                              (1.0 - static_cast<double>(beta_pow[0]));
    return Row{static_cast<float>(lr * correction)};
  }

  template <typename V>
  PS_HOST_DEVICE void operator()(const Row& row, V& w, States<V, kStates>& s,
                                 V g) const {
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

  PS_HOST_DEVICE explicit FtrlMath(const Hyper& h)
      : alpha(h.learning_rate),
        beta(h.ftrl_beta),
        l1(h.l1),
        l2(h.l2),
        bound(h.weight_bound) {}
  PS_HOST_DEVICE States<float, kStates> InitialState() const {
    return {{0.0f, 0.0f}};
  }

  template <typename V>
  PS_HOST_DEVICE void operator()(const Row&, V& w, States<V, kStates>& s,
                                 V g) const {
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

// --- A dense vector updated by a backend ------------------------------------

// One update of a dense vector: the rule at this update's learning rate, and
// the per-row scalars its BeginRow gave for this update (DenseRowState::Begin,
// on the host).
struct DenseUpdate {
  Hyper hyper;
  float row_lr = 0;  // Adam: lr_t of this update; unused by the others
};

// Floats of state per weight and per row of a rule.
PS_HOST_DEVICE inline int StatesPerWeight(Kind kind) {
  switch (kind) {
    case Kind::kAdagrad:
      return AdagradMath::kStates;
    case Kind::kAdam:
      return AdamMath::kStates;
    case Kind::kFtrl:
      return FtrlMath::kStates;
    default:
      return SgdMath::kStates;
  }
}
PS_HOST_DEVICE inline int RowStates(Kind kind) {
  return kind == Kind::kAdam ? AdamMath::kRowStates : 0;
}

namespace internal {
template <typename Math>
PS_HOST_DEVICE inline void StepWeight(const Math& math,
                                      const typename Math::Row& row, int64_t n,
                                      int64_t i, const float* g, float* w,
                                      float* s) {
  float wv = w[i];
  States<float, Math::kStates> sv;
  for (int k = 0; k < Math::kStates; ++k) sv[k] = s[k * n + i];
  math(row, wv, sv, g[i]);
  w[i] = wv;
  for (int k = 0; k < Math::kStates; ++k) s[k * n + i] = sv[k];
}
}  // namespace internal

// Updates weight i of the n weights w from gradient g[i], with its states
// s[k * n + i], as `update` says. Each weight is independent of the others,
// so a kernel runs one per thread.
PS_HOST_DEVICE inline void UpdateDenseWeight(const DenseUpdate& update,
                                             int64_t n, int64_t i,
                                             const float* g, float* w,
                                             float* s) {
  const Hyper& h = update.hyper;
  switch (h.kind) {
    case Kind::kSgd:
      internal::StepWeight(SgdMath(h), SgdMath::Row{}, n, i, g, w, s);
      break;
    case Kind::kAdagrad:
      internal::StepWeight(AdagradMath(h), AdagradMath::Row{}, n, i, g, w, s);
      break;
    case Kind::kAdam:
      internal::StepWeight(AdamMath(h), AdamMath::Row{update.row_lr}, n, i, g,
                           w, s);
      break;
    case Kind::kFtrl:
      internal::StepWeight(FtrlMath(h), FtrlMath::Row{}, n, i, g, w, s);
      break;
  }
}

// The initial per-weight state k of a rule.
PS_HOST_DEVICE inline float InitialWeightState(const Hyper& h, int k) {
  switch (h.kind) {
    case Kind::kAdagrad:
      return AdagradMath(h).InitialState()[k];
    case Kind::kAdam:
      return AdamMath(h).InitialState()[k];
    case Kind::kFtrl:
      return FtrlMath(h).InitialState()[k];
    default:
      return 0.0f;
  }
}

// The host's part of a dense vector's updates: the row's own state (Adam's
// beta powers), advanced once per update, while the weights and their
// per-weight states live in backend memory.
class DenseRowState {
 public:
  explicit DenseRowState(const Hyper& h) : hyper_(h) {
    if (h.kind == Kind::kAdam) {
      const States<float, 2> init = AdamMath(h).InitialRowState();
      beta_pow_[0] = init[0];
      beta_pow_[1] = init[1];
    }
  }
  // The DenseUpdate of the next update, which belongs to step `step` (the
  // learning-rate schedule's; see ScheduledLearningRate). Advances the row's
  // state.
  DenseUpdate Begin(int64_t step) {
    DenseUpdate u;
    u.hyper = AtStep(hyper_, step);
    if (hyper_.kind == Kind::kAdam) {
      u.row_lr = AdamMath(u.hyper).BeginRow(beta_pow_).lr;
    }
    return u;
  }

 private:
  Hyper hyper_;
  float beta_pow_[2] = {1.0f, 1.0f};
};

}  // namespace optimizer_math
}  // namespace ps

#endif  // PS_COMMON_OPTIMIZER_MATH_H_
