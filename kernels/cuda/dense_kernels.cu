// Element-wise, column-sum, FM, cross-network, loss and metric kernels of
// the CUDA backend (see kernels/cuda/kernels.cuh).
#include <algorithm>
#include <cub/block/block_reduce.cuh>

#include "common/fwfm_pairs.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/math.h"

namespace ps {
namespace cuda {

namespace {

template <Activation kAct>
__device__ inline float Activate(float x) {
  if (kAct == Activation::kRelu) return Relu(x);
  if (kAct == Activation::kTanh) return Tanh(x);
  if (kAct == Activation::kSigmoid) return Sigmoid(x);
  return x;
}

template <Activation kAct>
__device__ inline float ActivationGrad(float y) {
  if (kAct == Activation::kRelu) return ReluGradFromOutput(y);
  if (kAct == Activation::kTanh) return TanhGradFromOutput(y);
  if (kAct == Activation::kSigmoid) return SigmoidGradFromOutput(y);
  return 1.0f;
}

__global__ void ScaleKernel(int64_t count, float beta, float* c) {
  for (int64_t i = GlobalThread(); i < count; i += GridThreads()) {
    c[i] = beta == 0.0f ? 0.0f : beta * c[i];
  }
}

template <Activation kAct>
__global__ void BiasActivationKernel(int64_t count, int n, const float* bias,
                                     float* y) {
  for (int64_t i = GlobalThread(); i < count; i += GridThreads()) {
    y[i] = Activate<kAct>(y[i] + bias[i % n]);
  }
}

template <Activation kAct>
__global__ void ActivationBackwardKernel(int64_t count, const float* y,
                                         float* dy) {
  for (int64_t i = GlobalThread(); i < count; i += GridThreads()) {
    dy[i] *= ActivationGrad<kAct>(y[i]);
  }
}

// The mask bits are DropoutKeeps of kernels/backend.h, the host's function,
// and a product alone is never contracted: the CPU backend's results, bit
// for bit.
__global__ void DropoutKernel(int64_t count, uint32_t threshold, float scale,
                              uint64_t seed, const float* x, float* y) {
  for (int64_t i = GlobalThread(); i < count; i += GridThreads()) {
    y[i] = DropoutKeeps(seed, static_cast<uint64_t>(i), threshold)
               ? x[i] * scale
               : 0.0f;
  }
}

// Column sums in two passes, so that tall, narrow matrices (a bias gradient
// over a batch) use many blocks. Pass 1: block (32, kRowsPerBlock) of grid
// (column groups, chunks) sums kChunkRows rows of 32 columns -- thread row
// ty sums rows ty, ty + kRowsPerBlock, ... of the chunk, and the partial
// sums are added in ty order -- into out[chunk * n + j]. Pass 2
// (SumChunksKernel) adds a column's chunks in a fixed order. With one chunk
// pass 1 writes the result itself.
constexpr int kRowsPerBlock = 32;
constexpr int kChunkRows = kRowsPerBlock * 16;

// n floats rounded up to a multiple of 64 (256 bytes), so what follows
// them in a workspace stays aligned.
int64_t AlignFloats(int64_t n) { return (n + 63) / 64 * 64; }

int ColumnSumChunks(int m) {
  return std::max(1, (m + kChunkRows - 1) / kChunkRows);
}

__global__ void ColumnSumKernel(int m, int n, int chunks, const float* mat,
                                const float* coef, float* out) {
  __shared__ float partial[kRowsPerBlock][33];
  const int j = blockIdx.x * 32 + threadIdx.x;
  for (int chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y) {
    const int last = min(m, (chunk + 1) * kChunkRows);
    float acc = 0.0f;
    if (j < n) {
      for (int i = chunk * kChunkRows + threadIdx.y; i < last;
           i += kRowsPerBlock) {
        const float v = mat[static_cast<int64_t>(i) * n + j];
        acc += coef == nullptr ? v : coef[i] * v;
      }
    }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < n) {
      float sum = partial[0][threadIdx.x];
      for (int r = 1; r < kRowsPerBlock; ++r) sum += partial[r][threadIdx.x];
      out[static_cast<int64_t>(chunk) * n + j] = sum;
    }
    __syncthreads();
  }
}

__global__ void CopyBlocksKernel(int64_t count, int blocks, int width,
                                 const float* src, BlockLayout src_layout,
                                 float* dst, BlockLayout dst_layout,
                                 bool accumulate) {
  for (int64_t t = GlobalThread(); t < count; t += GridThreads()) {
    const int d = static_cast<int>(t % width);
    const int64_t rb = t / width;
    const int b = static_cast<int>(rb % blocks);
    const int64_t i = rb / blocks;
    const float v = src[i * src_layout.ld +
                        static_cast<int64_t>(b) * src_layout.block_stride + d];
    float* to = dst + i * dst_layout.ld +
                static_cast<int64_t>(b) * dst_layout.block_stride + d;
    *to = accumulate ? *to + v : v;
  }
}

// One thread per example, in the CPU backend's order.
__global__ void FmForwardKernel(int batch, int num_fields, int dim,
                                const float* x, BlockLayout layout, float* sum,
                                float* out) {
  for (int64_t i = GlobalThread(); i < batch; i += GridThreads()) {
    const float* row = x + i * layout.ld;
    float* s = sum + i * dim;
    for (int d = 0; d < dim; ++d) s[d] = 0.0f;
    float squares = 0.0f;
    for (int f = 0; f < num_fields; ++f) {
      const float* v = row + static_cast<int64_t>(f) * layout.block_stride;
      for (int d = 0; d < dim; ++d) {
        s[d] += v[d];
        squares += v[d] * v[d];
      }
    }
    float sum_squared = 0.0f;
    for (int d = 0; d < dim; ++d) sum_squared += s[d] * s[d];
    out[i] += 0.5f * (sum_squared - squares);
  }
}

__global__ void FmBackwardKernel(int64_t count, int num_fields, int dim,
                                 const float* x, BlockLayout layout,
                                 const float* sum, const float* d_out,
                                 float* dx) {
  for (int64_t t = GlobalThread(); t < count; t += GridThreads()) {
    const int d = static_cast<int>(t % dim);
    const int64_t fi = t / dim;
    const int f = static_cast<int>(fi % num_fields);
    const int64_t i = fi / num_fields;
    const int64_t at =
        i * layout.ld + static_cast<int64_t>(f) * layout.block_stride + d;
    dx[at] += d_out[i] * (sum[i * dim + d] - x[at]);
  }
}

// One thread per (example, field f): the dots of f with every g > f.
__global__ void FwFmDotsKernel(int64_t count, int num_fields, int dim,
                               const float* x, BlockLayout layout,
                               float* dots) {
  const int64_t pairs = FwFmNumPairs(num_fields);
  for (int64_t t = GlobalThread(); t < count; t += GridThreads()) {
    const int f = static_cast<int>(t % num_fields);
    const int64_t i = t / num_fields;
    const float* row = x + i * layout.ld;
    const float* u = row + static_cast<int64_t>(f) * layout.block_stride;
    float* dot = dots + i * pairs + FwFmPairIndex(num_fields, f, f + 1);
    for (int g = f + 1; g < num_fields; ++g) {
      const float* v = row + static_cast<int64_t>(g) * layout.block_stride;
      float acc = 0.0f;
      for (int d = 0; d < dim; ++d) acc += u[d] * v[d];
      dot[g - f - 1] = acc;
    }
  }
}

// One thread per example, the pairs in order.
__global__ void FwFmSumKernel(int batch, int64_t pairs, const float* r,
                              const float* dots, float* out) {
  for (int64_t i = GlobalThread(); i < batch; i += GridThreads()) {
    const float* dot = dots + i * pairs;
    float total = 0.0f;
    for (int64_t p = 0; p < pairs; ++p) total += r[p] * dot[p];
    out[i] += total;
  }
}

// One thread per (example, field f, element d).
__global__ void FwFmBackwardKernel(int64_t count, int num_fields, int dim,
                                   const float* x, BlockLayout layout,
                                   const float* r, const float* d_out,
                                   float* dx) {
  for (int64_t t = GlobalThread(); t < count; t += GridThreads()) {
    const int d = static_cast<int>(t % dim);
    const int64_t fi = t / dim;
    const int f = static_cast<int>(fi % num_fields);
    const int64_t i = fi / num_fields;
    const float* row = x + i * layout.ld + d;
    float acc = 0.0f;
    for (int g = 0; g < num_fields; ++g) {
      if (g == f) continue;
      const int64_t p = g < f ? FwFmPairIndex(num_fields, g, f)
                              : FwFmPairIndex(num_fields, f, g);
      acc += r[p] * row[static_cast<int64_t>(g) * layout.block_stride];
    }
    dx[i * layout.ld + static_cast<int64_t>(f) * layout.block_stride + d] +=
        d_out[i] * acc;
  }
}

__device__ inline float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

constexpr int kWarpsPerBlock = kThreads / 32;

// Pass 2 of ColumnSums: a warp per column; lane l adds chunks l, l + 32, ...
// in order, then the lanes' sums are added in WarpSum's fixed order.
__global__ void SumChunksKernel(int chunks, int n, const float* partial,
                                float* out) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = GridThreads() / 32;
  for (int64_t j = GlobalThread() / 32; j < n; j += warps) {
    float acc = 0.0f;
    for (int c = lane; c < chunks; c += 32) {
      acc += partial[static_cast<int64_t>(c) * n + j];
    }
    acc = WarpSum(acc);
    if (lane == 0) out[j] = acc;
  }
}

// One warp per example.
__global__ void CrossForwardKernel(int batch, int width, const float* x0,
                                   const float* x, const float* w,
                                   const float* b, float* xw, float* out) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = GlobalThread() / 32; i < batch; i += warps) {
    const int64_t row = i * width;
    float dot = 0.0f;
    for (int j = lane; j < width; j += 32) dot += x[row + j] * w[j];
    dot = WarpSum(dot);
    if (lane == 0) xw[i] = dot;
    for (int j = lane; j < width; j += 32) {
      out[row + j] = x0[row + j] * dot + b[j] + x[row + j];
    }
  }
}

// One warp per example: g[i], d_x and d_x0 of Backend::CrossBackward.
__global__ void CrossBackwardRowsKernel(int batch, int width, const float* x0,
                                        const float* w, const float* xw,
                                        const float* d_out, float* d_x0,
                                        float* d_x, float* g) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t i = GlobalThread() / 32; i < batch; i += warps) {
    const int64_t row = i * width;
    float dot = 0.0f;
    for (int j = lane; j < width; j += 32) dot += d_out[row + j] * x0[row + j];
    dot = WarpSum(dot);
    if (lane == 0) g[i] = dot;
    for (int j = lane; j < width; j += 32) {
      const float dy = d_out[row + j];
      d_x[row + j] = dy + dot * w[j];
      d_x0[row + j] += dy * xw[i];
    }
  }
}

using DoubleReduce = cub::BlockReduce<double, kThreads>;

// Per block: probabilities, gradients, and the block's loss sum in
// partial[blockIdx.x].
__global__ void LossKernel(int n, const float* logits, const float* labels,
                           float grad_scale, float* probs, float* d_logits,
                           double* partial) {
  __shared__ typename DoubleReduce::TempStorage storage;
  double loss = 0.0;
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) {
    const float p = Sigmoid(logits[i]);
    probs[i] = p;
    d_logits[i] = (p - labels[i]) * grad_scale;
    loss += SigmoidCrossEntropyLoss(logits[i], labels[i]);
  }
  const double total = DoubleReduce(storage).Sum(loss);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Per block: histogram counts (integer atomics: exact and order-free), and
// the block's loss and probability sums in partial[2 * blockIdx.x + {0, 1}].
__global__ void MetricsKernel(int n, const float* probs, const float* labels,
                              int num_buckets, unsigned long long* counts,
                              double* partial) {
  __shared__ typename DoubleReduce::TempStorage storage;
  double loss = 0.0;
  double prob = 0.0;
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) {
    const int b = AucBucket(probs[i], num_buckets);
    atomicAdd(&counts[labels[i] >= 0.5f ? b : num_buckets + b], 1ull);
    loss += ClippedLogLoss(probs[i], labels[i]);
    prob += ClampProb(probs[i]);
  }
  const double loss_total = DoubleReduce(storage).Sum(loss);
  __syncthreads();
  const double prob_total = DoubleReduce(storage).Sum(prob);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = loss_total;
    partial[2 * blockIdx.x + 1] = prob_total;
  }
}

// One block: out[k] (+)= sum over b of partial[b * stride + k], k < stride.
__global__ void SumPartialsKernel(int blocks, int stride, const double* partial,
                                  bool add, double* out) {
  __shared__ typename DoubleReduce::TempStorage storage;
  for (int k = 0; k < stride; ++k) {
    double v = 0.0;
    for (int b = threadIdx.x; b < blocks; b += kThreads) {
      v += partial[static_cast<int64_t>(b) * stride + k];
    }
    const double total = DoubleReduce(storage).Sum(v);
    if (threadIdx.x == 0) out[k] = add ? out[k] + total : total;
    __syncthreads();
  }
}

// Loss and metric kernels run at most this many blocks, so the partial
// sums stay small.
constexpr int kMaxReduceBlocks = 1024;

int ReduceBlocks(int n) {
  return std::min<int>(std::max(Blocks(n), 1), kMaxReduceBlocks);
}

}  // namespace

absl::Status ScaleMatrix(int64_t count, float beta, float* c,
                         cudaStream_t stream) {
  if (count <= 0) return absl::OkStatus();
  ScaleKernel<<<Blocks(count), kThreads, 0, stream>>>(count, beta, c);
  PS_CUDA_CHECK_LAUNCH("ScaleKernel", stream);
  return absl::OkStatus();
}

absl::Status BiasActivation(int m, int n, const float* bias, Activation act,
                            float* y, cudaStream_t stream) {
  const int64_t count = static_cast<int64_t>(m) * n;
  if (count <= 0) return absl::OkStatus();
  const int blocks = Blocks(count);
  switch (act) {
    case Activation::kNone:
      BiasActivationKernel<Activation::kNone>
          <<<blocks, kThreads, 0, stream>>>(count, n, bias, y);
      break;
    case Activation::kRelu:
      BiasActivationKernel<Activation::kRelu>
          <<<blocks, kThreads, 0, stream>>>(count, n, bias, y);
      break;
    case Activation::kTanh:
      BiasActivationKernel<Activation::kTanh>
          <<<blocks, kThreads, 0, stream>>>(count, n, bias, y);
      break;
    case Activation::kSigmoid:
      BiasActivationKernel<Activation::kSigmoid>
          <<<blocks, kThreads, 0, stream>>>(count, n, bias, y);
      break;
  }
  PS_CUDA_CHECK_LAUNCH("BiasActivationKernel", stream);
  return absl::OkStatus();
}

absl::Status ActivationBackward(int64_t count, Activation act, const float* y,
                                float* dy, cudaStream_t stream) {
  if (count <= 0 || act == Activation::kNone) return absl::OkStatus();
  const int blocks = Blocks(count);
  switch (act) {
    case Activation::kNone:
      break;
    case Activation::kRelu:
      ActivationBackwardKernel<Activation::kRelu>
          <<<blocks, kThreads, 0, stream>>>(count, y, dy);
      break;
    case Activation::kTanh:
      ActivationBackwardKernel<Activation::kTanh>
          <<<blocks, kThreads, 0, stream>>>(count, y, dy);
      break;
    case Activation::kSigmoid:
      ActivationBackwardKernel<Activation::kSigmoid>
          <<<blocks, kThreads, 0, stream>>>(count, y, dy);
      break;
  }
  PS_CUDA_CHECK_LAUNCH("ActivationBackwardKernel", stream);
  return absl::OkStatus();
}

absl::Status Dropout(int64_t count, uint32_t threshold, float scale,
                     uint64_t seed, const float* x, float* y,
                     cudaStream_t stream) {
  if (count <= 0) return absl::OkStatus();
  DropoutKernel<<<Blocks(count), kThreads, 0, stream>>>(count, threshold, scale,
                                                        seed, x, y);
  PS_CUDA_CHECK_LAUNCH("DropoutKernel", stream);
  return absl::OkStatus();
}

int64_t ColumnSumsWorkspaceBytes(int m, int n) {
  const int chunks = ColumnSumChunks(std::max(m, 0));
  return chunks > 1 ? int64_t{chunks} * std::max(n, 0) * sizeof(float) : 0;
}

absl::Status ColumnSums(int m, int n, const float* mat, const float* coef,
                        float* out, float* workspace, cudaStream_t stream) {
  if (n <= 0) return absl::OkStatus();
  const int chunks = ColumnSumChunks(std::max(m, 0));
  const dim3 block(32, kRowsPerBlock);
  const dim3 grid((n + 31) / 32, std::min(chunks, 65535));
  ColumnSumKernel<<<grid, block, 0, stream>>>(
      std::max(m, 0), n, chunks, mat, coef, chunks > 1 ? workspace : out);
  PS_CUDA_CHECK_LAUNCH("ColumnSumKernel", stream);
  if (chunks > 1) {
    SumChunksKernel<<<Blocks(int64_t{n} * 32), kThreads, 0, stream>>>(
        chunks, n, workspace, out);
    PS_CUDA_CHECK_LAUNCH("SumChunksKernel", stream);
  }
  return absl::OkStatus();
}

absl::Status CopyBlocks(int rows, int blocks, int width, const float* src,
                        BlockLayout src_layout, float* dst,
                        BlockLayout dst_layout, bool accumulate,
                        cudaStream_t stream) {
  if (rows <= 0 || blocks <= 0 || width <= 0) return absl::OkStatus();
  const int64_t count = static_cast<int64_t>(rows) * blocks * width;
  CopyBlocksKernel<<<Blocks(count), kThreads, 0, stream>>>(
      count, blocks, width, src, src_layout, dst, dst_layout, accumulate);
  PS_CUDA_CHECK_LAUNCH("CopyBlocksKernel", stream);
  return absl::OkStatus();
}

absl::Status FmForward(int batch, int num_fields, int dim, const float* x,
                       BlockLayout layout, float* sum, float* out,
                       cudaStream_t stream) {
  if (batch <= 0) return absl::OkStatus();
  FmForwardKernel<<<Blocks(batch), kThreads, 0, stream>>>(
      batch, num_fields, dim, x, layout, sum, out);
  PS_CUDA_CHECK_LAUNCH("FmForwardKernel", stream);
  return absl::OkStatus();
}

absl::Status FmBackward(int batch, int num_fields, int dim, const float* x,
                        BlockLayout layout, const float* sum,
                        const float* d_out, float* dx, cudaStream_t stream) {
  const int64_t count = static_cast<int64_t>(batch) * num_fields * dim;
  if (batch <= 0 || num_fields <= 0 || dim <= 0) return absl::OkStatus();
  FmBackwardKernel<<<Blocks(count), kThreads, 0, stream>>>(
      count, num_fields, dim, x, layout, sum, d_out, dx);
  PS_CUDA_CHECK_LAUNCH("FmBackwardKernel", stream);
  return absl::OkStatus();
}

absl::Status FwFmForward(int batch, int num_fields, int dim, const float* x,
                         BlockLayout layout, const float* r, float* dots,
                         float* out, cudaStream_t stream) {
  if (batch <= 0 || num_fields < 2) return absl::OkStatus();
  const int64_t count = static_cast<int64_t>(batch) * num_fields;
  FwFmDotsKernel<<<Blocks(count), kThreads, 0, stream>>>(
      count, num_fields, std::max(dim, 0), x, layout, dots);
  PS_CUDA_CHECK_LAUNCH("FwFmDotsKernel", stream);
  FwFmSumKernel<<<Blocks(batch), kThreads, 0, stream>>>(
      batch, FwFmNumPairs(num_fields), r, dots, out);
  PS_CUDA_CHECK_LAUNCH("FwFmSumKernel", stream);
  return absl::OkStatus();
}

int64_t FwFmBackwardWorkspaceBytes(int batch, int num_fields) {
  return ColumnSumsWorkspaceBytes(batch,
                                  static_cast<int>(FwFmNumPairs(num_fields)));
}

absl::Status FwFmBackward(int batch, int num_fields, int dim, const float* x,
                          BlockLayout layout, const float* r, const float* dots,
                          const float* d_out, float* dx, float* d_r,
                          float* workspace, cudaStream_t stream) {
  if (num_fields < 2) return absl::OkStatus();
  const int64_t count =
      static_cast<int64_t>(std::max(batch, 0)) * num_fields * std::max(dim, 0);
  if (count > 0) {
    FwFmBackwardKernel<<<Blocks(count), kThreads, 0, stream>>>(
        count, num_fields, dim, x, layout, r, d_out, dx);
    PS_CUDA_CHECK_LAUNCH("FwFmBackwardKernel", stream);
  }
  return ColumnSums(std::max(batch, 0),
                    static_cast<int>(FwFmNumPairs(num_fields)), dots, d_out,
                    d_r, workspace, stream);
}

absl::Status CrossForward(int batch, int width, const float* x0, const float* x,
                          const float* w, const float* b, float* xw, float* out,
                          cudaStream_t stream) {
  if (batch <= 0) return absl::OkStatus();
  CrossForwardKernel<<<Blocks(int64_t{batch} * 32), kThreads, 0, stream>>>(
      batch, width, x0, x, w, b, xw, out);
  PS_CUDA_CHECK_LAUNCH("CrossForwardKernel", stream);
  return absl::OkStatus();
}

int64_t CrossBackwardWorkspaceBytes(int batch, int width) {
  return AlignFloats(std::max(batch, 0)) * int64_t{sizeof(float)} +
         ColumnSumsWorkspaceBytes(batch, width);
}

absl::Status CrossBackward(int batch, int width, const float* x0,
                           const float* x, const float* w, const float* xw,
                           const float* d_out, float* d_x0, float* d_x,
                           float* d_w, float* d_b, float* workspace,
                           cudaStream_t stream) {
  if (width <= 0) return absl::OkStatus();
  float* g = workspace;
  float* sums = workspace + AlignFloats(std::max(batch, 0));
  if (batch > 0) {
    CrossBackwardRowsKernel<<<Blocks(int64_t{batch} * 32), kThreads, 0,
                              stream>>>(batch, width, x0, w, xw, d_out, d_x0,
                                        d_x, g);
    PS_CUDA_CHECK_LAUNCH("CrossBackwardRowsKernel", stream);
  }
  absl::Status status = ColumnSums(batch, width, x, g, d_w, sums, stream);
  if (!status.ok()) return status;
  return ColumnSums(batch, width, d_out, nullptr, d_b, sums, stream);
}

int64_t LossWorkspaceBytes(int n) {
  return int64_t{2} * ReduceBlocks(n) * static_cast<int64_t>(sizeof(double));
}

absl::Status SigmoidCrossEntropy(int n, const float* logits,
                                 const float* labels, float grad_scale,
                                 float* probs, float* d_logits,
                                 double* loss_sum, void* workspace,
                                 cudaStream_t stream) {
  // Even for n = 0 the loss sum is written (zero).
  const int blocks = ReduceBlocks(n);
  double* partial = static_cast<double*>(workspace);
  LossKernel<<<blocks, kThreads, 0, stream>>>(
      std::max(n, 0), logits, labels, grad_scale, probs, d_logits, partial);
  PS_CUDA_CHECK_LAUNCH("LossKernel", stream);
  SumPartialsKernel<<<1, kThreads, 0, stream>>>(blocks, 1, partial, false,
                                                loss_sum);
  PS_CUDA_CHECK_LAUNCH("SumPartialsKernel", stream);
  return absl::OkStatus();
}

absl::Status AccumulateMetrics(int n, const float* probs, const float* labels,
                               int num_buckets, uint64_t* counts, double* sums,
                               void* workspace, cudaStream_t stream) {
  if (n <= 0) return absl::OkStatus();
  static_assert(sizeof(unsigned long long) == sizeof(uint64_t));
  const int blocks = ReduceBlocks(n);
  double* partial = static_cast<double*>(workspace);
  MetricsKernel<<<blocks, kThreads, 0, stream>>>(
      n, probs, labels, num_buckets,
      reinterpret_cast<unsigned long long*>(counts), partial);
  PS_CUDA_CHECK_LAUNCH("MetricsKernel", stream);
  SumPartialsKernel<<<1, kThreads, 0, stream>>>(blocks, 2, partial, true, sums);
  PS_CUDA_CHECK_LAUNCH("SumPartialsKernel", stream);
  return absl::OkStatus();
}

}  // namespace cuda
}  // namespace ps
