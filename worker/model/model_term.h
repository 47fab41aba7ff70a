// One additive term of a CTR model's logit (see common/model_spec.h): the
// linear term (model_linear.h), the FM second-order term (model_linear.h) or
// the deep part (model_deep.h). A Model (model.h) pools the batch's sparse
// rows once and hands every term the same pooled input; the logit is the sum
// of the terms. A term reads the dense parameters it owns from the flat dense
// vector and keeps scratch buffers between Forward and Backward, so, like its
// Model, it is used by one thread at a time.
//
// Memory: every pointer a term is given or keeps is backend memory (from
// Backend::Allocate; device memory on a GPU), and a term touches it only
// through its backend's kernels, never on the host. Its scratch buffers are
// BackendArrays (model_buffer.h), sized by Reserve.
#ifndef PS_WORKER_MODEL_MODEL_TERM_H_
#define PS_WORKER_MODEL_MODEL_TERM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "kernels/backend.h"

namespace ps {

// What every term of one step reads: backend memory, not owned, valid during
// the call.
struct TermInputs {
  int batch = 0;
  // batch x pooled_width, row-major: float e of slot s's pooled row for
  // example i is pooled[i * pooled_width + slot_offset[s] + e]
  // (common/model_spec.h).
  const float* pooled = nullptr;
  const float* dense = nullptr;   // batch x num_dense dense features
  const float* params = nullptr;  // the flat dense parameter vector
  // A training step (Forward then Backward), as opposed to evaluation or
  // prediction: only then do training-only operations (dropout) run.
  bool train = false;
  // The step's seed of those operations' random draws.
  uint64_t seed = 0;
};

class ModelTerm {
 public:
  virtual ~ModelTerm() = default;

  // Makes room in the term's backend buffers for batches of up to `batch`
  // examples (and uploads its constants the first time). Errors are those of
  // Backend::Allocate. REQUIRES: before every Forward, with at least its
  // batch size.
  [[nodiscard]] virtual absl::Status Reserve(int batch) = 0;

  // Adds the term's value for every example to logits[0 .. in.batch) and
  // keeps what Backward needs.
  virtual void Forward(const TermInputs& in, float* logits) = 0;

  // REQUIRES: the last Forward call had the same inputs.
  // From d_logits (the loss's gradient by each logit): adds the gradient by
  // the pooled rows to d_pooled (laid out like in.pooled) and writes the
  // gradient by the term's own dense parameters into dense_grad (indexed
  // like in.params; entries of other terms are left untouched).
  virtual void Backward(const TermInputs& in, const float* d_logits,
                        float* d_pooled, float* dense_grad) = 0;
};

// The terms of `spec`'s model, in a fixed order. `backend` is not owned and
// must outlive them.
std::vector<std::unique_ptr<ModelTerm>> MakeModelTerms(const ModelSpec& spec,
                                                       Backend* backend);

}  // namespace ps

#endif  // PS_WORKER_MODEL_MODEL_TERM_H_
