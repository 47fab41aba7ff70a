#include "worker/model/model_linear.h"

#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

namespace {

std::vector<float> MakeSelector(const ModelSpec& spec) {
  CHECK(spec.has_linear && spec.linear_dim == 1);
  std::vector<float> selector(static_cast<size_t>(spec.pooled_width), 0.0f);
  for (int slot : spec.wide_slots) {
    CHECK(slot >= 0 && slot < spec.num_slots) << "wide slot " << slot;
    selector[static_cast<size_t>(spec.slot_offset[slot])] = 1.0f;
  }
  return selector;
}

// The embeddings inside the pooled rows (FmTerm, FwFmTerm): one block per
// slot, after the slot's linear weight (every slot's row has emb_dim floats,
// so the slots lie at that stride, in whatever order their tables put them).
BlockLayout EmbeddingLayout(const ModelSpec& spec) {
  return BlockLayout{spec.pooled_width, spec.emb_dim};
}

}  // namespace

LinearTerm::LinearTerm(const ModelSpec& spec, Backend* backend)
    : spec_(spec), backend_(backend), host_selector_(MakeSelector(spec)) {}

absl::Status LinearTerm::Reserve(int /*batch*/) {
  if (uploaded_) return absl::OkStatus();
  const int64_t size = static_cast<int64_t>(host_selector_.size());
  RETURN_IF_ERROR(selector_.Reserve(backend_, size));
  backend_->CopyToBackend(host_selector_.data(), size * sizeof(float),
                          selector_.data());
  uploaded_ = true;
  return absl::OkStatus();
}

void LinearTerm::Forward(const TermInputs& in, float* logits) {
  const int n = in.batch;
  const int pooled_width = spec_.pooled_width;
  const LayerSpec& linear = spec_.linear;
  backend_->Gemm(false, false, n, 1, pooled_width, 1.0f, in.pooled,
                 selector_.data(), 1.0f, logits);
  backend_->Gemm(false, false, n, 1, linear.in, 1.0f, in.dense,
                 in.params + linear.weight_offset, 1.0f, logits);
  backend_->BiasActivation(n, 1, in.params + linear.bias_offset,
                           Activation::kNone, logits);
}

void LinearTerm::Backward(const TermInputs& in, const float* d_logits,
                          float* d_pooled, float* dense_grad) {
  const int n = in.batch;
  const int pooled_width = spec_.pooled_width;
  const LayerSpec& linear = spec_.linear;
  // d_pooled += d_logits (n x 1) * selector (1 x slots*dim).
  backend_->Gemm(false, false, n, pooled_width, 1, 1.0f, d_logits,
                 selector_.data(), 1.0f, d_pooled);
  // dW = dense^T (in x n) * d_logits (n x 1); db = sum of d_logits.
  backend_->Gemm(true, false, linear.in, 1, n, 1.0f, in.dense, d_logits, 0.0f,
                 dense_grad + linear.weight_offset);
  backend_->BiasGrad(n, 1, d_logits, dense_grad + linear.bias_offset);
}

FmTerm::FmTerm(const ModelSpec& spec, Backend* backend)
    : spec_(spec), backend_(backend) {
  CHECK(spec_.has_fm);
  // Validation refuses FM tables of different dims.
  CHECK_GT(spec_.emb_dim, 0) << "FM needs one embedding width";
}

absl::Status FmTerm::Reserve(int batch) {
  return sum_.Reserve(backend_, static_cast<int64_t>(batch) * spec_.factor_dim);
}

void FmTerm::Forward(const TermInputs& in, float* logits) {
  backend_->FmForward(in.batch, spec_.num_slots, spec_.factor_dim,
                      in.pooled + spec_.linear_dim, EmbeddingLayout(spec_),
                      sum_.data(), logits);
}

void FmTerm::Backward(const TermInputs& in, const float* d_logits,
                      float* d_pooled, float* dense_grad) {
  backend_->FmBackward(in.batch, spec_.num_slots, spec_.factor_dim,
                       in.pooled + spec_.linear_dim, EmbeddingLayout(spec_),
                       sum_.data(), d_logits, d_pooled + spec_.linear_dim);
}

FwFmTerm::FwFmTerm(const ModelSpec& spec, Backend* backend)
    : spec_(spec), backend_(backend) {
  CHECK(spec_.has_fwfm);
  // Validation refuses FWFM tables of different dims.
  CHECK_GT(spec_.emb_dim, 0) << "FWFM needs one embedding width";
}

absl::Status FwFmTerm::Reserve(int batch) {
  return dots_.Reserve(backend_,
                       static_cast<int64_t>(batch) * spec_.fwfm.num_pairs());
}

void FwFmTerm::Forward(const TermInputs& in, float* logits) {
  backend_->FwFmForward(in.batch, spec_.num_slots, spec_.factor_dim,
                        in.pooled + spec_.linear_dim, EmbeddingLayout(spec_),
                        in.params + spec_.fwfm.offset, dots_.data(), logits);
}

void FwFmTerm::Backward(const TermInputs& in, const float* d_logits,
                        float* d_pooled, float* dense_grad) {
  backend_->FwFmBackward(
      in.batch, spec_.num_slots, spec_.factor_dim, in.pooled + spec_.linear_dim,
      EmbeddingLayout(spec_), in.params + spec_.fwfm.offset, dots_.data(),
      d_logits, d_pooled + spec_.linear_dim, dense_grad + spec_.fwfm.offset);
}

}  // namespace ps
