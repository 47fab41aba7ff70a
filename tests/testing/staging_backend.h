// A test-only Backend over host memory that runs another ("device")
// backend's kernels (cuda_model_test checks its operand extents and the
// CUDA kernels through it).
//
// Every kernel call copies the host operands it reads into buffers of the
// device backend, runs the device kernel, copies the outputs back, and
// synchronizes: callers that keep their buffers in host memory can use the
// CUDA backend unchanged, and get its numbers. The price is a round trip per
// call (the operands of every GEMM, the dense weights included, cross the
// bus each step); a device-resident caller (the worker's Model,
// worker/model/model.h) uses the device backend directly. Staging
// buffers are kept between calls and grow as needed.
//
// Extents: the floats a call touches are derived from its arguments (e.g.
// (rows - 1) * ld + (blocks - 1) * block_stride + width for a blocked
// matrix; for pooling, the largest index entry + 1 rows), so host buffers
// need only hold those. Outputs that a call leaves partly untouched (y of
// BiasActivation, dst of CopyBlocks, out of PoolForward with a wider ld_out,
// accumulated outputs) are uploaded first.
//
// Errors: a failed allocation, copy or device kernel is kept (the first one;
// the call's outputs are then undefined) and later calls are skipped until
// Synchronize returns the error. One thread at a time, like every Backend.
#ifndef PS_TESTS_TESTING_STAGING_BACKEND_H_
#define PS_TESTS_TESTING_STAGING_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace ps {

class StagingBackend final : public Backend {
 public:
  // REQUIRES: device != nullptr.
  explicit StagingBackend(std::unique_ptr<Backend> device);
  ~StagingBackend() override;

  // "staging(<device name>)".
  std::string Name() const override;
  bool UsesHostMemory() const override { return true; }
  Backend* device() const { return device_.get(); }

  // Host memory: the device backend's AllocateHost (pinned for CUDA).
  absl::StatusOr<BackendBuffer> Allocate(int64_t bytes) override;
  absl::StatusOr<BackendBuffer> AllocateHost(int64_t bytes) override;
  // memcpy / memset: host to host.
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
  void PoolForward(const PoolArgs& args, const float* rows, float* out,
                   int ld_out) override;
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
  class Call;

  const std::unique_ptr<Backend> device_;
  // Device buffers by operand position within a call, reused across calls.
  std::vector<BackendBuffer> buffers_;
  absl::Status error_;
};

}  // namespace ps

#endif  // PS_TESTS_TESTING_STAGING_BACKEND_H_
