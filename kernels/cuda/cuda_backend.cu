#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.cuh"
#include "kernels/device.h"

namespace ps {

absl::StatusOr<std::unique_ptr<Backend>> Backend::CreateCuda(
    const BackendOptions& options) {
  auto backend = CudaBackend::Create(options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Backend>(std::move(backend).value());
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const BackendOptions& options) {
  ASSIGN_OR_RETURN(std::vector<GpuInfo> gpus, ListGpus());
  if (options.device < 0 || options.device >= static_cast<int>(gpus.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA backend: no usable GPU with index ", options.device,
                     " (", DescribeAccelerators(), ")"));
  }
  std::unique_ptr<CudaBackend> backend(new CudaBackend(options.device));
  RETURN_IF_ERROR(backend->Init());
  return backend;
}

absl::Status CudaBackend::Init() {
  PS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  PS_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
  PS_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&upload_, cudaStreamNonBlocking));
  PS_CUDA_RETURN_IF_ERROR(
      cudaStreamCreateWithFlags(&download_, cudaStreamNonBlocking));
  PS_CUDA_RETURN_IF_ERROR(
      cudaEventCreateWithFlags(&uploaded_, cudaEventDisableTiming));
  PS_CUDA_RETURN_IF_ERROR(
      cudaEventCreateWithFlags(&computed_, cudaEventDisableTiming));
  PS_CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas_));
  PS_CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, compute_));
  // Plain FP32: no TF32 tensor-core rounding, so GEMMs match the CPU
  // backend within FP32 summation-order differences.
  PS_CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  // Per-call scratch comes from the device's stream-ordered pool; keep
  // freed memory there instead of returning it at every synchronization.
  // (The default pool is per device, so this applies process-wide.)
  int pools = 0;
  PS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device_));
  memory_pools_ = pools != 0;
  if (!memory_pools_) return absl::OkStatus();
  cudaMemPool_t pool;
  PS_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, device_));
  uint64_t threshold = UINT64_MAX;
  PS_CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(
      pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  return absl::OkStatus();
}

CudaBackend::~CudaBackend() {
  // Nothing to report to from a destructor: failures are ignored on purpose.
  static_cast<void>(cudaSetDevice(device_));
  if (compute_ != nullptr) static_cast<void>(cudaStreamSynchronize(compute_));
  for (cudaStream_t s : {upload_, download_}) {
    if (s != nullptr) static_cast<void>(cudaStreamSynchronize(s));
  }
  if (cublas_ != nullptr) static_cast<void>(cublasDestroy(cublas_));
  if (scratch_ != nullptr) static_cast<void>(cudaFree(scratch_));
  if (uploaded_ != nullptr) static_cast<void>(cudaEventDestroy(uploaded_));
  if (computed_ != nullptr) static_cast<void>(cudaEventDestroy(computed_));
  if (upload_ != nullptr) static_cast<void>(cudaStreamDestroy(upload_));
  if (download_ != nullptr) static_cast<void>(cudaStreamDestroy(download_));
  if (compute_ != nullptr) static_cast<void>(cudaStreamDestroy(compute_));
}

void CudaBackend::Record(absl::Status status) {
  error_.Update(std::move(status));  // keeps the first error
}

bool CudaBackend::Begin() {
  if (!error_.ok()) return false;
  absl::Status status = [this]() -> absl::Status {
    PS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    if (uploads_pending_) {
      PS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(compute_, uploaded_, 0));
      uploads_pending_ = false;
    }
    return absl::OkStatus();
  }();
  Record(status);
  return status.ok();
}

absl::StatusOr<void*> CudaBackend::Scratch(int64_t bytes) {
  void* p = nullptr;
  if (bytes <= 0) return p;
  if (memory_pools_) {
    PS_CUDA_RETURN_IF_ERROR(
        cudaMallocAsync(&p, static_cast<size_t>(bytes), compute_));
    return p;
  }
  if (bytes > scratch_bytes_) {
    // Kernels queued before may still use the old buffer.
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(compute_));
    if (scratch_ != nullptr) PS_CUDA_RETURN_IF_ERROR(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    const int64_t grown = bytes + bytes / 2;
    PS_CUDA_RETURN_IF_ERROR(cudaMalloc(&scratch_, static_cast<size_t>(grown)));
    scratch_bytes_ = grown;
  }
  return scratch_;
}

void CudaBackend::FreeScratch(void* p) {
  if (p != nullptr && memory_pools_) {
    const cudaError_t err = cudaFreeAsync(p, compute_);
    if (err != cudaSuccess) Record(cuda::CudaError("cudaFreeAsync", err));
  }
}

// --- Memory -----------------------------------------------------------------

absl::StatusOr<BackendBuffer> CudaBackend::Allocate(int64_t bytes) {
  if (bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: cannot allocate ", bytes, " bytes"));
  }
  if (bytes == 0) return BackendBuffer();
  PS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));
  if (err != cudaSuccess) {
    absl::Status status = cuda::CudaError("cudaMalloc", err);
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " allocating ", bytes,
                                     " bytes on GPU ", device_));
  }
  const int device = device_;
  return BackendBuffer(p, bytes, [device](void* data) {
    // Freed from a destructor: nothing to report to.
    static_cast<void>(cudaSetDevice(device));
    static_cast<void>(cudaFree(data));
  });
}

absl::StatusOr<BackendBuffer> CudaBackend::AllocateHost(int64_t bytes) {
  if (bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: cannot allocate ", bytes, " host bytes"));
  }
  if (bytes == 0) return BackendBuffer();
  void* p = nullptr;
  const cudaError_t err =
      cudaHostAlloc(&p, static_cast<size_t>(bytes), cudaHostAllocDefault);
  if (err != cudaSuccess) {
    absl::Status status = cuda::CudaError("cudaHostAlloc", err);
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " allocating ", bytes,
                                     " pinned host bytes"));
  }
  return BackendBuffer(p, bytes, [](void* data) {
    static_cast<void>(cudaFreeHost(data));  // from a destructor
  });
}

void CudaBackend::CopyToBackend(const void* host, int64_t bytes, void* dst) {
  if (bytes <= 0 || !error_.ok()) return;
  Record([&]() -> absl::Status {
    PS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    PS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, host,
                                            static_cast<size_t>(bytes),
                                            cudaMemcpyHostToDevice, upload_));
    PS_CUDA_RETURN_IF_ERROR(cudaEventRecord(uploaded_, upload_));
    uploads_pending_ = true;
    return absl::OkStatus();
  }());
}

void CudaBackend::CopyToHost(const void* src, int64_t bytes, void* host) {
  // Begin: the compute stream waits for the uploads queued so far, so the
  // download, which waits for the compute stream, follows them too (an
  // upload straight followed by a download of the same memory).
  if (bytes <= 0 || !Begin()) return;
  Record([&]() -> absl::Status {
    PS_CUDA_RETURN_IF_ERROR(cudaEventRecord(computed_, compute_));
    PS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(download_, computed_, 0));
    PS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, src,
                                            static_cast<size_t>(bytes),
                                            cudaMemcpyDeviceToHost, download_));
    return absl::OkStatus();
  }());
}

void CudaBackend::SetZero(int64_t bytes, void* dst) {
  if (bytes <= 0 || !Begin()) return;
  const cudaError_t err =
      cudaMemsetAsync(dst, 0, static_cast<size_t>(bytes), compute_);
  if (err != cudaSuccess) Record(cuda::CudaError("cudaMemsetAsync", err));
}

absl::Status CudaBackend::Synchronize() {
  absl::Status status = [this]() -> absl::Status {
    PS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(compute_));
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(upload_));
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(download_));
    return absl::OkStatus();
  }();
  Record(std::move(status));
  // A failed launch or a non-sticky kernel error stays readable by
  // cudaGetLastError: clear it, or the next launch check would report it
  // again.
  if (!error_.ok()) static_cast<void>(cudaGetLastError());
  uploads_pending_ = false;  // both streams are idle now
  absl::Status result;
  swap(result, error_);  // error_ is OK now
  return result;
}

// --- Kernels ----------------------------------------------------------------

void CudaBackend::Gemm(bool trans_a, bool trans_b, int m, int n, int k,
                       float alpha, const float* a, const float* b, float beta,
                       float* c) {
  if (m <= 0 || n <= 0 || !Begin()) return;
  if (k <= 0) {
    Record(cuda::ScaleMatrix(static_cast<int64_t>(m) * n, beta, c, compute_));
    return;
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: hand
  // cuBLAS the operands swapped, each buffer read as its own transpose.
  const int lda = trans_a ? m : k;
  const int ldb = trans_b ? k : n;
  Record([&]() -> absl::Status {
    PS_CUBLAS_RETURN_IF_ERROR(
        cublasSgemm(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                    trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                    ldb, a, lda, &beta, c, n));
    return absl::OkStatus();
  }());
}

void CudaBackend::BiasActivation(int m, int n, const float* bias,
                                 Activation act, float* y) {
  if (!Begin()) return;
  Record(cuda::BiasActivation(m, n, bias, act, y, compute_));
}

void CudaBackend::ActivationBackward(int64_t count, Activation act,
                                     const float* y, float* dy) {
  if (!Begin()) return;
  Record(cuda::ActivationBackward(count, act, y, dy, compute_));
}

void CudaBackend::Dropout(int64_t count, float rate, uint64_t seed,
                          const float* x, float* y) {
  if (!Begin()) return;
  Record(cuda::Dropout(count, DropoutThreshold(rate), DropoutScale(rate), seed,
                       x, y, compute_));
}

void CudaBackend::BiasGrad(int m, int n, const float* dy, float* db) {
  if (!Begin()) return;
  Record([&]() -> absl::Status {
    ASSIGN_OR_RETURN(void* workspace,
                     Scratch(cuda::ColumnSumsWorkspaceBytes(m, n)));
    absl::Status status = cuda::ColumnSums(
        m, n, dy, nullptr, db, static_cast<float*>(workspace), compute_);
    FreeScratch(workspace);
    return status;
  }());
}

void CudaBackend::PoolForward(const PoolArgs& args, const float* rows,
                              float* out, int ld_out) {
  if (!Begin()) return;
  Record(cuda::PoolForward(args, rows, out, ld_out, compute_));
}

void CudaBackend::PoolBackward(const PoolArgs& args, const float* d_out,
                               int ld_out, int64_t num_rows, float* grad_rows) {
  if (num_rows <= 0 || args.dim <= 0 || !Begin()) return;
  Record([&]() -> absl::Status {
    int64_t num_keys = args.num_keys;
    const int64_t pairs = static_cast<int64_t>(std::max(args.batch, 0)) *
                          std::max(args.num_slots, 0);
    if (num_keys < 0) {
      uint32_t last = 0;
      PS_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(&last, args.offsets + pairs, sizeof(last),
                          cudaMemcpyDeviceToHost, compute_));
      PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(compute_));
      num_keys = last;
    }
    ASSIGN_OR_RETURN(int64_t bytes,
                     cuda::PoolBackwardWorkspaceBytes(num_keys, num_rows));
    ASSIGN_OR_RETURN(void* workspace, Scratch(bytes));
    absl::Status status =
        cuda::PoolBackward(args, num_keys, d_out, ld_out, num_rows, grad_rows,
                           workspace, bytes, compute_);
    FreeScratch(workspace);
    return status;
  }());
}

void CudaBackend::CopyBlocks(int rows, int blocks, int width, const float* src,
                             BlockLayout src_layout, float* dst,
                             BlockLayout dst_layout, bool accumulate) {
  if (!Begin()) return;
  Record(cuda::CopyBlocks(rows, blocks, width, src, src_layout, dst, dst_layout,
                          accumulate, compute_));
}

void CudaBackend::FmForward(int batch, int num_fields, int dim, const float* x,
                            BlockLayout layout, float* sum, float* out) {
  if (!Begin()) return;
  Record(
      cuda::FmForward(batch, num_fields, dim, x, layout, sum, out, compute_));
}

void CudaBackend::FmBackward(int batch, int num_fields, int dim, const float* x,
                             BlockLayout layout, const float* sum,
                             const float* d_out, float* dx) {
  if (!Begin()) return;
  Record(cuda::FmBackward(batch, num_fields, dim, x, layout, sum, d_out, dx,
                          compute_));
}

void CudaBackend::FwFmForward(int batch, int num_fields, int dim,
                              const float* x, BlockLayout layout,
                              const float* r, float* dots, float* out) {
  if (!Begin()) return;
  Record(cuda::FwFmForward(batch, num_fields, dim, x, layout, r, dots, out,
                           compute_));
}

void CudaBackend::FwFmBackward(int batch, int num_fields, int dim,
                               const float* x, BlockLayout layout,
                               const float* r, const float* dots,
                               const float* d_out, float* dx, float* d_r) {
  if (!Begin()) return;
  Record([&]() -> absl::Status {
    ASSIGN_OR_RETURN(void* workspace, Scratch(cuda::FwFmBackwardWorkspaceBytes(
                                          batch, num_fields)));
    absl::Status status =
        cuda::FwFmBackward(batch, num_fields, dim, x, layout, r, dots, d_out,
                           dx, d_r, static_cast<float*>(workspace), compute_);
    FreeScratch(workspace);
    return status;
  }());
}

void CudaBackend::CrossForward(int batch, int width, const float* x0,
                               const float* x, const float* w, const float* b,
                               float* xw, float* out) {
  if (!Begin()) return;
  Record(cuda::CrossForward(batch, width, x0, x, w, b, xw, out, compute_));
}

void CudaBackend::CrossBackward(int batch, int width, const float* x0,
                                const float* x, const float* w, const float* xw,
                                const float* d_out, float* d_x0, float* d_x,
                                float* d_w, float* d_b) {
  if (!Begin()) return;
  Record([&]() -> absl::Status {
    ASSIGN_OR_RETURN(void* workspace,
                     Scratch(cuda::CrossBackwardWorkspaceBytes(batch, width)));
    absl::Status status =
        cuda::CrossBackward(batch, width, x0, x, w, xw, d_out, d_x0, d_x, d_w,
                            d_b, static_cast<float*>(workspace), compute_);
    FreeScratch(workspace);
    return status;
  }());
}

void CudaBackend::SigmoidCrossEntropy(int n, const float* logits,
                                      const float* labels, float grad_scale,
                                      float* probs, float* d_logits,
                                      double* loss_sum) {
  if (!Begin()) return;
  Record([&]() -> absl::Status {
    const int64_t bytes = cuda::LossWorkspaceBytes(n);
    ASSIGN_OR_RETURN(void* workspace, Scratch(bytes));
    absl::Status status =
        cuda::SigmoidCrossEntropy(n, logits, labels, grad_scale, probs,
                                  d_logits, loss_sum, workspace, compute_);
    FreeScratch(workspace);
    return status;
  }());
}

void CudaBackend::AccumulateMetrics(int n, const float* probs,
                                    const float* labels, int num_buckets,
                                    uint64_t* counts, double* sums) {
  if (n <= 0 || !Begin()) return;
  Record([&]() -> absl::Status {
    const int64_t bytes = cuda::LossWorkspaceBytes(n);
    ASSIGN_OR_RETURN(void* workspace, Scratch(bytes));
    absl::Status status = cuda::AccumulateMetrics(
        n, probs, labels, num_buckets, counts, sums, workspace, compute_);
    FreeScratch(workspace);
    return status;
  }());
}

void CudaBackend::DenseOptimizerStep(const optimizer_math::DenseUpdate& update,
                                     int64_t n, const float* grad, float* w,
                                     float* state) {
  if (!Begin()) return;
  Record(cuda::DenseOptimizerStep(update, n, grad, w, state, compute_));
}

}  // namespace ps
