// Which accelerators this process can use. Built with nvcc, the answer comes
// from the CUDA runtime (kernels/cuda/device.cu); without it, from
// kernels/device_none.cc. Thread-safe.
#ifndef PS_KERNELS_DEVICE_H_
#define PS_KERNELS_DEVICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ps {

struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_capability = 0;  // e.g. 90 for sm_90
  int64_t memory_bytes = 0;
};

// True when the binary was built with the CUDA backend.
bool BuiltWithCuda();

// The usable GPUs: empty when none (no driver, no device) or when the binary
// was built without CUDA; an error only for an unexpected CUDA failure, with
// the call and the CUDA error in the message.
absl::StatusOr<std::vector<GpuInfo>> ListGpus();

// One line for logs, e.g. "CUDA built, 1 GPU: 0: NVIDIA H100 (sm_90, 80 GiB)"
// or "CUDA built, no usable GPU (cudaGetDeviceCount: ...)".
std::string DescribeAccelerators();

}  // namespace ps

#endif  // PS_KERNELS_DEVICE_H_
