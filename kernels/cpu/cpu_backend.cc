#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/fwfm_pairs.h"
#include "kernels/math.h"

namespace ps {

absl::StatusOr<std::unique_ptr<Backend>> Backend::CreateCpu(
    const BackendOptions& options) {
  auto backend = CpuBackend::Create(options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(std::move(backend).value());
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(
    const BackendOptions& options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CPU backend: threads must be >= 1, got ", options.threads));
  }
  openblas_set_num_threads(options.threads);
  return std::unique_ptr<CpuBackend>(new CpuBackend());
}

absl::StatusOr<BackendBuffer> CpuBackend::Allocate(int64_t bytes) {
  constexpr int64_t kAlign = 64;
  if (bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CPU backend: cannot allocate ", bytes, " bytes"));
  }
  if (bytes == 0) return BackendBuffer();
  const int64_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* data = std::aligned_alloc(kAlign, static_cast<size_t>(rounded));
  if (data == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "CPU backend: out of memory allocating ", bytes, " bytes"));
  }
  return BackendBuffer(data, bytes, [](void* p) { std::free(p); });
}

absl::StatusOr<BackendBuffer> CpuBackend::AllocateHost(int64_t bytes) {
  return Allocate(bytes);
}

void CpuBackend::CopyToBackend(const void* host, int64_t bytes, void* dst) {
  if (bytes > 0) std::memcpy(dst, host, static_cast<size_t>(bytes));
}

void CpuBackend::CopyToHost(const void* src, int64_t bytes, void* host) {
  if (bytes > 0) std::memcpy(host, src, static_cast<size_t>(bytes));
}

void CpuBackend::SetZero(int64_t bytes, void* dst) {
  if (bytes > 0) std::memset(dst, 0, static_cast<size_t>(bytes));
}

void CpuBackend::Gemm(bool trans_a, bool trans_b, int m, int n, int k,
                      float alpha, const float* a, const float* b, float beta,
                      float* c) {
  if (m <= 0 || n <= 0) return;
  const int64_t size_c = static_cast<int64_t>(m) * n;
  if (k <= 0) {
    // op(a) * op(b) is zero; BLAS rejects the zero leading dimensions.
    if (beta == 0.0f) {
      std::fill(c, c + size_c, 0.0f);
    } else {
      for (int64_t i = 0; i < size_c; ++i) c[i] *= beta;
    }
    return;
  }
  const int lda = trans_a ? m : k;
  const int ldb = trans_b ? k : n;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, n);
}

void CpuBackend::BiasActivation(int m, int n, const float* bias, Activation act,
                                float* y) {
  for (int i = 0; i < m; ++i) {
    float* row = y + static_cast<int64_t>(i) * n;
    switch (act) {
      case Activation::kNone:
        for (int j = 0; j < n; ++j) row[j] += bias[j];
        break;
      case Activation::kRelu:
        for (int j = 0; j < n; ++j) row[j] = Relu(row[j] + bias[j]);
        break;
      case Activation::kTanh:
        for (int j = 0; j < n; ++j) row[j] = Tanh(row[j] + bias[j]);
        break;
      case Activation::kSigmoid:
        for (int j = 0; j < n; ++j) row[j] = Sigmoid(row[j] + bias[j]);
        break;
    }
  }
}

void CpuBackend::Dropout(int64_t count, float rate, uint64_t seed,
                         const float* x, float* y) {
  if (!(rate > 0)) {
    if (x != y) std::copy_n(x, count, y);
    return;
  }
  const uint32_t threshold = DropoutThreshold(rate);
  const float scale = DropoutScale(rate);
  for (int64_t i = 0; i < count; ++i) {
    y[i] = DropoutKeeps(seed, static_cast<uint64_t>(i), threshold)
               ? x[i] * scale
               : 0.0f;
  }
}

void CpuBackend::ActivationBackward(int64_t count, Activation act,
                                    const float* y, float* dy) {
  switch (act) {
    case Activation::kNone:
      return;
    case Activation::kRelu:
      for (int64_t i = 0; i < count; ++i) dy[i] *= ReluGradFromOutput(y[i]);
      return;
    case Activation::kTanh:
      for (int64_t i = 0; i < count; ++i) dy[i] *= TanhGradFromOutput(y[i]);
      return;
    case Activation::kSigmoid:
      for (int64_t i = 0; i < count; ++i) dy[i] *= SigmoidGradFromOutput(y[i]);
      return;
  }
}

void CpuBackend::BiasGrad(int m, int n, const float* dy, float* db) {
  std::fill(db, db + n, 0.0f);
  for (int i = 0; i < m; ++i) {
    const float* row = dy + static_cast<int64_t>(i) * n;
    for (int j = 0; j < n; ++j) db[j] += row[j];
  }
}

namespace {

// The pooling loops with the row width a compile-time constant when kDim > 0
// (the common widths: the per-float loops unroll, and no memset or memcpy
// call runs per slot, which for dim 1 cost more than the sums), else
// args.dim.
template <int kDim>
void PoolForwardRows(const PoolArgs& args, const float* rows, float* out,
                     int ld_out) {
  const int dim = kDim > 0 ? kDim : args.dim;
  for (int i = 0; i < args.batch; ++i) {
    for (int s = 0; s < args.num_slots; ++s) {
      const int64_t slot = static_cast<int64_t>(i) * args.num_slots + s;
      const uint32_t begin = args.offsets[slot];
      const uint32_t end = args.offsets[slot + 1];
      float* dst = out + static_cast<int64_t>(i) * ld_out +
                   static_cast<int64_t>(s) * dim;
      if (end == begin) {
        for (int d = 0; d < dim; ++d) dst[d] = 0.0f;
        continue;
      }
      const float* first = rows + static_cast<int64_t>(args.index[begin]) * dim;
      for (int d = 0; d < dim; ++d) dst[d] = 0.0f + first[d];
      for (uint32_t r = begin + 1; r < end; ++r) {
        const float* src = rows + static_cast<int64_t>(args.index[r]) * dim;
        for (int d = 0; d < dim; ++d) dst[d] += src[d];
      }
      if (args.mode != PoolMode::kSum) {
        const float scale = PoolScale(args.mode, end - begin);
        for (int d = 0; d < dim; ++d) dst[d] *= scale;
      }
    }
  }
}

template <int kDim>
void PoolBackwardRows(const PoolArgs& args, const float* d_out, int ld_out,
                      float* grad_rows) {
  const int dim = kDim > 0 ? kDim : args.dim;
  for (int i = 0; i < args.batch; ++i) {
    for (int s = 0; s < args.num_slots; ++s) {
      const int64_t slot = static_cast<int64_t>(i) * args.num_slots + s;
      const uint32_t begin = args.offsets[slot];
      const uint32_t end = args.offsets[slot + 1];
      if (end == begin) continue;
      const float scale = PoolScale(args.mode, end - begin);
      const float* src = d_out + static_cast<int64_t>(i) * ld_out +
                         static_cast<int64_t>(s) * dim;
      for (uint32_t r = begin; r < end; ++r) {
        float* dst = grad_rows + static_cast<int64_t>(args.index[r]) * dim;
        for (int d = 0; d < dim; ++d) dst[d] += src[d] * scale;
      }
    }
  }
}

// Calls fn(std::integral_constant<int, W>()) with W = dim for the row widths
// the pooling loops specialise, W = 0 (the width read at run time) for
// others.
template <typename Fn>
void WithRowWidth(int dim, Fn&& fn) {
  switch (dim) {
    case 1:
      return fn(std::integral_constant<int, 1>());
    case 4:
      return fn(std::integral_constant<int, 4>());
    case 8:
      return fn(std::integral_constant<int, 8>());
    case 9:
      return fn(std::integral_constant<int, 9>());
    case 16:
      return fn(std::integral_constant<int, 16>());
    default:
      return fn(std::integral_constant<int, 0>());
  }
}

}  // namespace

void CpuBackend::PoolForward(const PoolArgs& args, const float* rows,
                             float* out, int ld_out) {
  WithRowWidth(args.dim, [&](auto width) {
    PoolForwardRows<decltype(width)::value>(args, rows, out, ld_out);
  });
}

void CpuBackend::PoolBackward(const PoolArgs& args, const float* d_out,
                              int ld_out, int64_t num_rows, float* grad_rows) {
  std::fill(grad_rows, grad_rows + num_rows * args.dim, 0.0f);
  WithRowWidth(args.dim, [&](auto width) {
    PoolBackwardRows<decltype(width)::value>(args, d_out, ld_out, grad_rows);
  });
}

void CpuBackend::CopyBlocks(int rows, int blocks, int width, const float* src,
                            BlockLayout src_layout, float* dst,
                            BlockLayout dst_layout, bool accumulate) {
  for (int i = 0; i < rows; ++i) {
    for (int b = 0; b < blocks; ++b) {
      const float* from = src + static_cast<int64_t>(i) * src_layout.ld +
                          static_cast<int64_t>(b) * src_layout.block_stride;
      float* to = dst + static_cast<int64_t>(i) * dst_layout.ld +
                  static_cast<int64_t>(b) * dst_layout.block_stride;
      if (accumulate) {
        for (int d = 0; d < width; ++d) to[d] += from[d];
      } else {
        std::copy_n(from, width, to);
      }
    }
  }
}

void CpuBackend::FmForward(int batch, int num_fields, int dim, const float* x,
                           BlockLayout layout, float* sum, float* out) {
  for (int i = 0; i < batch; ++i) {
    const float* row = x + static_cast<int64_t>(i) * layout.ld;
    float* s = sum + static_cast<int64_t>(i) * dim;
    std::fill(s, s + dim, 0.0f);
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

void CpuBackend::FmBackward(int batch, int num_fields, int dim, const float* x,
                            BlockLayout layout, const float* sum,
                            const float* d_out, float* dx) {
  for (int i = 0; i < batch; ++i) {
    const int64_t row = static_cast<int64_t>(i) * layout.ld;
    const float* s = sum + static_cast<int64_t>(i) * dim;
    const float g = d_out[i];
    for (int f = 0; f < num_fields; ++f) {
      const int64_t at = row + static_cast<int64_t>(f) * layout.block_stride;
      const float* v = x + at;
      float* dv = dx + at;
      for (int d = 0; d < dim; ++d) dv[d] += g * (s[d] - v[d]);
    }
  }
}

void CpuBackend::FwFmForward(int batch, int num_fields, int dim, const float* x,
                             BlockLayout layout, const float* r, float* dots,
                             float* out) {
  const int64_t pairs = FwFmNumPairs(num_fields);
  for (int i = 0; i < batch; ++i) {
    const float* row = x + static_cast<int64_t>(i) * layout.ld;
    float* dot = dots + i * pairs;
    float total = 0.0f;
    int64_t p = 0;
    for (int f = 0; f < num_fields; ++f) {
      const float* u = row + static_cast<int64_t>(f) * layout.block_stride;
      for (int g = f + 1; g < num_fields; ++g, ++p) {
        const float* v = row + static_cast<int64_t>(g) * layout.block_stride;
        float acc = 0.0f;
        for (int d = 0; d < dim; ++d) acc += u[d] * v[d];
        dot[p] = acc;
        total += r[p] * acc;
      }
    }
    out[i] += total;
  }
}

void CpuBackend::FwFmBackward(int batch, int num_fields, int dim,
                              const float* x, BlockLayout layout,
                              const float* r, const float* dots,
                              const float* d_out, float* dx, float* d_r) {
  const int64_t pairs = FwFmNumPairs(num_fields);
  std::fill(d_r, d_r + pairs, 0.0f);
  for (int i = 0; i < batch; ++i) {
    const int64_t row = static_cast<int64_t>(i) * layout.ld;
    const float g_i = d_out[i];
    const float* dot = dots + i * pairs;
    for (int64_t p = 0; p < pairs; ++p) d_r[p] += g_i * dot[p];
    int64_t p = 0;
    for (int f = 0; f < num_fields; ++f) {
      const int64_t at_f = row + static_cast<int64_t>(f) * layout.block_stride;
      for (int g = f + 1; g < num_fields; ++g, ++p) {
        const int64_t at_g =
            row + static_cast<int64_t>(g) * layout.block_stride;
        const float w = g_i * r[p];
        for (int d = 0; d < dim; ++d) {
          dx[at_f + d] += w * x[at_g + d];
          dx[at_g + d] += w * x[at_f + d];
        }
      }
    }
  }
}

void CpuBackend::CrossForward(int batch, int width, const float* x0,
                              const float* x, const float* w, const float* b,
                              float* xw, float* out) {
  for (int i = 0; i < batch; ++i) {
    const int64_t row = static_cast<int64_t>(i) * width;
    float dot = 0.0f;
    for (int j = 0; j < width; ++j) dot += x[row + j] * w[j];
    xw[i] = dot;
    for (int j = 0; j < width; ++j) {
      out[row + j] = x0[row + j] * dot + b[j] + x[row + j];
    }
  }
}

void CpuBackend::CrossBackward(int batch, int width, const float* x0,
                               const float* x, const float* w, const float* xw,
                               const float* d_out, float* d_x0, float* d_x,
                               float* d_w, float* d_b) {
  std::fill(d_w, d_w + width, 0.0f);
  std::fill(d_b, d_b + width, 0.0f);
  for (int i = 0; i < batch; ++i) {
    const int64_t row = static_cast<int64_t>(i) * width;
    float g = 0.0f;
    for (int j = 0; j < width; ++j) g += d_out[row + j] * x0[row + j];
    for (int j = 0; j < width; ++j) {
      const float dy = d_out[row + j];
      d_x[row + j] = dy + g * w[j];
      d_x0[row + j] += dy * xw[i];
      d_w[j] += g * x[row + j];
      d_b[j] += dy;
    }
  }
}

void CpuBackend::SigmoidCrossEntropy(int n, const float* logits,
                                     const float* labels, float grad_scale,
                                     float* probs, float* d_logits,
                                     double* loss_sum) {
  double total = 0.0;
  for (int i = 0; i < n; ++i) {
    const float p = Sigmoid(logits[i]);
    probs[i] = p;
    d_logits[i] = (p - labels[i]) * grad_scale;
    total += SigmoidCrossEntropyLoss(logits[i], labels[i]);
  }
  *loss_sum = total;
}

void CpuBackend::AccumulateMetrics(int n, const float* probs,
                                   const float* labels, int num_buckets,
                                   uint64_t* counts, double* sums) {
  double loss = 0.0;
  double prob = 0.0;
  for (int i = 0; i < n; ++i) {
    const int b = AucBucket(probs[i], num_buckets);
    ++counts[labels[i] >= 0.5f ? b : num_buckets + b];
    loss += ClippedLogLoss(probs[i], labels[i]);
    prob += ClampProb(probs[i]);
  }
  sums[0] += loss;
  sums[1] += prob;
}

void CpuBackend::DenseOptimizerStep(const optimizer_math::DenseUpdate& update,
                                    int64_t n, const float* grad, float* w,
                                    float* state) {
  for (int64_t i = 0; i < n; ++i) {
    optimizer_math::UpdateDenseWeight(update, n, i, grad, w, state);
  }
}

}  // namespace ps
