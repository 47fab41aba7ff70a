// A CTR model (LR or DNN, see common/model_spec.h) computed with a Backend.
//
// Forward: every slot's rows are pooled (sum or mean) into an input row
// [slot 0 | slot 1 | ... | dense features]; DNN runs it through the MLP
// (ReLU hidden layers, one output); LR sums the pooled weights (dim 1) and
// adds a linear layer over the dense features. Loss: sigmoid cross-entropy,
// averaged over the batch. Backward gives the gradient of that mean loss for
// the dense parameter vector and for every unique sparse row of the batch
// (merged per key). A Model owns scratch buffers and is used by one thread.
#ifndef PS_WORKER_MODEL_H_
#define PS_WORKER_MODEL_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "kernels/backend.h"
#include "worker/batch.h"

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

  const ModelSpec& spec() const { return spec_; }

  // One forward and backward pass. `key_index` maps batch.keys to rows of
  // `rows` (num_unique x emb_dim); `dense_params` has spec.dense_size floats.
  // InvalidArgument when the batch does not match the spec (slot count,
  // dense feature count, index out of range).
  absl::Status TrainStep(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         int64_t num_unique, absl::Span<const float> rows,
                         absl::Span<const float> dense_params,
                         StepResult* result);

  // Forward only: result->probs and result->loss_sum; grads left empty.
  absl::Status Predict(const Batch& batch,
                       absl::Span<const uint32_t> key_index,
                       int64_t num_unique, absl::Span<const float> rows,
                       absl::Span<const float> dense_params,
                       StepResult* result);

 private:
  absl::Status Forward(const Batch& batch, absl::Span<const uint32_t> key_index,
                       int64_t num_unique, absl::Span<const float> rows,
                       absl::Span<const float> dense_params,
                       StepResult* result);

  const ModelSpec spec_;
  const PoolMode pooling_;
  Backend* const backend_;
  // Scratch, reused across steps: activations per layer (input first),
  // their gradients, logits.
  std::vector<std::vector<float>> acts_;
  std::vector<std::vector<float>> grads_;
  std::vector<float> pooled_;  // LR: batch x num_slots
  std::vector<float> logits_;
  std::vector<float> d_logits_;
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_H_
