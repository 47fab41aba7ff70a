// The compute backend interface: the kernels a worker's model needs.
//
// The CPU backend (kernels/cpu/) is the reference and runs everywhere; a CUDA
// backend (kernels/cuda/) implements the same calls on device memory and must
// agree with the CPU backend within a stated tolerance. All matrices are
// row-major and densely packed unless a leading dimension is given. Pointers
// passed to a backend's kernels must come from that backend's Allocate (for
// the CPU backend: any host memory). A Backend object is used by one thread
// at a time; separate objects are independent.
//
// Kernel calls return nothing: a backend may queue them (the CUDA backend
// runs them asynchronously on its stream). Errors are sticky: the first one
// (naming the failed call) is kept and returned by the next Synchronize(),
// which also waits for the queued work. Results in backend memory are valid
// for later kernels at once, and for the host after CopyToHost +
// Synchronize(). The CPU backend runs everything inline and never fails.
#ifndef PS_KERNELS_BACKEND_H_
#define PS_KERNELS_BACKEND_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/host_device.h"
#include "common/optimizer_math.h"

namespace ps {

enum class Activation { kNone, kRelu, kTanh, kSigmoid };
// How a slot pools its rows: their sum, times 1 (kSum), 1 / count (kMean)
// or 1 / sqrt(count) (kSqrtN); see PoolScale.
enum class PoolMode { kSum, kMean, kSqrtN };

// The factor a slot of `count` > 0 rows scales its sum by, as every backend
// computes it (the CUDA kernels call this too): float32 1 / count, or
// 1 / sqrtf(count); division and square root are correctly rounded on the
// host and under nvcc's defaults, so host and device agree bit for bit.
PS_HOST_DEVICE inline float PoolScale(PoolMode mode, uint32_t count) {
  if (mode == PoolMode::kMean) return 1.0f / static_cast<float>(count);
  if (mode == PoolMode::kSqrtN) return 1.0f / sqrtf(static_cast<float>(count));
  return 1.0f;
}

// Dropout masks (Backend::Dropout), counter-based so that every backend,
// and the forward and backward passes, draw the same mask bit for bit: the
// bits of element i of mask `seed` are the i-th output of SplitMix64's
// stream from `seed` (a pure function of (seed, i), no state).
PS_HOST_DEVICE inline uint64_t DropoutHash(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Element i is dropped when the top 32 bits of DropoutHash(seed, i) are
// below DropoutThreshold(rate) = floor(rate * 2^32), so each element is
// dropped with probability rate (to 2^-32), independently.
inline uint32_t DropoutThreshold(float rate) {
  if (!(rate > 0)) return 0;
  const double t = static_cast<double>(rate) * 4294967296.0;
  return t >= 4294967295.0 ? 4294967295u : static_cast<uint32_t>(t);
}
PS_HOST_DEVICE inline bool DropoutKeeps(uint64_t seed, uint64_t i,
                                        uint32_t threshold) {
  return static_cast<uint32_t>(DropoutHash(seed, i) >> 32) >= threshold;
}
// The factor kept elements are scaled by (inverted dropout), in float.
inline float DropoutScale(float rate) { return 1.0f / (1.0f - rate); }

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
  // offsets[batch * num_slots] when the caller knows it, else -1. Lets the
  // CUDA backend's PoolBackward skip a device-to-host read (and the wait for
  // it). Default: -1.
  int64_t num_keys = -1;
};

struct BackendOptions {
  // BLAS threads of the CPU backend. Default: 1 (workers share cores with
  // servers).
  int threads = 1;
  // The GPU the CUDA backend runs on (an index of ListGpus(), device.h).
  // Default: 0.
  int device = 0;
};

// Memory from Backend::Allocate or AllocateHost. Frees itself through the
// backend that allocated it, which must outlive it. Move-only; an empty
// buffer (default-constructed or moved from) holds nothing.
class BackendBuffer {
 public:
  BackendBuffer() = default;
  // `release` frees `data`; called once, from the destructor.
  BackendBuffer(void* data, int64_t bytes, std::function<void(void*)> release)
      : data_(data), bytes_(bytes), release_(std::move(release)) {}
  ~BackendBuffer() { Reset(); }
  BackendBuffer(BackendBuffer&& other) noexcept { *this = std::move(other); }
  BackendBuffer& operator=(BackendBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = other.data_;
      bytes_ = other.bytes_;
      release_ = std::move(other.release_);
      other.data_ = nullptr;
      other.bytes_ = 0;
      other.release_ = nullptr;
    }
    return *this;
  }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;

  void* data() const { return data_; }
  int64_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  void Reset() {
    if (data_ != nullptr && release_) release_(data_);
    data_ = nullptr;
    bytes_ = 0;
    release_ = nullptr;
  }

 private:
  void* data_ = nullptr;
  int64_t bytes_ = 0;
  std::function<void(void*)> release_;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The reference CPU backend (OpenBLAS GEMMs).
  static absl::StatusOr<std::unique_ptr<Backend>> CreateCpu(
      const BackendOptions& options);

  // The CUDA backend on GPU options.device. Unavailable when the binary was
  // built without CUDA; FailedPrecondition when there is no usable GPU with
  // that index (the message says what the CUDA runtime reported); Internal
  // for other CUDA/cuBLAS failures, naming the call.
  static absl::StatusOr<std::unique_ptr<Backend>> CreateCuda(
      const BackendOptions& options);

  virtual std::string Name() const = 0;

  // True when the kernels take host pointers (Allocate returns host
  // memory): the CPU backend (and the tests' staging backend).
  virtual bool UsesHostMemory() const = 0;

  // --- Memory ---------------------------------------------------------------

  // `bytes` of backend memory for kernel operands (device memory for CUDA),
  // uninitialized, aligned for any element type. ResourceExhausted when the
  // backend is out of memory; InvalidArgument when bytes < 0. Zero bytes
  // gives an empty buffer.
  virtual absl::StatusOr<BackendBuffer> Allocate(int64_t bytes) = 0;
  // Host memory the backend copies to and from fastest (pinned, page-locked
  // memory for CUDA: copies from it are truly asynchronous). Same errors.
  virtual absl::StatusOr<BackendBuffer> AllocateHost(int64_t bytes) = 0;

  // Copies `bytes` from host memory to backend memory `dst`. Ordered before
  // every kernel queued after it. The host memory must stay unchanged until
  // the next Synchronize(). CUDA: runs on an upload stream, so with pinned
  // `host` memory it overlaps kernels (and downloads) queued before it;
  // `dst` must then not be in use by such kernels or downloads (alternate
  // two buffers, or Synchronize first).
  virtual void CopyToBackend(const void* host, int64_t bytes, void* dst) = 0;
  // Copies `bytes` of backend memory `src` to host memory after every kernel
  // and upload queued before it; `host` holds them after the next
  // Synchronize(). CUDA:
  // runs on a download stream, overlapping kernels queued after it; those
  // must not write `src` (alternate two buffers). Into pageable (not
  // AllocateHost) memory the copy blocks the host until it is done.
  virtual void CopyToHost(const void* src, int64_t bytes, void* host) = 0;
  // Sets `bytes` of backend memory to zero (ordered like a kernel).
  virtual void SetZero(int64_t bytes, void* dst) = 0;

  // Waits for every queued kernel and copy; returns the first error since
  // the last Synchronize (then forgets it).
  [[nodiscard]] virtual absl::Status Synchronize() = 0;

  // --- Kernels --------------------------------------------------------------

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

  // Inverted dropout of `count` elements: y[i] = x[i] * DropoutScale(rate)
  // where DropoutKeeps(seed, i, DropoutThreshold(rate)), else 0. The same
  // call on the gradient by y gives the gradient by x (the same mask and
  // scale). x == y is allowed. REQUIRES: rate in [0, 1); rate 0 copies x.
  virtual void Dropout(int64_t count, float rate, uint64_t seed, const float* x,
                       float* y) = 0;

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

  // The pairwise term of a field-weighted FM over `num_fields` vectors
  // x(i, f, 0..dim) per example i (laid out by `layout`), with one weight
  // r[p] per field pair p = (f, g), f < g, in the order of FwFmPairIndex
  // (common/fwfm_pairs.h), P = FwFmNumPairs(num_fields) of them:
  //   dots[i][p] = <x(i, f), x(i, g)>                       (batch x P)
  //   out[i] += sum over p of r[p] * dots[i][p]
  // `dots` is overwritten (FwFmBackward needs it); `out` is added to.
  virtual void FwFmForward(int batch, int num_fields, int dim, const float* x,
                           BlockLayout layout, const float* r, float* dots,
                           float* out) = 0;

  // The gradient of FwFmForward given d_out (batch) and its dots:
  //   dx(i, f, d) += d_out[i] * sum over g != f of r[pair(f, g)] x(i, g, d)
  //   d_r[p] = sum over i of d_out[i] * dots[i][p]          (overwritten)
  // dx is laid out like x and must not overlap x, r, dots or d_r.
  virtual void FwFmBackward(int batch, int num_fields, int dim, const float* x,
                            BlockLayout layout, const float* r,
                            const float* dots, const float* d_out, float* dx,
                            float* d_r) = 0;

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

  // Streaming AUC/logloss statistics (kernels/auc.h) for n predictions:
  // counts[b] += positives and counts[num_buckets + b] += negatives whose
  // prob falls in bucket b = AucBucket(prob, num_buckets) (kernels/math.h);
  // sums[0] += the clipped log losses (ClippedLogLoss), sums[1] += the
  // probabilities. AucAccumulator::AddHistogram merges the result.
  virtual void AccumulateMetrics(int n, const float* probs, const float* labels,
                                 int num_buckets, uint64_t* counts,
                                 double* sums) = 0;

  // One update of a dense vector of n weights by an optimizer rule
  // (common/optimizer_math.h), the servers' arithmetic: weight w[i] and its
  // states state[k * n + i] (k < StatesPerWeight(update.hyper.kind)) from
  // grad[i], for every i. `update` holds the rule and the row scalars of
  // this update (DenseRowState::Begin, on the host). Every backend gives
  // bit-identical results (the CUDA kernel is built without FMA
  // contraction).
  virtual void DenseOptimizerStep(const optimizer_math::DenseUpdate& update,
                                  int64_t n, const float* grad, float* w,
                                  float* state) = 0;
};

}  // namespace ps

#endif  // PS_KERNELS_BACKEND_H_
