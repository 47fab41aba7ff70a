// kernels/device.h from the CUDA runtime.
#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/device.h"

namespace ps {

namespace {

// A trivial kernel launched once per device by ListGpus, so "usable" means
// a kernel of this binary actually ran there (right architecture, working
// driver), not only that the device exists.
__global__ void ProbeKernel(int* out) { *out = 42; }

absl::Status CudaError(const char* call, cudaError_t err) {
  return absl::InternalError(absl::StrCat(call, ": ", cudaGetErrorName(err),
                                          " (", cudaGetErrorString(err), ")"));
}

absl::Status Probe(int device) {
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) return CudaError("cudaSetDevice", err);
  int* d_out = nullptr;
  err = cudaMalloc(&d_out, sizeof(int));
  if (err != cudaSuccess) return CudaError("cudaMalloc", err);
  ProbeKernel<<<1, 1>>>(d_out);
  err = cudaGetLastError();
  int h_out = 0;
  if (err == cudaSuccess) {
    err = cudaMemcpy(&h_out, d_out, sizeof(int), cudaMemcpyDeviceToHost);
  }
  cudaFree(d_out);
  if (err != cudaSuccess) return CudaError("probe kernel", err);
  if (h_out != 42) {
    return absl::InternalError(
        absl::StrCat("probe kernel on GPU ", device, " wrote ", h_out));
  }
  return absl::OkStatus();
}

}  // namespace

bool BuiltWithCuda() { return true; }

absl::StatusOr<std::vector<GpuInfo>> ListGpus() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  std::vector<GpuInfo> gpus;
  // No driver or no device is the normal CPU-only case, not an error.
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    return gpus;
  }
  if (err != cudaSuccess) return CudaError("cudaGetDeviceCount", err);
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, d);
    if (err != cudaSuccess) return CudaError("cudaGetDeviceProperties", err);
    absl::Status probe = Probe(d);
    if (!probe.ok()) return probe;
    GpuInfo info;
    info.index = d;
    info.name = prop.name;
    info.compute_capability = prop.major * 10 + prop.minor;
    info.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    gpus.push_back(info);
  }
  return gpus;
}

std::string DescribeAccelerators() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    return absl::StrCat("CUDA built, no usable GPU (cudaGetDeviceCount: ",
                        cudaGetErrorName(err), ")");
  }
  auto gpus = ListGpus();
  if (!gpus.ok()) {
    return absl::StrCat("CUDA built, GPU unusable: ", gpus.status().message());
  }
  std::vector<std::string> parts;
  for (const GpuInfo& g : *gpus) {
    parts.push_back(absl::StrCat(g.index, ": ", g.name, " (sm_",
                                 g.compute_capability, ", ",
                                 g.memory_bytes >> 30, " GiB)"));
  }
  return absl::StrCat("CUDA built, ", gpus->size(),
                      " GPU(s): ", absl::StrJoin(parts, "; "));
}

}  // namespace ps
