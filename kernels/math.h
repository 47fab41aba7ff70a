// Element-wise arithmetic shared by the CPU and CUDA backends: sigmoid, the
// numerically stable sigmoid cross-entropy, the hidden-layer activations
// (ReLU, tanh, sigmoid) with their derivatives from the activation's output,
// and the bucket and clipped log loss of the AUC/logloss metrics.
//
// Every function is a pure inline function of its arguments (thread-safe) and
// is marked PS_HOST_DEVICE so the same source compiles for host and device.
#ifndef PS_KERNELS_MATH_H_
#define PS_KERNELS_MATH_H_

#include <cmath>

#include "common/host_device.h"

namespace ps {

// 1 / (1 + exp(-z)), without overflow for large |z|.
PS_HOST_DEVICE inline float Sigmoid(float z) {
  if (z >= 0.0f) {
    return 1.0f / (1.0f + expf(-z));
  }
  const float e = expf(z);
  return e / (1.0f + e);
}

// Cross-entropy of sigmoid(z) against label y in [0, 1], from the logit:
// max(z, 0) - z * y + log1p(exp(-|z|)). Finite for every finite z.
PS_HOST_DEVICE inline double SigmoidCrossEntropyLoss(float z, float y) {
  const double zd = z;
  return (zd > 0.0 ? zd : 0.0) - zd * static_cast<double>(y) +
         log1p(exp(-fabs(zd)));
}

PS_HOST_DEVICE inline float Relu(float x) { return x > 0.0f ? x : 0.0f; }

PS_HOST_DEVICE inline float Tanh(float x) { return tanhf(x); }

// The derivative of ReLU from its output y: 1 where y > 0, else 0.
PS_HOST_DEVICE inline float ReluGradFromOutput(float y) {
  return y > 0.0f ? 1.0f : 0.0f;
}

// The derivative of tanh from its output y: 1 - y^2.
PS_HOST_DEVICE inline float TanhGradFromOutput(float y) { return 1.0f - y * y; }

// The derivative of the sigmoid from its output y: y (1 - y).
PS_HOST_DEVICE inline float SigmoidGradFromOutput(float y) {
  return y * (1.0f - y);
}

// A probability clamped to [0, 1]; NaN gives 0.
PS_HOST_DEVICE inline float ClampProb(float prob) {
  if (!(prob > 0.0f)) return 0.0f;
  return prob < 1.0f ? prob : 1.0f;
}

// The bucket of `prob` among num_buckets equal-width buckets over [0, 1]:
// NaN and prob <= 0 fall in bucket 0, prob >= 1 in the last one.
PS_HOST_DEVICE inline int AucBucket(float prob, int num_buckets) {
  const int b = static_cast<int>(ClampProb(prob) * num_buckets);
  return b < num_buckets - 1 ? b : num_buckets - 1;
}

// The cross-entropy of a predicted probability (clamped, then clipped to
// [1e-7, 1 - 1e-7]) against a label read as positive when >= 0.5.
PS_HOST_DEVICE inline double ClippedLogLoss(float prob, float label) {
  constexpr double kMinProb = 1e-7;
  double p = ClampProb(prob);
  p = p < kMinProb ? kMinProb : (p > 1.0 - kMinProb ? 1.0 - kMinProb : p);
  return label >= 0.5f ? -log(p) : -log(1.0 - p);
}

}  // namespace ps

#endif  // PS_KERNELS_MATH_H_
