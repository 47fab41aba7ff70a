// The dense optimizer kernel of the CUDA backend (see kernels/cuda/
// kernels.cuh). Built with -fmad=false (kernels/CMakeLists.txt): the rules'
// arithmetic (common/optimizer_math.h) then rounds as on the host, and the
// results are bit-identical to the CPU backend's and the servers'.
#include "common/optimizer_math.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace ps {
namespace cuda {

namespace {

__global__ void DenseOptimizerKernel(optimizer_math::DenseUpdate update,
                                     int64_t n, const float* grad, float* w,
                                     float* state) {
  for (int64_t i = GlobalThread(); i < n; i += GridThreads()) {
    optimizer_math::UpdateDenseWeight(update, n, i, grad, w, state);
  }
}

}  // namespace

absl::Status DenseOptimizerStep(const optimizer_math::DenseUpdate& update,
                                int64_t n, const float* grad, float* w,
                                float* state, cudaStream_t stream) {
  if (n <= 0) return absl::OkStatus();
  DenseOptimizerKernel<<<Blocks(n), kThreads, 0, stream>>>(update, n, grad, w,
                                                           state);
  PS_CUDA_CHECK_LAUNCH("DenseOptimizerKernel", stream);
  return absl::OkStatus();
}

}  // namespace cuda
}  // namespace ps
