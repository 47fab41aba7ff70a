// The CUDA implementation of Backend (kernels/backend.h): kernels on device
// memory of one GPU, GEMMs through cuBLAS (FP32, no TF32, so results agree
// with the CPU backend within rounding), everything else in the launchers of
// kernels/cuda/kernels.cuh. Only nvcc-compiled code includes this header;
// others use Backend::CreateCuda.
//
// Streams and overlap. Kernels (and SetZero) run in order on a compute
// stream; CopyToBackend runs on an upload stream and CopyToHost on a
// download stream (the GPU's two copy engines):
//  - an upload is ordered before every kernel queued after it (the compute
//    stream waits for an event of the upload stream), and with pinned host
//    memory (AllocateHost) it overlaps the kernels queued before it, and the
//    downloads waiting for them;
//  - a download waits for the kernels queued before it (an event of the
//    compute stream) and overlaps the kernels queued after it.
// So a caller that alternates two sets of device buffers can upload batch
// t+1 and download the gradients of batch t-1 while batch t computes, and do
// its RPCs meanwhile, since no call blocks the host except Synchronize (and
// copies to or from pageable memory, which the driver stages). Nothing else
// overlaps: the kernels of a batch run one after the other.
//
// Errors: the first failed CUDA or cuBLAS call is recorded (its name and
// error in the message) and returned by Synchronize; later calls are skipped
// until then. Launch errors are checked after every launch; debug builds
// also synchronize after each kernel so a fault names its kernel. Like every
// Backend, one object is used by one thread at a time.
#ifndef PS_KERNELS_CUDA_CUDA_BACKEND_H_
#define PS_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace ps {

class CudaBackend final : public Backend {
 public:
  // See Backend::CreateCuda.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(
      const BackendOptions& options);
  ~CudaBackend() override;

  std::string Name() const override { return "cuda"; }
  bool UsesHostMemory() const override { return false; }
  int device() const { return device_; }

  // Allocate: cudaMalloc. AllocateHost: cudaHostAlloc (pinned).
  absl::StatusOr<BackendBuffer> Allocate(int64_t bytes) override;
  absl::StatusOr<BackendBuffer> AllocateHost(int64_t bytes) override;
  void CopyToBackend(const void* host, int64_t bytes, void* dst) override;
  void CopyToHost(const void* src, int64_t bytes, void* host) override;
  void SetZero(int64_t bytes, void* dst) override;
  absl::Status Synchronize() override;

  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
            const float* a, const float* b, float beta, float* c) override;
  void BiasActivation(int m, int n, const float* bias, Activation act,
                      float* y) override;
  void ActivationBackward(int64_t count, Activation act, const float* y,
                          float* dy) override;
  void Dropout(int64_t count, float rate, uint64_t seed, const float* x,
               float* y) override;
  void BiasGrad(int m, int n, const float* dy, float* db) override;
  // REQUIRES: args.offsets and args.index in device memory; every index
  // entry < the number of rows.
  void PoolForward(const PoolArgs& args, const float* rows, float* out,
                   int ld_out) override;
  // Deterministic (sort by row + segmented sum, kernels.cuh). When
  // args.num_keys is -1 it reads offsets[batch * num_slots] from the device
  // first, which waits for the kernels queued before.
  void PoolBackward(const PoolArgs& args, const float* d_out, int ld_out,
                    int64_t num_rows, float* grad_rows) override;
  void CopyBlocks(int rows, int blocks, int width, const float* src,
                  BlockLayout src_layout, float* dst, BlockLayout dst_layout,
                  bool accumulate) override;
  void FmForward(int batch, int num_fields, int dim, const float* x,
                 BlockLayout layout, float* sum, float* out) override;
  void FmBackward(int batch, int num_fields, int dim, const float* x,
                  BlockLayout layout, const float* sum, const float* d_out,
                  float* dx) override;
  void FwFmForward(int batch, int num_fields, int dim, const float* x,
                   BlockLayout layout, const float* r, float* dots,
                   float* out) override;
  void FwFmBackward(int batch, int num_fields, int dim, const float* x,
                    BlockLayout layout, const float* r, const float* dots,
                    const float* d_out, float* dx, float* d_r) override;
  void CrossForward(int batch, int width, const float* x0, const float* x,
                    const float* w, const float* b, float* xw,
                    float* out) override;
  void CrossBackward(int batch, int width, const float* x0, const float* x,
                     const float* w, const float* xw, const float* d_out,
                     float* d_x0, float* d_x, float* d_w, float* d_b) override;
  // `loss_sum` is device memory (one double).
  void SigmoidCrossEntropy(int n, const float* logits, const float* labels,
                           float grad_scale, float* probs, float* d_logits,
                           double* loss_sum) override;
  void AccumulateMetrics(int n, const float* probs, const float* labels,
                         int num_buckets, uint64_t* counts,
                         double* sums) override;
  void DenseOptimizerStep(const optimizer_math::DenseUpdate& update, int64_t n,
                          const float* grad, float* w, float* state) override;

 private:
  explicit CudaBackend(int device) : device_(device) {}
  absl::Status Init();

  // False when an earlier call failed (the call is then skipped); else makes
  // device_ current and the compute stream wait for pending uploads.
  bool Begin();
  // Keeps the first error.
  void Record(absl::Status status);
  // Stream-ordered scratch for one call: allocated on the compute stream,
  // freed there after the call's kernels (cudaMallocAsync pool). On a GPU
  // without memory pools (some virtualized ones), one grow-only buffer that
  // the calls take in turn (they all run on the compute stream).
  absl::StatusOr<void*> Scratch(int64_t bytes);
  void FreeScratch(void* p);

  // Constant after Init.
  const int device_;
  cudaStream_t compute_ = nullptr;
  cudaStream_t upload_ = nullptr;
  cudaStream_t download_ = nullptr;
  cudaEvent_t uploaded_ = nullptr;  // recorded on upload_ after uploads
  cudaEvent_t computed_ = nullptr;  // recorded on compute_ before downloads
  cublasHandle_t cublas_ = nullptr;
  bool memory_pools_ = false;  // cudaMallocAsync works on this device

  void* scratch_ = nullptr;  // without memory pools
  int64_t scratch_bytes_ = 0;
  bool uploads_pending_ = false;
  absl::Status error_;
};

}  // namespace ps

#endif  // PS_KERNELS_CUDA_CUDA_BACKEND_H_
