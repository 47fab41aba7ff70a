// The first-order (linear) and FM second-order terms of a model's logit
// (see common/model_spec.h and worker/model/model_term.h).
//
// LinearTerm (LR, FM, FWFM, WIDE_DEEP, DEEPFM): bias + the pooled linear
// weights (element 0 of each row) of spec.wide_slots + spec.linear over the
// dense features. FmTerm (FM, DEEPFM): the sum over slot pairs of the dot
// products of their pooled embeddings (row elements 1..emb_dim-1), computed in
// O(slots x dim) by Backend::FmForward. FwFmTerm (FWFM): the sum over slot
// pairs of their dot products, each times the pair's dense weight, in
// O(slots^2 x dim) by Backend::FwFmForward. Used by one thread at a time.
#ifndef PS_WORKER_MODEL_MODEL_LINEAR_H_
#define PS_WORKER_MODEL_MODEL_LINEAR_H_

#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "kernels/backend.h"
#include "worker/model/model_buffer.h"
#include "worker/model/model_term.h"

namespace ps {

class LinearTerm final : public ModelTerm {
 public:
  // REQUIRES: spec.has_linear, spec.linear_dim == 1, every wide slot <
  // spec.num_slots. `backend` is not owned.
  LinearTerm(const ModelSpec& spec, Backend* backend);

  // The first call uploads the selector (one copy per model).
  absl::Status Reserve(int batch) override;
  void Forward(const TermInputs& in, float* logits) override;
  void Backward(const TermInputs& in, const float* d_logits, float* d_pooled,
                float* dense_grad) override;

 private:
  const ModelSpec spec_;
  Backend* const backend_;
  // pooled_width: 1 at the linear weight of every wide slot, else 0,
  // so pooled (batch x slots*dim) times it sums the wide slots' weights.
  // Built on the host (and kept: the upload reads it until the backend's
  // next Synchronize), copied to the backend once.
  const std::vector<float> host_selector_;
  BackendArray<float> selector_;
  bool uploaded_ = false;
};

class FmTerm final : public ModelTerm {
 public:
  // REQUIRES: spec.has_fm. `backend` is not owned.
  FmTerm(const ModelSpec& spec, Backend* backend);

  absl::Status Reserve(int batch) override;
  void Forward(const TermInputs& in, float* logits) override;
  void Backward(const TermInputs& in, const float* d_logits, float* d_pooled,
                float* dense_grad) override;

 private:
  const ModelSpec spec_;
  Backend* const backend_;
  BackendArray<float> sum_;  // batch x factor_dim: the slots' embedding sums
};

class FwFmTerm final : public ModelTerm {
 public:
  // REQUIRES: spec.has_fwfm. `backend` is not owned.
  FwFmTerm(const ModelSpec& spec, Backend* backend);

  absl::Status Reserve(int batch) override;
  void Forward(const TermInputs& in, float* logits) override;
  void Backward(const TermInputs& in, const float* d_logits, float* d_pooled,
                float* dense_grad) override;

 private:
  const ModelSpec spec_;
  Backend* const backend_;
  BackendArray<float> dots_;  // batch x pairs: the pairs' dot products
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_MODEL_LINEAR_H_
