// The deep part of DNN, WIDE_DEEP, DEEPFM and DCN (see common/model_spec.h
// and worker/model/model_term.h): x0 = [pooled embeddings of spec.deep_slots,
// in order | dense features]; optionally a cross network over x0 (DCN,
// model_cross.h) and hidden layers over x0 (spec.layers, with the model's
// activation); spec.output maps [x_L (with cross layers) | last hidden layer
// (with hidden layers)] -- or x0 when there are neither -- to the term's
// logit. With spec.dropout > 0, a training step (TermInputs::train) drops
// hidden outputs after their activation (Backend::Dropout; the masks drawn
// from TermInputs::seed and the layer) and Backward passes the gradient
// through the same masks; other steps use the layers as they are. Used by
// one thread at a time.
#ifndef PS_WORKER_MODEL_MODEL_DEEP_H_
#define PS_WORKER_MODEL_MODEL_DEEP_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "kernels/backend.h"
#include "worker/model/model_buffer.h"
#include "worker/model/model_cross.h"
#include "worker/model/model_term.h"

namespace ps {

class DeepTerm final : public ModelTerm {
 public:
  // REQUIRES: spec.has_deep, every deep slot < spec.num_slots. `backend` is
  // not owned.
  DeepTerm(const ModelSpec& spec, Backend* backend);

  absl::Status Reserve(int batch) override;
  void Forward(const TermInputs& in, float* logits) override;
  void Backward(const TermInputs& in, const float* d_logits, float* d_pooled,
                float* dense_grad) override;

 private:
  // Consecutive slots that land next to each other in x0: slots
  // first_slot .. first_slot + length - 1 go to embedding blocks
  // first_block .. of x0. One CopyBlocks call each.
  // Deep slots whose embeddings lie at one stride in the pooled row and
  // next to each other in x0: one CopyBlocks each way.
  struct SlotRun {
    int x0_column = 0;      // of its first embedding float in x0
    int pooled_column = 0;  // of its first embedding float in a pooled row
    int stride = 0;         // pooled floats from one slot to the next
    int width = 0;          // embedding floats per slot
    int length = 0;         // slots
  };
  // A slice of the output layer: input x (batch x width) times the weights
  // at weight_offset.
  struct OutputInput {
    enum class Source { kCross, kHidden, kX0 };
    Source source = Source::kX0;
    const float* x = nullptr;
    int width = 0;
    int64_t weight_offset = 0;
  };

  void GatherInput(const TermInputs& in);
  void ScatterInputGrad(int batch, float* d_pooled);
  // The output layer's inputs after the last Forward.
  std::vector<OutputInput> OutputInputs() const;
  // Hidden layer l's output as the next layer read it in the last Forward:
  // after dropout when it ran.
  const float* HiddenOut(size_t l) const;
  // The dropout mask seed of hidden layer l in the last Forward.
  uint64_t LayerSeed(size_t l) const;

  const ModelSpec spec_;
  Backend* const backend_;
  const Activation activation_;
  std::vector<SlotRun> runs_;
  CrossNet cross_;
  // Scratch of the last Forward / Backward, in backend memory.
  BackendArray<float> x0_;                 // batch x input_width
  const float* cross_out_ = nullptr;       // x_L, owned by cross_
  std::vector<BackendArray<float>> acts_;  // hidden layer outputs
  // acts_ after dropout (spec.dropout > 0 only), and whether the last
  // Forward dropped (a training step) with which step seed.
  std::vector<BackendArray<float>> drops_;
  bool dropped_ = false;
  uint64_t seed_ = 0;
  std::vector<BackendArray<float>> grads_;  // gradients by acts_
  BackendArray<float> d_x0_;                // gradient by x0
  BackendArray<float> d_cross_;             // gradient by x_L
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_MODEL_DEEP_H_
