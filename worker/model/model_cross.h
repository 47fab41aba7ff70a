// The cross network of DCN (Wang et al., "Deep & Cross Network for Ad Click
// Predictions", 2017) over x0 (batch x width, row-major): for each layer l of
// spec.cross, x_{l+1} = x0 * (x_l . w_l) + b_l + x_l, with w_l and b_l read
// from the flat dense parameter vector. Keeps every x_l for the backward
// pass, in backend memory (every pointer it takes or returns is backend
// memory, used only through the backend's kernels); used by one thread at a
// time.
#ifndef PS_WORKER_MODEL_MODEL_CROSS_H_
#define PS_WORKER_MODEL_MODEL_CROSS_H_

#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "kernels/backend.h"
#include "worker/model/model_buffer.h"

namespace ps {

class CrossNet {
 public:
  // REQUIRES: every layer has the same width. `backend` is not owned.
  CrossNet(std::vector<CrossLayerSpec> layers, Backend* backend);

  int num_layers() const { return static_cast<int>(layers_.size()); }

  // Makes room for batches of up to `batch` examples; errors of
  // Backend::Allocate. REQUIRES: before every Forward, with at least its
  // batch size.
  [[nodiscard]] absl::Status Reserve(int batch);

  // Runs the layers over x0 and returns x_L (batch x width), which stays
  // valid until the next Forward; x0 itself when there are no layers.
  const float* Forward(int batch, const float* x0, const float* params);

  // REQUIRES: the last Forward had the same batch, x0 and params.
  // From d_out (the gradient by x_L): adds the gradient by x0 to d_x0 and
  // writes the gradients by every w_l and b_l into dense_grad (indexed like
  // params). d_x0 must not overlap d_out.
  void Backward(int batch, const float* x0, const float* params,
                const float* d_out, float* d_x0, float* dense_grad);

 private:
  const std::vector<CrossLayerSpec> layers_;
  const int width_;
  Backend* const backend_;
  std::vector<BackendArray<float>> xs_;  // x_1 .. x_L
  std::vector<BackendArray<float>> xw_;  // x_l . w_l per example, per layer
  BackendArray<float> d_a_, d_b_;        // gradients by x_l, ping-pong
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_MODEL_CROSS_H_
