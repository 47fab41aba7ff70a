// The CUDA backend's kernels as thin host launchers (nvcc only), in the
// manner of CUB's device-wide calls: each takes device pointers, the stream
// to queue on and, where it needs scratch, a caller-provided workspace of
// the size its ...WorkspaceBytes function names; each returns the launch's
// status (PS_CUDA_CHECK_LAUNCH after every launch, kernels/cuda/cuda_check.h)
// and does nothing for empty inputs. The arithmetic and the documented
// results are those of the same-named Backend calls (kernels/backend.h);
// element-wise pieces come from kernels/math.h like the CPU backend's.
//
// Determinism: every launcher gives bit-identical results for identical
// inputs (no floating-point atomics; reductions run in a fixed order). Sums
// that one thread owns (pooling forward and backward, FM) are formed in the
// CPU backend's order; column sums, warp and block reductions (bias and
// cross-layer gradients, dot products, loss and metric sums) use another
// fixed order, so they agree with the CPU backend within rounding only.
#ifndef PS_KERNELS_CUDA_KERNELS_CUH_
#define PS_KERNELS_CUDA_KERNELS_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/optimizer_math.h"
#include "kernels/backend.h"

namespace ps {
namespace cuda {

// c[i] = beta == 0 ? 0 : beta * c[i] (a GEMM with k = 0).
absl::Status ScaleMatrix(int64_t count, float beta, float* c,
                         cudaStream_t stream);

absl::Status BiasActivation(int m, int n, const float* bias, Activation act,
                            float* y, cudaStream_t stream);

absl::Status ActivationBackward(int64_t count, Activation act, const float* y,
                                float* dy, cudaStream_t stream);
// Backend::Dropout (threshold and scale from DropoutThreshold and
// DropoutScale, on the host).
absl::Status Dropout(int64_t count, uint32_t threshold, float scale,
                     uint64_t seed, const float* x, float* y,
                     cudaStream_t stream);

// The workspace ColumnSums needs for an m x n matrix (0 for m <= 512).
int64_t ColumnSumsWorkspaceBytes(int m, int n);

// out[j] = sum over i of coef[i] * mat[i][j] (coef null: 1) for an m x n
// mat; rows are summed in a fixed order (chunks of 512 rows, then the
// chunks), so results repeat exactly.
absl::Status ColumnSums(int m, int n, const float* mat, const float* coef,
                        float* out, float* workspace, cudaStream_t stream);

absl::Status CopyBlocks(int rows, int blocks, int width, const float* src,
                        BlockLayout src_layout, float* dst,
                        BlockLayout dst_layout, bool accumulate,
                        cudaStream_t stream);

absl::Status FmForward(int batch, int num_fields, int dim, const float* x,
                       BlockLayout layout, float* sum, float* out,
                       cudaStream_t stream);

absl::Status FmBackward(int batch, int num_fields, int dim, const float* x,
                        BlockLayout layout, const float* sum,
                        const float* d_out, float* dx, cudaStream_t stream);

absl::Status FwFmForward(int batch, int num_fields, int dim, const float* x,
                         BlockLayout layout, const float* r, float* dots,
                         float* out, cudaStream_t stream);

// The workspace of FwFmBackward (ColumnSums' over batch x pairs).
int64_t FwFmBackwardWorkspaceBytes(int batch, int num_fields);

absl::Status FwFmBackward(int batch, int num_fields, int dim, const float* x,
                          BlockLayout layout, const float* r, const float* dots,
                          const float* d_out, float* dx, float* d_r,
                          float* workspace, cudaStream_t stream);

absl::Status CrossForward(int batch, int width, const float* x0, const float* x,
                          const float* w, const float* b, float* xw, float* out,
                          cudaStream_t stream);

// The workspace of CrossBackward: the per-example g of
// Backend::CrossBackward, then ColumnSums' workspace.
int64_t CrossBackwardWorkspaceBytes(int batch, int width);

absl::Status CrossBackward(int batch, int width, const float* x0,
                           const float* x, const float* w, const float* xw,
                           const float* d_out, float* d_x0, float* d_x,
                           float* d_w, float* d_b, float* workspace,
                           cudaStream_t stream);

// Workspace of SigmoidCrossEntropy and AccumulateMetrics: per-block partial
// sums.
int64_t LossWorkspaceBytes(int n);

absl::Status SigmoidCrossEntropy(int n, const float* logits,
                                 const float* labels, float grad_scale,
                                 float* probs, float* d_logits,
                                 double* loss_sum, void* workspace,
                                 cudaStream_t stream);

absl::Status AccumulateMetrics(int n, const float* probs, const float* labels,
                               int num_buckets, uint64_t* counts, double* sums,
                               void* workspace, cudaStream_t stream);

// REQUIRES (here and below): args.offsets and args.index in device memory,
// every index entry < the number of rows.
absl::Status PoolForward(const PoolArgs& args, const float* rows, float* out,
                         int ld_out, cudaStream_t stream);

// The workspace PoolBackward needs for `num_keys` = offsets[batch *
// num_slots] pooled keys over num_rows rows. InvalidArgument when num_keys
// exceeds INT32_MAX (CUB's sort takes an int count).
absl::StatusOr<int64_t> PoolBackwardWorkspaceBytes(int64_t num_keys,
                                                   int64_t num_rows);

// Backend::PoolBackward, deterministically: the keys' (row, example-slot)
// pairs are sorted by row with a stable radix sort (CUB), then a group of
// lanes per row sums its row's gradients in key order -- the CPU backend's
// order -- and writes every row, zeros for rows no key pooled.
absl::Status PoolBackward(const PoolArgs& args, int64_t num_keys,
                          const float* d_out, int ld_out, int64_t num_rows,
                          float* grad_rows, void* workspace,
                          int64_t workspace_bytes, cudaStream_t stream);

// One optimizer update of n dense weights (Backend::DenseOptimizerStep).
absl::Status DenseOptimizerStep(const optimizer_math::DenseUpdate& update,
                                int64_t n, const float* grad, float* w,
                                float* state, cudaStream_t stream);

}  // namespace cuda
}  // namespace ps

#endif  // PS_KERNELS_CUDA_KERNELS_CUH_
