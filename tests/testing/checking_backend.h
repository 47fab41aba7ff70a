// A Backend for tests that stands in for a device: it runs the CPU backend's
// kernels, but the memory its Allocate returns behaves like device memory.
//
//  - Allocate maps whole pages with no access rights (mmap PROT_NONE): they
//    are opened (PROT_READ | PROT_WRITE) only while one of this backend's
//    calls runs, so a caller that reads or writes "device" memory on the
//    host, outside a backend call, faults at once.
//  - Every pointer a kernel gets, and the backend side of every copy, must
//    lie, with the extent the call touches, inside one Allocate'd buffer;
//    the host side of a copy must not. Violations are collected as messages
//    (violations()), the first few of each kind.
//  - Copies and kernel calls are counted (counts(), ResetCounts()).
//  - Faults can be injected: Allocate fails past a byte limit
//    (set_allocation_limit), and the next Synchronize can return an error
//    (FailNextSynchronize), as a device backend's kernel error would.
//
// AllocateHost returns plain host memory (the CPU backend's). Used by one
// thread, like every Backend; the buffers it hands out must be freed before
// it is destroyed.
#ifndef PS_TESTS_TESTING_CHECKING_BACKEND_H_
#define PS_TESTS_TESTING_CHECKING_BACKEND_H_

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/fwfm_pairs.h"
#include "kernels/backend.h"

namespace ps {
namespace testing_util {

struct BackendCounts {
  int64_t copies_to_backend = 0;
  int64_t copies_to_host = 0;
  int64_t bytes_to_backend = 0;
  int64_t bytes_to_host = 0;
  int64_t set_zero = 0;
  int64_t kernels = 0;
  int64_t allocations = 0;  // Allocate calls with bytes > 0
  int64_t synchronizes = 0;

  int64_t copies() const { return copies_to_backend + copies_to_host; }
};

class CheckingBackend final : public Backend {
 public:
  // REQUIRES: cpu != nullptr and cpu->UsesHostMemory().
  explicit CheckingBackend(std::unique_ptr<Backend> cpu)
      : cpu_(std::move(cpu)), page_(sysconf(_SC_PAGESIZE)) {}
  ~CheckingBackend() override = default;

  std::string Name() const override { return "checking(" + cpu_->Name() + ")"; }
  // Kernels take backend pointers only, like a device backend's.
  bool UsesHostMemory() const override { return false; }

  const BackendCounts& counts() const { return counts_; }
  void ResetCounts() { counts_ = BackendCounts(); }
  const std::vector<std::string>& violations() const { return violations_; }
  // Allocate returns ResourceExhausted when the bytes allocated would exceed
  // `bytes`. Default: no limit (-1).
  void set_allocation_limit(int64_t bytes) { allocation_limit_ = bytes; }
  // Deferred mode stands in for a GPU's streams at their most adversarial:
  // kernels, SetZero and CopyToHost run in order only at the next
  // Synchronize, while CopyToBackend runs at once, ahead of the kernels
  // queued before it (an idle upload stream). A caller that uploads into
  // memory a queued kernel still reads, or reads a download before
  // Synchronize, gets wrong numbers. Default: off (every call runs at once).
  void set_deferred(bool on) { deferred_ = on; }
  void FailNextSynchronize(absl::Status status) {
    sync_error_ = std::move(status);
  }
  // Bytes currently allocated through Allocate.
  int64_t allocated_bytes() const {
    int64_t total = 0;
    for (const auto& [base, bytes] : regions_) total += bytes;
    return total;
  }

  absl::StatusOr<BackendBuffer> Allocate(int64_t bytes) override {
    if (bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("checking backend: cannot allocate ", bytes, " bytes"));
    }
    if (bytes == 0) return BackendBuffer();
    if (allocation_limit_ >= 0 &&
        allocated_bytes() + bytes > allocation_limit_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "checking backend: out of memory allocating ", bytes, " bytes"));
    }
    const int64_t mapped = (bytes + page_ - 1) / page_ * page_;
    void* data = mmap(nullptr, static_cast<size_t>(mapped), PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
      return absl::ResourceExhaustedError(
          absl::StrCat("checking backend: mmap of ", mapped, " bytes failed"));
    }
    regions_[reinterpret_cast<uintptr_t>(data)] = bytes;
    ++counts_.allocations;
    return BackendBuffer(data, bytes, [this, mapped](void* p) {
      regions_.erase(reinterpret_cast<uintptr_t>(p));
      munmap(p, static_cast<size_t>(mapped));
    });
  }
  absl::StatusOr<BackendBuffer> AllocateHost(int64_t bytes) override {
    return cpu_->AllocateHost(bytes);
  }

  void CopyToBackend(const void* host, int64_t bytes, void* dst) override {
    ++counts_.copies_to_backend;
    counts_.bytes_to_backend += bytes;
    CheckHost(host, bytes, "CopyToBackend host");
    CheckDevice(dst, bytes, "CopyToBackend dst");
    Open opened(this);
    cpu_->CopyToBackend(host, bytes, dst);
  }
  void CopyToHost(const void* src, int64_t bytes, void* host) override {
    ++counts_.copies_to_host;
    counts_.bytes_to_host += bytes;
    CheckDevice(src, bytes, "CopyToHost src");
    CheckHost(host, bytes, "CopyToHost host");
    Run([=] { cpu_->CopyToHost(src, bytes, host); });
  }
  void SetZero(int64_t bytes, void* dst) override {
    ++counts_.set_zero;
    CheckDevice(dst, bytes, "SetZero dst");
    Run([=] { cpu_->SetZero(bytes, dst); });
  }
  absl::Status Synchronize() override {
    ++counts_.synchronizes;
    {
      Open opened(this);
      for (auto& work : queue_) work();
    }
    queue_.clear();
    absl::Status status = std::move(sync_error_);
    sync_error_ = absl::OkStatus();
    if (!status.ok()) return status;
    return cpu_->Synchronize();
  }

  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
            const float* a, const float* b, float beta, float* c) override {
    Kernel();
    CheckFloats(a, int64_t{m} * k, "Gemm a");
    CheckFloats(b, int64_t{k} * n, "Gemm b");
    CheckFloats(c, int64_t{m} * n, "Gemm c");
    Run([=] { cpu_->Gemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c); });
  }
  void BiasActivation(int m, int n, const float* bias, Activation act,
                      float* y) override {
    Kernel();
    CheckFloats(bias, n, "BiasActivation bias");
    CheckFloats(y, int64_t{m} * n, "BiasActivation y");
    Run([=] { cpu_->BiasActivation(m, n, bias, act, y); });
  }
  void ActivationBackward(int64_t count, Activation act, const float* y,
                          float* dy) override {
    Kernel();
    CheckFloats(y, count, "ActivationBackward y");
    CheckFloats(dy, count, "ActivationBackward dy");
    Run([=] { cpu_->ActivationBackward(count, act, y, dy); });
  }
  void Dropout(int64_t count, float rate, uint64_t seed, const float* x,
               float* y) override {
    Kernel();
    CheckFloats(x, count, "Dropout x");
    CheckFloats(y, count, "Dropout y");
    Run([=] { cpu_->Dropout(count, rate, seed, x, y); });
  }
  void BiasGrad(int m, int n, const float* dy, float* db) override {
    Kernel();
    CheckFloats(dy, int64_t{m} * n, "BiasGrad dy");
    CheckFloats(db, n, "BiasGrad db");
    Run([=] { cpu_->BiasGrad(m, n, dy, db); });
  }
  void PoolForward(const PoolArgs& args, const float* rows, float* out,
                   int ld_out) override {
    Kernel();
    {
      Open opened(this);  // the checks read the offsets and index
      const int64_t num_rows = CheckPoolArgs(args, "PoolForward");
      CheckFloats(rows, num_rows * args.dim, "PoolForward rows");
      CheckFloats(out,
                  Extent(args.batch, 1, args.num_slots * args.dim, ld_out, 0),
                  "PoolForward out");
    }
    Run([=] { cpu_->PoolForward(args, rows, out, ld_out); });
  }
  void PoolBackward(const PoolArgs& args, const float* d_out, int ld_out,
                    int64_t num_rows, float* grad_rows) override {
    Kernel();
    {
      Open opened(this);  // the checks read the offsets and index
      const int64_t used_rows = CheckPoolArgs(args, "PoolBackward");
      if (used_rows > num_rows) {
        Violation("PoolBackward: index entry beyond num_rows");
      }
      CheckFloats(d_out,
                  Extent(args.batch, 1, args.num_slots * args.dim, ld_out, 0),
                  "PoolBackward d_out");
      CheckFloats(grad_rows, num_rows * args.dim, "PoolBackward grad_rows");
    }
    Run([=] { cpu_->PoolBackward(args, d_out, ld_out, num_rows, grad_rows); });
  }
  void CopyBlocks(int rows, int blocks, int width, const float* src,
                  BlockLayout src_layout, float* dst, BlockLayout dst_layout,
                  bool accumulate) override {
    Kernel();
    CheckFloats(src, Extent(rows, blocks, width, src_layout), "CopyBlocks src");
    CheckFloats(dst, Extent(rows, blocks, width, dst_layout), "CopyBlocks dst");
    Run([=] {
      cpu_->CopyBlocks(rows, blocks, width, src, src_layout, dst, dst_layout,
                       accumulate);
    });
  }
  void FmForward(int batch, int num_fields, int dim, const float* x,
                 BlockLayout layout, float* sum, float* out) override {
    Kernel();
    CheckFloats(x, Extent(batch, num_fields, dim, layout), "FmForward x");
    CheckFloats(sum, int64_t{batch} * dim, "FmForward sum");
    CheckFloats(out, batch, "FmForward out");
    Run([=] { cpu_->FmForward(batch, num_fields, dim, x, layout, sum, out); });
  }
  void FmBackward(int batch, int num_fields, int dim, const float* x,
                  BlockLayout layout, const float* sum, const float* d_out,
                  float* dx) override {
    Kernel();
    CheckFloats(x, Extent(batch, num_fields, dim, layout), "FmBackward x");
    CheckFloats(sum, int64_t{batch} * dim, "FmBackward sum");
    CheckFloats(d_out, batch, "FmBackward d_out");
    CheckFloats(dx, Extent(batch, num_fields, dim, layout), "FmBackward dx");
    Run([=] {
      cpu_->FmBackward(batch, num_fields, dim, x, layout, sum, d_out, dx);
    });
  }
  void FwFmForward(int batch, int num_fields, int dim, const float* x,
                   BlockLayout layout, const float* r, float* dots,
                   float* out) override {
    Kernel();
    const int64_t pairs = FwFmNumPairs(num_fields);
    CheckFloats(x, Extent(batch, num_fields, dim, layout), "FwFmForward x");
    CheckFloats(r, pairs, "FwFmForward r");
    CheckFloats(dots, int64_t{batch} * pairs, "FwFmForward dots");
    CheckFloats(out, batch, "FwFmForward out");
    Run([=] {
      cpu_->FwFmForward(batch, num_fields, dim, x, layout, r, dots, out);
    });
  }
  void FwFmBackward(int batch, int num_fields, int dim, const float* x,
                    BlockLayout layout, const float* r, const float* dots,
                    const float* d_out, float* dx, float* d_r) override {
    Kernel();
    const int64_t pairs = FwFmNumPairs(num_fields);
    CheckFloats(x, Extent(batch, num_fields, dim, layout), "FwFmBackward x");
    CheckFloats(r, pairs, "FwFmBackward r");
    CheckFloats(dots, int64_t{batch} * pairs, "FwFmBackward dots");
    CheckFloats(d_out, batch, "FwFmBackward d_out");
    CheckFloats(dx, Extent(batch, num_fields, dim, layout), "FwFmBackward dx");
    CheckFloats(d_r, pairs, "FwFmBackward d_r");
    Run([=] {
      cpu_->FwFmBackward(batch, num_fields, dim, x, layout, r, dots, d_out, dx,
                         d_r);
    });
  }
  void CrossForward(int batch, int width, const float* x0, const float* x,
                    const float* w, const float* b, float* xw,
                    float* out) override {
    Kernel();
    const int64_t size = int64_t{batch} * width;
    CheckFloats(x0, size, "CrossForward x0");
    CheckFloats(x, size, "CrossForward x");
    CheckFloats(w, width, "CrossForward w");
    CheckFloats(b, width, "CrossForward b");
    CheckFloats(xw, batch, "CrossForward xw");
    CheckFloats(out, size, "CrossForward out");
    Run([=] { cpu_->CrossForward(batch, width, x0, x, w, b, xw, out); });
  }
  void CrossBackward(int batch, int width, const float* x0, const float* x,
                     const float* w, const float* xw, const float* d_out,
                     float* d_x0, float* d_x, float* d_w, float* d_b) override {
    Kernel();
    const int64_t size = int64_t{batch} * width;
    CheckFloats(x0, size, "CrossBackward x0");
    CheckFloats(x, size, "CrossBackward x");
    CheckFloats(w, width, "CrossBackward w");
    CheckFloats(xw, batch, "CrossBackward xw");
    CheckFloats(d_out, size, "CrossBackward d_out");
    CheckFloats(d_x0, size, "CrossBackward d_x0");
    CheckFloats(d_x, size, "CrossBackward d_x");
    CheckFloats(d_w, width, "CrossBackward d_w");
    CheckFloats(d_b, width, "CrossBackward d_b");
    Run([=] {
      cpu_->CrossBackward(batch, width, x0, x, w, xw, d_out, d_x0, d_x, d_w,
                          d_b);
    });
  }
  void SigmoidCrossEntropy(int n, const float* logits, const float* labels,
                           float grad_scale, float* probs, float* d_logits,
                           double* loss_sum) override {
    Kernel();
    CheckFloats(logits, n, "SigmoidCrossEntropy logits");
    CheckFloats(labels, n, "SigmoidCrossEntropy labels");
    CheckFloats(probs, n, "SigmoidCrossEntropy probs");
    CheckFloats(d_logits, n, "SigmoidCrossEntropy d_logits");
    CheckDevice(loss_sum, sizeof(double), "SigmoidCrossEntropy loss_sum");
    Run([=] {
      cpu_->SigmoidCrossEntropy(n, logits, labels, grad_scale, probs, d_logits,
                                loss_sum);
    });
  }
  void AccumulateMetrics(int n, const float* probs, const float* labels,
                         int num_buckets, uint64_t* counts,
                         double* sums) override {
    Kernel();
    CheckFloats(probs, n, "AccumulateMetrics probs");
    CheckFloats(labels, n, "AccumulateMetrics labels");
    CheckDevice(counts, 2 * int64_t{num_buckets} * sizeof(uint64_t),
                "AccumulateMetrics counts");
    CheckDevice(sums, 2 * sizeof(double), "AccumulateMetrics sums");
    Run([=] {
      cpu_->AccumulateMetrics(n, probs, labels, num_buckets, counts, sums);
    });
  }

  void DenseOptimizerStep(const optimizer_math::DenseUpdate& update, int64_t n,
                          const float* grad, float* w, float* state) override {
    Kernel();
    CheckFloats(grad, n, "DenseOptimizerStep grad");
    CheckFloats(w, n, "DenseOptimizerStep w");
    CheckFloats(state, n * optimizer_math::StatesPerWeight(update.hyper.kind),
                "DenseOptimizerStep state");
    Run([=] { cpu_->DenseOptimizerStep(update, n, grad, w, state); });
  }

 private:
  // Opens every Allocate'd region for the lifetime of one call.
  class Open {
   public:
    explicit Open(CheckingBackend* backend) : backend_(backend) {
      backend_->Protect(PROT_READ | PROT_WRITE);
    }
    ~Open() { backend_->Protect(PROT_NONE); }

   private:
    CheckingBackend* const backend_;
  };

  void Protect(int prot) {
    for (const auto& [base, bytes] : regions_) {
      const int64_t mapped = (bytes + page_ - 1) / page_ * page_;
      mprotect(reinterpret_cast<void*>(base), static_cast<size_t>(mapped),
               prot);
    }
  }

  void Kernel() { ++counts_.kernels; }

  // Runs `work` now, or (set_deferred) at the next Synchronize.
  // Runs `work` (a call of the CPU backend) with backend memory open: now,
  // or at the next Synchronize in deferred mode.
  void Run(std::function<void()> work) {
    if (deferred_) {
      queue_.push_back(std::move(work));
    } else {
      Open opened(this);
      work();
    }
  }

  static int64_t Extent(int rows, int blocks, int width, BlockLayout layout) {
    if (rows <= 0 || blocks <= 0 || width <= 0) return 0;
    return int64_t{rows - 1} * layout.ld +
           int64_t{blocks - 1} * layout.block_stride + width;
  }
  static int64_t Extent(int rows, int blocks, int width, int ld,
                        int block_stride) {
    return Extent(rows, blocks, width, BlockLayout{ld, block_stride});
  }

  // The region holding [p, p + bytes), or regions_.end().
  std::map<uintptr_t, int64_t>::const_iterator Find(const void* p,
                                                    int64_t bytes) const {
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    auto it = regions_.upper_bound(at);
    if (it == regions_.begin()) return regions_.end();
    --it;
    if (at + static_cast<uintptr_t>(std::max<int64_t>(bytes, 0)) >
        it->first + static_cast<uintptr_t>(it->second)) {
      return regions_.end();
    }
    return it;
  }

  void CheckDevice(const void* p, int64_t bytes, const std::string& what) {
    if (bytes <= 0) return;
    if (p == nullptr || Find(p, bytes) == regions_.end()) {
      Violation(absl::StrCat(what, ": ", bytes, " bytes at ",
                             reinterpret_cast<uintptr_t>(p),
                             " are not inside one Allocate'd buffer"));
    }
  }
  void CheckFloats(const float* p, int64_t count, const std::string& what) {
    CheckDevice(p, count * static_cast<int64_t>(sizeof(float)), what);
  }
  void CheckHost(const void* p, int64_t bytes, const std::string& what) {
    if (bytes <= 0) return;
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    for (const auto& [base, size] : regions_) {
      if (at < base + static_cast<uintptr_t>(size) &&
          base < at + static_cast<uintptr_t>(bytes)) {
        Violation(absl::StrCat(what, ": overlaps an Allocate'd buffer"));
        return;
      }
    }
  }

  // Checks offsets and index (called with the regions open); returns the
  // number of rows the index reaches.
  int64_t CheckPoolArgs(const PoolArgs& args, const std::string& call) {
    const int64_t entries = int64_t{args.batch} * args.num_slots + 1;
    CheckDevice(args.offsets, entries * 4, call + " offsets");
    if (Find(args.offsets, entries * 4) == regions_.end()) return 0;
    const int64_t keys = args.offsets[entries - 1];
    if (args.num_keys >= 0 && args.num_keys != keys) {
      Violation(absl::StrCat(call, ": num_keys ", args.num_keys,
                             " but offsets end at ", keys));
    }
    CheckDevice(args.index, keys * 4, call + " index");
    if (Find(args.index, keys * 4) == regions_.end()) return 0;
    int64_t rows = 0;
    for (int64_t k = 0; k < keys; ++k) {
      rows = std::max<int64_t>(rows, int64_t{args.index[k]} + 1);
    }
    return rows;
  }

  void Violation(std::string message) {
    if (violations_.size() < 50) violations_.push_back(std::move(message));
  }

  const std::unique_ptr<Backend> cpu_;
  const int64_t page_;
  std::map<uintptr_t, int64_t> regions_;  // base -> bytes, from Allocate
  BackendCounts counts_;
  std::vector<std::string> violations_;
  int64_t allocation_limit_ = -1;
  absl::Status sync_error_;
  bool deferred_ = false;
  std::vector<std::function<void()>> queue_;  // deferred work
};

}  // namespace testing_util
}  // namespace ps

#endif  // PS_TESTS_TESTING_CHECKING_BACKEND_H_
