#include "tests/testing/staging_backend.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/fwfm_pairs.h"

namespace ps {

namespace {

// Floats spanned by `rows` rows of `blocks` blocks of `width` floats.
int64_t Extent(int64_t rows, int64_t blocks, int64_t width,
               BlockLayout layout) {
  if (rows <= 0 || blocks <= 0 || width <= 0) return 0;
  return (rows - 1) * layout.ld + (blocks - 1) * layout.block_stride + width;
}

}  // namespace

// The staged operands of one call: In uploads, Out downloads at Finish,
// InOut does both. Operand i uses device buffer i of the owner.
class StagingBackend::Call {
 public:
  explicit Call(StagingBackend* owner) : owner_(owner) {}

  // False once staging failed (or an earlier call did): skip the kernel.
  bool ok() const { return owner_->error_.ok(); }

  template <typename T>
  const T* In(const T* host, int64_t count) {
    return static_cast<const T*>(Stage(host, count * sizeof(T), true, false));
  }
  template <typename T>
  T* Out(T* host, int64_t count) {
    return static_cast<T*>(Stage(host, count * sizeof(T), false, true));
  }
  template <typename T>
  T* InOut(T* host, int64_t count) {
    return static_cast<T*>(Stage(host, count * sizeof(T), true, true));
  }

  // Copies the outputs back and waits for the device; keeps a failure.
  void Finish() {
    if (!ok()) return;
    for (const Download& d : downloads_) {
      owner_->device_->CopyToHost(d.device, d.bytes, d.host);
    }
    absl::Status status = owner_->device_->Synchronize();
    if (!status.ok()) owner_->error_ = std::move(status);
  }

 private:
  struct Download {
    void* host;
    const void* device;
    int64_t bytes;
  };

  void* Stage(const void* host, int64_t bytes, bool upload, bool download) {
    if (!ok() || bytes <= 0 || host == nullptr) return nullptr;
    std::vector<BackendBuffer>& buffers = owner_->buffers_;
    if (next_ == buffers.size()) buffers.emplace_back();
    BackendBuffer& buffer = buffers[next_++];
    if (buffer.bytes() < bytes) {
      buffer.Reset();
      // Grow by half again, so slowly growing operands reallocate rarely.
      auto fresh = owner_->device_->Allocate(bytes + bytes / 2);
      if (!fresh.ok()) {
        owner_->error_ = fresh.status();
        return nullptr;
      }
      buffer = std::move(fresh).value();
    }
    if (upload) owner_->device_->CopyToBackend(host, bytes, buffer.data());
    if (download) {
      downloads_.push_back({const_cast<void*>(host), buffer.data(), bytes});
    }
    return buffer.data();
  }

  StagingBackend* const owner_;
  size_t next_ = 0;
  std::vector<Download> downloads_;
};

StagingBackend::StagingBackend(std::unique_ptr<Backend> device)
    : device_(std::move(device)) {}

StagingBackend::~StagingBackend() = default;

std::string StagingBackend::Name() const {
  return absl::StrCat("staging(", device_->Name(), ")");
}

absl::StatusOr<BackendBuffer> StagingBackend::Allocate(int64_t bytes) {
  return device_->AllocateHost(bytes);
}

absl::StatusOr<BackendBuffer> StagingBackend::AllocateHost(int64_t bytes) {
  return device_->AllocateHost(bytes);
}

void StagingBackend::CopyToBackend(const void* host, int64_t bytes, void* dst) {
  if (bytes > 0) std::memcpy(dst, host, static_cast<size_t>(bytes));
}

void StagingBackend::CopyToHost(const void* src, int64_t bytes, void* host) {
  if (bytes > 0) std::memcpy(host, src, static_cast<size_t>(bytes));
}

void StagingBackend::SetZero(int64_t bytes, void* dst) {
  if (bytes > 0) std::memset(dst, 0, static_cast<size_t>(bytes));
}

absl::Status StagingBackend::Synchronize() {
  absl::Status status = std::move(error_);
  error_ = absl::OkStatus();
  absl::Status device = device_->Synchronize();
  return status.ok() ? device : status;
}

void StagingBackend::Gemm(bool trans_a, bool trans_b, int m, int n, int k,
                          float alpha, const float* a, const float* b,
                          float beta, float* c) {
  if (m <= 0 || n <= 0) return;
  Call call(this);
  const int64_t kk = std::max(k, 0);
  const float* da = call.In(a, int64_t{m} * kk);
  const float* db = call.In(b, kk * n);
  float* dc = beta != 0.0f ? call.InOut(c, int64_t{m} * n)
                           : call.Out(c, int64_t{m} * n);
  if (!call.ok()) return;
  device_->Gemm(trans_a, trans_b, m, n, k, alpha, da, db, beta, dc);
  call.Finish();
}

void StagingBackend::BiasActivation(int m, int n, const float* bias,
                                    Activation act, float* y) {
  if (m <= 0 || n <= 0) return;
  Call call(this);
  const float* dbias = call.In(bias, n);
  float* dy = call.InOut(y, int64_t{m} * n);
  if (!call.ok()) return;
  device_->BiasActivation(m, n, dbias, act, dy);
  call.Finish();
}

void StagingBackend::ActivationBackward(int64_t count, Activation act,
                                        const float* y, float* dy) {
  if (count <= 0 || act == Activation::kNone) return;
  Call call(this);
  const float* d_y = call.In(y, count);
  float* d_dy = call.InOut(dy, count);
  if (!call.ok()) return;
  device_->ActivationBackward(count, act, d_y, d_dy);
  call.Finish();
}

void StagingBackend::Dropout(int64_t count, float rate, uint64_t seed,
                             const float* x, float* y) {
  if (count <= 0) return;
  Call call(this);
  // In place: one buffer both read and written.
  const float* d_x = x == y ? nullptr : call.In(x, count);
  float* d_y = x == y ? call.InOut(y, count) : call.Out(y, count);
  if (!call.ok()) return;
  device_->Dropout(count, rate, seed, x == y ? d_y : d_x, d_y);
  call.Finish();
}

void StagingBackend::BiasGrad(int m, int n, const float* dy, float* db) {
  if (n <= 0) return;
  Call call(this);
  const float* d_dy = call.In(dy, int64_t{std::max(m, 0)} * n);
  float* d_db = call.Out(db, n);
  if (!call.ok()) return;
  device_->BiasGrad(m, n, d_dy, d_db);
  call.Finish();
}

void StagingBackend::PoolForward(const PoolArgs& args, const float* rows,
                                 float* out, int ld_out) {
  if (args.batch <= 0 || args.num_slots <= 0 || args.dim <= 0) return;
  const int64_t pairs = int64_t{args.batch} * args.num_slots;
  const int64_t num_keys = args.offsets[pairs];
  uint32_t max_index = 0;
  for (int64_t r = 0; r < num_keys; ++r) {
    max_index = std::max(max_index, args.index[r]);
  }
  const int64_t num_rows = num_keys > 0 ? int64_t{max_index} + 1 : 0;
  const int64_t out_extent =
      Extent(args.batch, args.num_slots, args.dim, {ld_out, args.dim});
  Call call(this);
  PoolArgs device_args = args;
  device_args.offsets = call.In(args.offsets, pairs + 1);
  device_args.index = call.In(args.index, num_keys);
  device_args.num_keys = num_keys;
  const float* d_rows = call.In(rows, num_rows * args.dim);
  // Columns past num_slots * dim must survive.
  float* d_out = ld_out == args.num_slots * args.dim
                     ? call.Out(out, out_extent)
                     : call.InOut(out, out_extent);
  if (!call.ok()) return;
  device_->PoolForward(device_args, d_rows, d_out, ld_out);
  call.Finish();
}

void StagingBackend::PoolBackward(const PoolArgs& args, const float* d_out,
                                  int ld_out, int64_t num_rows,
                                  float* grad_rows) {
  if (num_rows <= 0 || args.dim <= 0) return;
  const int64_t pairs =
      int64_t{std::max(args.batch, 0)} * std::max(args.num_slots, 0);
  const int64_t num_keys = args.offsets[pairs];
  Call call(this);
  PoolArgs device_args = args;
  device_args.offsets = call.In(args.offsets, pairs + 1);
  device_args.index = call.In(args.index, num_keys);
  device_args.num_keys = num_keys;
  const float* dd_out = call.In(
      d_out, Extent(args.batch, args.num_slots, args.dim, {ld_out, args.dim}));
  float* d_grad = call.Out(grad_rows, num_rows * args.dim);
  if (!call.ok()) return;
  device_->PoolBackward(device_args, dd_out, ld_out, num_rows, d_grad);
  call.Finish();
}

void StagingBackend::CopyBlocks(int rows, int blocks, int width,
                                const float* src, BlockLayout src_layout,
                                float* dst, BlockLayout dst_layout,
                                bool accumulate) {
  if (rows <= 0 || blocks <= 0 || width <= 0) return;
  Call call(this);
  const float* d_src = call.In(src, Extent(rows, blocks, width, src_layout));
  float* d_dst = call.InOut(dst, Extent(rows, blocks, width, dst_layout));
  if (!call.ok()) return;
  device_->CopyBlocks(rows, blocks, width, d_src, src_layout, d_dst, dst_layout,
                      accumulate);
  call.Finish();
}

void StagingBackend::FmForward(int batch, int num_fields, int dim,
                               const float* x, BlockLayout layout, float* sum,
                               float* out) {
  if (batch <= 0) return;
  Call call(this);
  const float* d_x = call.In(x, Extent(batch, num_fields, dim, layout));
  float* d_sum = call.Out(sum, int64_t{batch} * std::max(dim, 0));
  float* d_out = call.InOut(out, batch);
  if (!call.ok()) return;
  device_->FmForward(batch, num_fields, dim, d_x, layout, d_sum, d_out);
  call.Finish();
}

void StagingBackend::FmBackward(int batch, int num_fields, int dim,
                                const float* x, BlockLayout layout,
                                const float* sum, const float* d_out,
                                float* dx) {
  if (batch <= 0 || num_fields <= 0 || dim <= 0) return;
  const int64_t extent = Extent(batch, num_fields, dim, layout);
  Call call(this);
  const float* d_x = call.In(x, extent);
  const float* d_sum = call.In(sum, int64_t{batch} * dim);
  const float* dd_out = call.In(d_out, batch);
  float* d_dx = call.InOut(dx, extent);
  if (!call.ok()) return;
  device_->FmBackward(batch, num_fields, dim, d_x, layout, d_sum, dd_out, d_dx);
  call.Finish();
}

void StagingBackend::FwFmForward(int batch, int num_fields, int dim,
                                 const float* x, BlockLayout layout,
                                 const float* r, float* dots, float* out) {
  if (batch <= 0 || num_fields < 2) return;
  const int64_t pairs = FwFmNumPairs(num_fields);
  Call call(this);
  const float* d_x = call.In(x, Extent(batch, num_fields, dim, layout));
  const float* d_r = call.In(r, pairs);
  float* d_dots = call.Out(dots, int64_t{batch} * pairs);
  float* d_out = call.InOut(out, batch);
  if (!call.ok()) return;
  device_->FwFmForward(batch, num_fields, dim, d_x, layout, d_r, d_dots, d_out);
  call.Finish();
}

void StagingBackend::FwFmBackward(int batch, int num_fields, int dim,
                                  const float* x, BlockLayout layout,
                                  const float* r, const float* dots,
                                  const float* d_out, float* dx, float* d_r) {
  if (num_fields < 2) return;
  const int64_t pairs = FwFmNumPairs(num_fields);
  const int64_t rows = std::max(batch, 0);
  const int64_t extent = Extent(batch, num_fields, dim, layout);
  Call call(this);
  const float* d_x = call.In(x, extent);
  const float* dd_r = call.In(r, pairs);
  const float* d_dots = call.In(dots, rows * pairs);
  const float* dd_out = call.In(d_out, rows);
  float* d_dx = call.InOut(dx, extent);
  float* d_dr = call.Out(d_r, pairs);
  if (!call.ok()) return;
  device_->FwFmBackward(batch, num_fields, dim, d_x, layout, dd_r, d_dots,
                        dd_out, d_dx, d_dr);
  call.Finish();
}

void StagingBackend::CrossForward(int batch, int width, const float* x0,
                                  const float* x, const float* w,
                                  const float* b, float* xw, float* out) {
  if (batch <= 0) return;
  const int64_t size = int64_t{batch} * std::max(width, 0);
  Call call(this);
  const float* d_x0 = call.In(x0, size);
  const float* d_x = call.In(x, size);
  const float* d_w = call.In(w, width);
  const float* d_b = call.In(b, width);
  float* d_xw = call.Out(xw, batch);
  float* d_out = call.Out(out, size);
  if (!call.ok()) return;
  device_->CrossForward(batch, width, d_x0, d_x, d_w, d_b, d_xw, d_out);
  call.Finish();
}

void StagingBackend::CrossBackward(int batch, int width, const float* x0,
                                   const float* x, const float* w,
                                   const float* xw, const float* d_out,
                                   float* d_x0, float* d_x, float* d_w,
                                   float* d_b) {
  if (width <= 0) return;
  const int64_t size = int64_t{std::max(batch, 0)} * width;
  Call call(this);
  const float* dev_x0 = call.In(x0, size);
  const float* dev_x = call.In(x, size);
  const float* dev_w = call.In(w, width);
  const float* dev_xw = call.In(xw, std::max(batch, 0));
  const float* dev_d_out = call.In(d_out, size);
  float* dev_d_x0 = call.InOut(d_x0, size);
  float* dev_d_x = call.Out(d_x, size);
  float* dev_d_w = call.Out(d_w, width);
  float* dev_d_b = call.Out(d_b, width);
  if (!call.ok()) return;
  device_->CrossBackward(batch, width, dev_x0, dev_x, dev_w, dev_xw, dev_d_out,
                         dev_d_x0, dev_d_x, dev_d_w, dev_d_b);
  call.Finish();
}

void StagingBackend::SigmoidCrossEntropy(int n, const float* logits,
                                         const float* labels, float grad_scale,
                                         float* probs, float* d_logits,
                                         double* loss_sum) {
  Call call(this);
  const int64_t count = std::max(n, 0);
  const float* d_logit_in = call.In(logits, count);
  const float* d_labels = call.In(labels, count);
  float* d_probs = call.Out(probs, count);
  float* d_grad = call.Out(d_logits, count);
  double* d_loss = call.Out(loss_sum, 1);
  if (!call.ok()) return;
  device_->SigmoidCrossEntropy(n, d_logit_in, d_labels, grad_scale, d_probs,
                               d_grad, d_loss);
  call.Finish();
}

void StagingBackend::AccumulateMetrics(int n, const float* probs,
                                       const float* labels, int num_buckets,
                                       uint64_t* counts, double* sums) {
  if (n <= 0) return;
  Call call(this);
  const float* d_probs = call.In(probs, n);
  const float* d_labels = call.In(labels, n);
  uint64_t* d_counts = call.InOut(counts, int64_t{2} * num_buckets);
  double* d_sums = call.InOut(sums, 2);
  if (!call.ok()) return;
  device_->AccumulateMetrics(n, d_probs, d_labels, num_buckets, d_counts,
                             d_sums);
  call.Finish();
}

void StagingBackend::DenseOptimizerStep(
    const optimizer_math::DenseUpdate& update, int64_t n, const float* grad,
    float* w, float* state) {
  if (n <= 0) return;
  Call call(this);
  const float* d_grad = call.In(grad, n);
  float* d_w = call.InOut(w, n);
  float* d_state =
      call.InOut(state, n * optimizer_math::StatesPerWeight(update.hyper.kind));
  if (!call.ok()) return;
  device_->DenseOptimizerStep(update, n, d_grad, d_w, d_state);
  call.Finish();
}

}  // namespace ps
