// Turning CUDA runtime and cuBLAS return codes into absl::Status, for the
// CUDA backend's host code (nvcc only).
//
// PS_CUDA_RETURN_IF_ERROR(call) / PS_CUBLAS_RETURN_IF_ERROR(call) return an
// Internal status naming the call and the error (ResourceExhausted for out
// of memory) from the enclosing function. PS_CUDA_CHECK_LAUNCH(name, stream)
// goes after every kernel launch: it returns the launch error (bad
// configuration, missing kernel image for this GPU); in debug builds (no
// NDEBUG) it also synchronizes the stream so a fault inside the kernel is
// reported against that kernel. All of it is thread-safe.
#ifndef PS_KERNELS_CUDA_CUDA_CHECK_H_
#define PS_KERNELS_CUDA_CUDA_CHECK_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ps {
namespace cuda {

inline absl::Status CudaError(const char* call, cudaError_t err) {
  std::string message = absl::StrCat(call, ": ", cudaGetErrorName(err), " (",
                                     cudaGetErrorString(err), ")");
  if (err == cudaErrorMemoryAllocation) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

inline absl::Status CublasError(const char* call, cublasStatus_t err) {
  std::string message = absl::StrCat(call, ": ", cublasGetStatusName(err), " (",
                                     cublasGetStatusString(err), ")");
  if (err == CUBLAS_STATUS_ALLOC_FAILED) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

}  // namespace cuda
}  // namespace ps

#define PS_CUDA_RETURN_IF_ERROR(call)                    \
  do {                                                   \
    const cudaError_t ps_cuda_err_ = (call);             \
    if (ps_cuda_err_ != cudaSuccess) {                   \
      return ::ps::cuda::CudaError(#call, ps_cuda_err_); \
    }                                                    \
  } while (0)

#define PS_CUBLAS_RETURN_IF_ERROR(call)                      \
  do {                                                       \
    const cublasStatus_t ps_cublas_err_ = (call);            \
    if (ps_cublas_err_ != CUBLAS_STATUS_SUCCESS) {           \
      return ::ps::cuda::CublasError(#call, ps_cublas_err_); \
    }                                                        \
  } while (0)

#ifdef NDEBUG
#define PS_CUDA_CHECK_LAUNCH(name, stream)                           \
  do {                                                               \
    const cudaError_t ps_cuda_err_ = cudaGetLastError();             \
    if (ps_cuda_err_ != cudaSuccess) {                               \
      return ::ps::cuda::CudaError("launch of " name, ps_cuda_err_); \
    }                                                                \
  } while (0)
#else
#define PS_CUDA_CHECK_LAUNCH(name, stream)              \
  do {                                                  \
    cudaError_t ps_cuda_err_ = cudaGetLastError();      \
    if (ps_cuda_err_ == cudaSuccess) {                  \
      ps_cuda_err_ = cudaStreamSynchronize(stream);     \
    }                                                   \
    if (ps_cuda_err_ != cudaSuccess) {                  \
      return ::ps::cuda::CudaError(name, ps_cuda_err_); \
    }                                                   \
  } while (0)
#endif

#endif  // PS_KERNELS_CUDA_CUDA_CHECK_H_
