#include "worker/model_linear.h"

#include "glog/logging.h"

namespace ps {

LinearTerm::LinearTerm(const ModelSpec& spec, Backend* backend)
    : spec_(spec),
      backend_(backend),
      selector_(static_cast<size_t>(spec.num_slots) * spec.emb_dim, 0.0f) {
  CHECK(spec_.has_linear && spec_.linear_dim == 1);
  for (int slot : spec_.wide_slots) {
    CHECK(slot >= 0 && slot < spec_.num_slots) << "wide slot " << slot;
    selector_[static_cast<size_t>(slot) * spec_.emb_dim] = 1.0f;
  }
}

void LinearTerm::Forward(const TermInputs& in, float* logits) {
  const int n = in.batch;
  const int pooled_width = spec_.num_slots * spec_.emb_dim;
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
  const int pooled_width = spec_.num_slots * spec_.emb_dim;
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
}

// The embeddings inside the pooled rows: one block per slot, after the
// slot's linear weight.
BlockLayout FmTerm::Layout() const {
  return BlockLayout{spec_.num_slots * spec_.emb_dim, spec_.emb_dim};
}

void FmTerm::Forward(const TermInputs& in, float* logits) {
  sum_.resize(static_cast<size_t>(in.batch) * spec_.factor_dim);
  backend_->FmForward(in.batch, spec_.num_slots, spec_.factor_dim,
                      in.pooled + spec_.linear_dim, Layout(), sum_.data(),
                      logits);
}

void FmTerm::Backward(const TermInputs& in, const float* d_logits,
                      float* d_pooled, float* dense_grad) {
  backend_->FmBackward(in.batch, spec_.num_slots, spec_.factor_dim,
                       in.pooled + spec_.linear_dim, Layout(), sum_.data(),
                       d_logits, d_pooled + spec_.linear_dim);
}

}  // namespace ps
