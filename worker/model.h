// A CTR model (LR, DNN, FM, WIDE_DEEP, DEEPFM or DCN; see
// common/model_spec.h) computed with a Backend.
//
// Forward: every slot's rows are pooled (sum or mean) once into [slot 0 |
// slot 1 | ...] per example; the model's terms (worker/model_term.h: linear,
// FM second order, deep) each read the pooled rows and the dense features and
// add to the logit. Loss: sigmoid cross-entropy, averaged over the batch.
// Backward gives the gradient of that mean loss for the dense parameter
// vector and for every unique sparse row of the batch (merged per key). A
// Model owns scratch buffers and is used by one thread.
#ifndef PS_WORKER_MODEL_H_
#define PS_WORKER_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "kernels/backend.h"
#include "worker/batch.h"
#include "worker/model_term.h"

namespace ps {

struct StepResult {
  std::vector<float> probs;       // one per example
  double loss_sum = 0;            // sum (not mean) of per-example losses
  std::vector<float> dense_grad;  // spec.dense_size
  std::vector<float> row_grad;    // num_unique * emb_dim
};

class Model {
 public:
  // `backend` is not owned and must outlive the model.
  Model(const ModelSpec& spec, PoolMode pooling, Backend* backend);
  ~Model();

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelSpec& spec() const { return spec_; }

  // One forward and backward pass. `key_index` maps batch.keys to rows of
  // `rows` (num_unique x emb_dim, laid out as spec describes); `dense_params`
  // has spec.dense_size floats. InvalidArgument when the batch does not match
  // the spec (slot count, dense feature count, index out of range) or the
  // spec's row width does not suit its model.
  absl::Status TrainStep(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         int64_t num_unique, absl::Span<const float> rows,
                         absl::Span<const float> dense_params,
                         StepResult* result);

  // Forward only: result->probs and result->loss_sum; grads left empty.
  absl::Status Predict(const Batch& batch, absl::Span<const uint32_t> key_index,
                       int64_t num_unique, absl::Span<const float> rows,
                       absl::Span<const float> dense_params,
                       StepResult* result);

 private:
  absl::Status Forward(const Batch& batch, absl::Span<const uint32_t> key_index,
                       int64_t num_unique, absl::Span<const float> rows,
                       absl::Span<const float> dense_params,
                       StepResult* result);

  PoolArgs MakePoolArgs(const Batch& batch,
                        absl::Span<const uint32_t> key_index) const;

  const ModelSpec spec_;
  const PoolMode pooling_;
  Backend* const backend_;
  const std::vector<std::unique_ptr<ModelTerm>> terms_;
  // Scratch, reused across steps.
  std::vector<float> pooled_;    // batch x (num_slots * emb_dim)
  std::vector<float> d_pooled_;  // its gradient
  std::vector<float> logits_;
  std::vector<float> d_logits_;
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_H_
