#include "worker/model/model_deep.h"

#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

namespace {

Activation ToBackend(ModelConfig::Activation activation) {
  switch (activation) {
    case ModelConfig::TANH:
      return Activation::kTanh;
    case ModelConfig::SIGMOID:
      return Activation::kSigmoid;
    default:
      return Activation::kRelu;
  }
}

}  // namespace

DeepTerm::DeepTerm(const ModelSpec& spec, Backend* backend)
    : spec_(spec),
      backend_(backend),
      activation_(ToBackend(spec.activation)),
      cross_(spec.cross, backend),
      acts_(spec.layers.size()),
      drops_(spec.dropout > 0 ? spec.layers.size() : 0),
      grads_(spec.layers.size()) {
  CHECK(spec_.has_deep);
  int x0_column = 0;
  for (const int slot : spec_.deep_slots) {
    CHECK(slot >= 0 && slot < spec_.num_slots) << "deep slot " << slot;
    const int width = SlotFactorWidth(spec_, slot);
    const int stride = spec_.slot_width[slot];
    const int pooled_column = spec_.slot_offset[slot] + spec_.linear_dim;
    SlotRun* last = runs_.empty() ? nullptr : &runs_.back();
    if (last != nullptr && last->width == width && last->stride == stride &&
        last->pooled_column + last->length * stride == pooled_column) {
      ++last->length;
    } else {
      runs_.push_back(SlotRun{x0_column, pooled_column, stride, width, 1});
    }
    x0_column += width;
  }
  CHECK_EQ(x0_column + spec_.num_dense, spec_.input_width);
}

absl::Status DeepTerm::Reserve(int batch) {
  const int64_t n = batch;
  RETURN_IF_ERROR(x0_.Reserve(backend_, n * spec_.input_width));
  RETURN_IF_ERROR(d_x0_.Reserve(backend_, n * spec_.input_width));
  for (size_t l = 0; l < spec_.layers.size(); ++l) {
    RETURN_IF_ERROR(acts_[l].Reserve(backend_, n * spec_.layers[l].out));
    RETURN_IF_ERROR(grads_[l].Reserve(backend_, n * spec_.layers[l].out));
  }
  for (size_t l = 0; l < drops_.size(); ++l) {
    RETURN_IF_ERROR(drops_[l].Reserve(backend_, n * spec_.layers[l].out));
  }
  if (cross_.num_layers() > 0) {
    RETURN_IF_ERROR(d_cross_.Reserve(backend_, n * spec_.input_width));
  }
  return cross_.Reserve(batch);
}

void DeepTerm::GatherInput(const TermInputs& in) {
  const int n = in.batch;
  const int width = spec_.input_width;
  for (const SlotRun& run : runs_) {
    backend_->CopyBlocks(
        n, run.length, run.width, in.pooled + run.pooled_column,
        BlockLayout{spec_.pooled_width, run.stride}, x0_.data() + run.x0_column,
        BlockLayout{width, run.width}, false);
  }
  if (spec_.num_dense > 0) {
    const int at = width - spec_.num_dense;
    backend_->CopyBlocks(n, 1, spec_.num_dense, in.dense,
                         BlockLayout{spec_.num_dense, 0}, x0_.data() + at,
                         BlockLayout{width, 0}, false);
  }
}

void DeepTerm::ScatterInputGrad(int batch, float* d_pooled) {
  for (const SlotRun& run : runs_) {
    backend_->CopyBlocks(
        batch, run.length, run.width, d_x0_.data() + run.x0_column,
        BlockLayout{spec_.input_width, run.width}, d_pooled + run.pooled_column,
        BlockLayout{spec_.pooled_width, run.stride}, true);
  }
}

const float* DeepTerm::HiddenOut(size_t l) const {
  return dropped_ ? drops_[l].data() : acts_[l].data();
}

uint64_t DeepTerm::LayerSeed(size_t l) const {
  return DropoutHash(seed_, static_cast<uint64_t>(l));
}

std::vector<DeepTerm::OutputInput> DeepTerm::OutputInputs() const {
  std::vector<OutputInput> inputs;
  int64_t offset = spec_.output.weight_offset;
  if (cross_.num_layers() > 0) {
    inputs.push_back(
        {OutputInput::Source::kCross, cross_out_, spec_.input_width, offset});
    offset += spec_.input_width;
  }
  if (!spec_.layers.empty()) {
    inputs.push_back({OutputInput::Source::kHidden,
                      HiddenOut(spec_.layers.size() - 1),
                      spec_.layers.back().out, offset});
  } else if (cross_.num_layers() == 0) {
    inputs.push_back(
        {OutputInput::Source::kX0, x0_.data(), spec_.input_width, offset});
  }
  return inputs;
}

void DeepTerm::Forward(const TermInputs& in, float* logits) {
  const int n = in.batch;
  dropped_ = in.train && !drops_.empty();
  seed_ = in.seed;
  GatherInput(in);
  if (cross_.num_layers() > 0) {
    cross_out_ = cross_.Forward(n, x0_.data(), in.params);
  }
  const float* x = x0_.data();
  for (size_t l = 0; l < spec_.layers.size(); ++l) {
    const LayerSpec& layer = spec_.layers[l];
    backend_->Gemm(false, false, n, layer.out, layer.in, 1.0f, x,
                   in.params + layer.weight_offset, 0.0f, acts_[l].data());
    backend_->BiasActivation(n, layer.out, in.params + layer.bias_offset,
                             activation_, acts_[l].data());
    if (dropped_) {
      backend_->Dropout(static_cast<int64_t>(n) * layer.out, spec_.dropout,
                        LayerSeed(l), acts_[l].data(), drops_[l].data());
    }
    x = HiddenOut(l);
  }
  for (const OutputInput& input : OutputInputs()) {
    backend_->Gemm(false, false, n, 1, input.width, 1.0f, input.x,
                   in.params + input.weight_offset, 1.0f, logits);
  }
  backend_->BiasActivation(n, 1, in.params + spec_.output.bias_offset,
                           Activation::kNone, logits);
}

void DeepTerm::Backward(const TermInputs& in, const float* d_logits,
                        float* d_pooled, float* dense_grad) {
  const int n = in.batch;
  const int width = spec_.input_width;
  const int num_layers = static_cast<int>(spec_.layers.size());
  backend_->SetZero(static_cast<int64_t>(n) * width * sizeof(float),
                    d_x0_.data());
  backend_->BiasGrad(n, 1, d_logits, dense_grad + spec_.output.bias_offset);
  for (const OutputInput& input : OutputInputs()) {
    // dW = x^T (width x n) * d_logits (n x 1); dx = d_logits * W^T.
    backend_->Gemm(true, false, input.width, 1, n, 1.0f, input.x, d_logits,
                   0.0f, dense_grad + input.weight_offset);
    float* d_x = nullptr;
    switch (input.source) {
      case OutputInput::Source::kCross:
        d_x = d_cross_.data();
        break;
      case OutputInput::Source::kHidden:
        d_x = grads_.back().data();
        break;
      case OutputInput::Source::kX0:
        d_x = d_x0_.data();  // nothing else reaches x0 then
        break;
    }
    backend_->Gemm(false, false, n, input.width, 1, 1.0f, d_logits,
                   in.params + input.weight_offset, 0.0f, d_x);
  }
  for (int l = num_layers - 1; l >= 0; --l) {
    const LayerSpec& layer = spec_.layers[l];
    float* d_out = grads_[l].data();
    // d_out is the gradient by the dropped output: through the same mask
    // (and scale) it becomes the gradient by the activation's output.
    if (dropped_) {
      backend_->Dropout(static_cast<int64_t>(n) * layer.out, spec_.dropout,
                        LayerSeed(l), d_out, d_out);
    }
    backend_->ActivationBackward(static_cast<int64_t>(n) * layer.out,
                                 activation_, acts_[l].data(), d_out);
    const float* x = l == 0 ? x0_.data() : HiddenOut(l - 1);
    // dW = x^T (in x n) * d_out (n x out); db = column sums of d_out.
    backend_->Gemm(true, false, layer.in, layer.out, n, 1.0f, x, d_out, 0.0f,
                   dense_grad + layer.weight_offset);
    backend_->BiasGrad(n, layer.out, d_out, dense_grad + layer.bias_offset);
    // dx = d_out (n x out) * W^T (out x in); layer 0 adds into d_x0.
    float* d_x;
    if (l == 0) {
      d_x = d_x0_.data();
    } else {
      d_x = grads_[l - 1].data();
    }
    backend_->Gemm(false, true, n, layer.in, layer.out, 1.0f, d_out,
                   in.params + layer.weight_offset, l == 0 ? 1.0f : 0.0f, d_x);
  }
  if (cross_.num_layers() > 0) {
    cross_.Backward(n, x0_.data(), in.params, d_cross_.data(), d_x0_.data(),
                    dense_grad);
  }
  ScatterInputGrad(n, d_pooled);
}

}  // namespace ps
