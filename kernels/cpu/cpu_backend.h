// The reference CPU implementation of Backend (kernels/backend.h).
//
// GEMMs go through OpenBLAS (cblas_sgemm, row-major); everything else is plain
// loops over host memory using the shared arithmetic of kernels/math.h, so a
// device backend can be checked against it. Results are deterministic for a
// fixed thread count. Like every Backend, one object is used by one thread at
// a time. Note that OpenBLAS's thread count is process-wide: creating a
// CpuBackend sets it for every BLAS call in the process.
#ifndef PS_KERNELS_CPU_CPU_BACKEND_H_
#define PS_KERNELS_CPU_CPU_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace ps {

class CpuBackend final : public Backend {
 public:
  // InvalidArgument when options.threads < 1.
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(
      const BackendOptions& options);

  std::string Name() const override { return "cpu"; }
  bool UsesHostMemory() const override { return true; }

  // Plain host memory (64-byte aligned); copies are memcpy, done at once.
  absl::StatusOr<BackendBuffer> Allocate(int64_t bytes) override;
  absl::StatusOr<BackendBuffer> AllocateHost(int64_t bytes) override;
  void CopyToBackend(const void* host, int64_t bytes, void* dst) override;
  void CopyToHost(const void* src, int64_t bytes, void* host) override;
  void SetZero(int64_t bytes, void* dst) override;
  // Always OK: the CPU kernels run inline and cannot fail.
  absl::Status Synchronize() override { return absl::OkStatus(); }

  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
            const float* a, const float* b, float beta, float* c) override;
  void BiasActivation(int m, int n, const float* bias, Activation act,
                      float* y) override;
  void ActivationBackward(int64_t count, Activation act, const float* y,
                          float* dy) override;
  void Dropout(int64_t count, float rate, uint64_t seed, const float* x,
               float* y) override;
  void BiasGrad(int m, int n, const float* dy, float* db) override;
  // REQUIRES: every args.index entry < the number of rows in `rows`.
  void PoolForward(const PoolArgs& args, const float* rows, float* out,
                   int ld_out) override;
  // REQUIRES: every args.index entry < num_rows.
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
  void SigmoidCrossEntropy(int n, const float* logits, const float* labels,
                           float grad_scale, float* probs, float* d_logits,
                           double* loss_sum) override;
  void AccumulateMetrics(int n, const float* probs, const float* labels,
                         int num_buckets, uint64_t* counts,
                         double* sums) override;
  void DenseOptimizerStep(const optimizer_math::DenseUpdate& update, int64_t n,
                          const float* grad, float* w, float* state) override;

 private:
  CpuBackend() = default;
};

}  // namespace ps

#endif  // PS_KERNELS_CPU_CPU_BACKEND_H_
