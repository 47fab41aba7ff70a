// kernels/device.h for builds without nvcc.
#include "kernels/device.h"

namespace ps {

bool BuiltWithCuda() { return false; }

absl::StatusOr<std::vector<GpuInfo>> ListGpus() {
  return std::vector<GpuInfo>();
}

std::string DescribeAccelerators() {
  return "built without CUDA (no nvcc at build time): CPU backend only";
}

}  // namespace ps
