// Launch geometry shared by the CUDA kernel files (nvcc only): blocks of
// kThreads threads, grids capped at kMaxBlocks blocks and walked with
// grid-stride loops (GlobalThread, GridThreads), which is plenty to fill any
// current GPU.
#ifndef PS_KERNELS_CUDA_LAUNCH_CUH_
#define PS_KERNELS_CUDA_LAUNCH_CUH_

#include <algorithm>
#include <cstdint>

namespace ps {
namespace cuda {

inline constexpr int kThreads = 256;
inline constexpr int64_t kMaxBlocks = 1 << 16;

// Blocks for `count` threads of work.
inline int Blocks(int64_t count) {
  return static_cast<int>(
      std::min<int64_t>((count + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ inline int64_t GlobalThread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t GridThreads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

}  // namespace cuda
}  // namespace ps

#endif  // PS_KERNELS_CUDA_LAUNCH_CUH_
