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

enum class Activation { kNone, kRelu, kTanh, kSigmoid };
enum class PoolMode { kSum, kMean };

// Where the blocks of a row-blocked matrix lie: element d of block b of row i
// is at data[i * ld + b * block_stride + d]. A plain row-major m x n matrix
// is one block per row: {n, 0}.
struct BlockLayout {
  int ld = 0;            // floats between consecutive rows
  int block_stride = 0;  // floats between consecutive blocks of a row
};

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

  // dy[i] *= act'(.) evaluated from the activation's output y[i]: for ReLU,
  // dy[i] = 0 where y[i] <= 0; tanh: (1 - y^2); sigmoid: y (1 - y). No-op for
  // kNone.
  virtual void ActivationBackward(int64_t count, Activation act, const float* y,
                                  float* dy) = 0;

  // db[j] = sum over i of dy[i][j], for an m x n matrix dy (overwrites db).
  virtual void BiasGrad(int m, int n, const float* dy, float* db) = 0;

  // out[i][s * dim + d] = pool over the slot's rows of rows[r * dim + d]
  // (sum, or mean; a slot with no rows gives 0). `out` has row stride
  // ld_out >= num_slots * dim; other columns are left untouched.
  virtual void PoolForward(const PoolArgs& args, const float* rows, float* out,
                           int ld_out) = 0;

  // The gradient of PoolForward: grad_rows[num_rows x dim] is zeroed, then
  // every pooled position's gradient d_out[i][s * dim + d] (scaled by 1/count
  // for mean) is added to each row it pooled. Rows used several times get the
  // sum: gradients come out merged per unique row.
  virtual void PoolBackward(const PoolArgs& args, const float* d_out,
                            int ld_out, int64_t num_rows, float* grad_rows) = 0;

  // Copies `blocks` blocks of `width` floats from each of `rows` rows of src
  // to the same (row, block) of dst: dst(i, b, d) = src(i, b, d), or
  // dst(i, b, d) += src(i, b, d) when `accumulate`. Other floats of dst are
  // left untouched. src and dst must not overlap.
  virtual void CopyBlocks(int rows, int blocks, int width, const float* src,
                          BlockLayout src_layout, float* dst,
                          BlockLayout dst_layout, bool accumulate) = 0;

  // The second-order term of a factorization machine over `num_fields`
  // vectors x(i, f, 0..dim) per example i (laid out by `layout`):
  //   sum[i][d] = sum over f of x(i, f, d)                (batch x dim)
  //   out[i] += 0.5 * sum over d of (sum[i][d]^2 - sum over f of x(i, f, d)^2)
  // i.e. the sum over field pairs f < g of <x(i, f), x(i, g)>. `sum` is
  // overwritten (FmBackward needs it); `out` is added to.
  virtual void FmForward(int batch, int num_fields, int dim, const float* x,
                         BlockLayout layout, float* sum, float* out) = 0;

  // The gradient of FmForward: dx(i, f, d) += d_out[i] * (sum[i][d] -
  // x(i, f, d)), with dx laid out like x. `sum` is FmForward's output for
  // the same x. dx must not overlap x or sum.
  virtual void FmBackward(int batch, int num_fields, int dim, const float* x,
                          BlockLayout layout, const float* sum,
                          const float* d_out, float* dx) = 0;

  // One layer of a cross network (DCN) over batch x width matrices:
  //   xw[i] = x[i] . w;  out[i][j] = x0[i][j] * xw[i] + b[j] + x[i][j].
  // `xw` (batch) is overwritten and kept for CrossBackward. `out` must not
  // overlap the inputs (x may be x0).
  virtual void CrossForward(int batch, int width, const float* x0,
                            const float* x, const float* w, const float* b,
                            float* xw, float* out) = 0;

  // The gradient of CrossForward given d_out (batch x width) and its xw:
  //   g[i] = d_out[i] . x0[i]
  //   d_x[i][j] = d_out[i][j] + g[i] * w[j]           (overwritten)
  //   d_x0[i][j] += d_out[i][j] * xw[i]               (added to)
  //   d_w[j] = sum over i of g[i] * x[i][j]           (overwritten)
  //   d_b[j] = sum over i of d_out[i][j]              (overwritten)
  // The outputs must not overlap each other or the inputs; when the layer's x
  // is x0, the caller adds d_x into d_x0 itself.
  virtual void CrossBackward(int batch, int width, const float* x0,
                             const float* x, const float* w, const float* xw,
                             const float* d_out, float* d_x0, float* d_x,
                             float* d_w, float* d_b) = 0;

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
