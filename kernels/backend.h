// The compute backend interface: the kernels a worker's model needs.
//
// The CPU backend (kernels/cpu/) is the reference and runs everywhere; a CUDA
// backend (kernels/cuda/) implements the same calls on device memory and must
// agree with the CPU backend within a stated tolerance. All matrices are
// row-major and densely packed unless a leading dimension is given. Pointers
// passed to a backend's kernels must come from that backend's Allocate (for
// the CPU backend: any host memory). A Backend object is used by one thread
// at a time; separate objects are independent.
#ifndef PS_KERNELS_BACKEND_H_
#define PS_KERNELS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ps {

enum class Activation { kNone, kRelu };
enum class PoolMode { kSum, kMean };

// Which rows an example's slot pools: for example i and slot s, the rows
// index[offsets[i * num_slots + s] .. offsets[i * num_slots + s + 1]).
struct PoolArgs {
  int batch = 0;
  int num_slots = 0;
  int dim = 0;
  PoolMode mode = PoolMode::kSum;
  const uint32_t* offsets = nullptr;  // batch * num_slots + 1
  const uint32_t* index = nullptr;    // offsets[batch * num_slots] entries
};

struct BackendOptions {
  // BLAS threads. Default: 1 (workers share cores with servers).
  int threads = 1;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The reference CPU backend (OpenBLAS GEMMs).
  static absl::StatusOr<std::unique_ptr<Backend>> CreateCpu(
      const BackendOptions& options);

  virtual std::string Name() const = 0;

  // c[m x n] = alpha * op(a) * op(b) + beta * c, where op(a) is m x k and
  // op(b) is k x n. trans_a means `a` is stored k x m.
  virtual void Gemm(bool trans_a, bool trans_b, int m, int n, int k,
                    float alpha, const float* a, const float* b, float beta,
                    float* c) = 0;

  // y[i][j] = act(y[i][j] + bias[j]) for an m x n matrix y, in place.
  virtual void BiasActivation(int m, int n, const float* bias, Activation act,
                              float* y) = 0;

  // dy[i] *= act'(.) evaluated from the activation's output y[i]; for ReLU,
  // dy[i] = 0 where y[i] <= 0. No-op for kNone.
  virtual void ActivationBackward(int64_t count, Activation act,
                                  const float* y, float* dy) = 0;

  // db[j] = sum over i of dy[i][j], for an m x n matrix dy (overwrites db).
  virtual void BiasGrad(int m, int n, const float* dy, float* db) = 0;

  // out[i][s * dim + d] = pool over the slot's rows of rows[r * dim + d]
  // (sum, or mean; a slot with no rows gives 0). `out` has row stride
  // ld_out >= num_slots * dim; other columns are left untouched.
  virtual void PoolForward(const PoolArgs& args, const float* rows,
                           float* out, int ld_out) = 0;

  // The gradient of PoolForward: grad_rows[num_rows x dim] is zeroed, then
  // every pooled position's gradient d_out[i][s * dim + d] (scaled by 1/count
  // for mean) is added to each row it pooled. Rows used several times get the
  // sum: gradients come out merged per unique row.
  virtual void PoolBackward(const PoolArgs& args, const float* d_out,
                            int ld_out, int64_t num_rows,
                            float* grad_rows) = 0;

  // For n examples: probs[i] = sigmoid(logits[i]); d_logits[i] =
  // (probs[i] - labels[i]) * grad_scale; *loss_sum = sum of the
  // cross-entropy losses (computed stably from the logits, in double).
  virtual void SigmoidCrossEntropy(int n, const float* logits,
                                   const float* labels, float grad_scale,
                                   float* probs, float* d_logits,
                                   double* loss_sum) = 0;
};

}  // namespace ps

#endif  // PS_KERNELS_BACKEND_H_
