#include "worker/model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

namespace {

const char* TypeName(ModelConfig::Type type) {
  return type == ModelConfig::LR ? "LR" : "DNN";
}

// Checks that the batch and the parameters handed to a step fit the spec.
absl::Status ValidateStep(const ModelSpec& spec, const Batch& batch,
                          absl::Span<const uint32_t> key_index,
                          int64_t num_unique, absl::Span<const float> rows,
                          absl::Span<const float> dense_params) {
  const char* model = TypeName(spec.type);
  if (spec.type == ModelConfig::LR && spec.emb_dim != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LR model needs embeddings of dim 1, the spec has dim ", spec.emb_dim));
  }
  if (batch.num_slots != spec.num_slots) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", batch.num_slots, " slots per example but ",
                     model, " model expects ", spec.num_slots));
  }
  if (batch.num_dense != spec.num_dense) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch has ", batch.num_dense, " dense features per example but ",
        model, " model expects ", spec.num_dense));
  }
  const int64_t n = batch.size();
  if (static_cast<int64_t>(batch.dense.size()) != n * batch.num_dense) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch dense values: expected ", n * batch.num_dense, " (",
                     n, " examples x ", batch.num_dense, " features), got ",
                     batch.dense.size()));
  }
  if (static_cast<int64_t>(batch.offsets.size()) != n * batch.num_slots + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch offsets: expected ", n * batch.num_slots + 1, " (",
                     n, " examples x ", batch.num_slots, " slots + 1), got ",
                     batch.offsets.size()));
  }
  if (batch.offsets.front() != 0 || batch.offsets.back() != batch.keys.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch offsets must run from 0 to the key count ",
                     batch.keys.size(), ", they run from ",
                     batch.offsets.front(), " to ", batch.offsets.back()));
  }
  for (size_t i = 1; i < batch.offsets.size(); ++i) {
    if (batch.offsets[i] < batch.offsets[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch offsets decrease at entry ", i, " (",
                       batch.offsets[i - 1], " then ", batch.offsets[i], ")"));
    }
  }
  if (key_index.size() != batch.keys.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key_index has ", key_index.size(), " entries but the batch has ",
        batch.keys.size(), " keys"));
  }
  for (size_t i = 0; i < key_index.size(); ++i) {
    if (key_index[i] >= num_unique) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key_index[", i, "] = ", key_index[i], " is out of range: there are ",
          num_unique, " unique rows"));
    }
  }
  if (static_cast<int64_t>(rows.size()) != num_unique * spec.emb_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows has ", rows.size(), " floats but ", num_unique,
                     " unique rows of dim ", spec.emb_dim, " need ",
                     num_unique * spec.emb_dim));
  }
  if (static_cast<int64_t>(dense_params.size()) != spec.dense_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense_params has ", dense_params.size(), " floats but ",
                     model, " model has ", spec.dense_size));
  }
  return absl::OkStatus();
}

}  // namespace

Model::Model(const ModelSpec& spec, PoolMode pooling, Backend* backend)
    : spec_(spec),
      pooling_(pooling),
      backend_(backend),
      acts_(spec.layers.size() + 1),
      grads_(spec.layers.size() + 1) {
  CHECK(backend_ != nullptr);
  CHECK(!spec_.layers.empty()) << "a model spec has at least one layer";
}

absl::Status Model::Forward(const Batch& batch,
                            absl::Span<const uint32_t> key_index,
                            int64_t num_unique, absl::Span<const float> rows,
                            absl::Span<const float> dense_params,
                            StepResult* result) {
  CHECK(result != nullptr);
  RETURN_IF_ERROR(
      ValidateStep(spec_, batch, key_index, num_unique, rows, dense_params));
  const int n = batch.size();
  result->probs.assign(n, 0.0f);
  result->loss_sum = 0;
  result->dense_grad.clear();
  result->row_grad.clear();
  if (n == 0) return absl::OkStatus();

  PoolArgs pool;
  pool.batch = n;
  pool.num_slots = spec_.num_slots;
  pool.dim = spec_.emb_dim;
  pool.mode = pooling_;
  pool.offsets = batch.offsets.data();
  pool.index = key_index.data();

  const float* params = dense_params.data();
  const int num_layers = static_cast<int>(spec_.layers.size());
  if (spec_.type == ModelConfig::LR) {
    // logit = (dense . W + b) + sum over slots of the pooled weight, the slot
    // sum done as pooled (n x slots) times a column of ones.
    const LayerSpec& layer = spec_.layers[0];
    pooled_.resize(static_cast<size_t>(n) * spec_.num_slots);
    backend_->PoolForward(pool, rows.data(), pooled_.data(), spec_.num_slots);
    acts_[0].assign(batch.dense.begin(), batch.dense.end());
    acts_[1].resize(n);
    backend_->Gemm(false, false, n, 1, layer.in, 1.0f, acts_[0].data(),
                   params + layer.weight_offset, 0.0f, acts_[1].data());
    const std::vector<float> ones(spec_.num_slots, 1.0f);
    backend_->Gemm(false, false, n, 1, spec_.num_slots, 1.0f, pooled_.data(),
                   ones.data(), 1.0f, acts_[1].data());
    backend_->BiasActivation(n, 1, params + layer.bias_offset,
                             Activation::kNone, acts_[1].data());
  } else {
    // x = [pooled slots | dense features].
    const int width = spec_.input_width;
    const int pooled_width = spec_.num_slots * spec_.emb_dim;
    acts_[0].resize(static_cast<size_t>(n) * width);
    backend_->PoolForward(pool, rows.data(), acts_[0].data(), width);
    for (int i = 0; i < n; ++i) {
      std::copy_n(
          batch.dense.data() + static_cast<int64_t>(i) * spec_.num_dense,
          spec_.num_dense,
          acts_[0].data() + static_cast<int64_t>(i) * width + pooled_width);
    }
    for (int l = 0; l < num_layers; ++l) {
      const LayerSpec& layer = spec_.layers[l];
      acts_[l + 1].resize(static_cast<size_t>(n) * layer.out);
      backend_->Gemm(false, false, n, layer.out, layer.in, 1.0f,
                     acts_[l].data(), params + layer.weight_offset, 0.0f,
                     acts_[l + 1].data());
      backend_->BiasActivation(
          n, layer.out, params + layer.bias_offset,
          layer.relu ? Activation::kRelu : Activation::kNone,
          acts_[l + 1].data());
    }
  }
  // The last layer has one output: its activations are the logits.
  const std::vector<float>& logits = acts_[num_layers];
  d_logits_.resize(n);
  backend_->SigmoidCrossEntropy(
      n, logits.data(), batch.labels.data(), 1.0f / static_cast<float>(n),
      result->probs.data(), d_logits_.data(), &result->loss_sum);
  return absl::OkStatus();
}

absl::Status Model::Predict(const Batch& batch,
                            absl::Span<const uint32_t> key_index,
                            int64_t num_unique, absl::Span<const float> rows,
                            absl::Span<const float> dense_params,
                            StepResult* result) {
  return Forward(batch, key_index, num_unique, rows, dense_params, result);
}

absl::Status Model::TrainStep(const Batch& batch,
                              absl::Span<const uint32_t> key_index,
                              int64_t num_unique, absl::Span<const float> rows,
                              absl::Span<const float> dense_params,
                              StepResult* result) {
  RETURN_IF_ERROR(
      Forward(batch, key_index, num_unique, rows, dense_params, result));
  result->dense_grad.assign(spec_.dense_size, 0.0f);
  result->row_grad.assign(num_unique * spec_.emb_dim, 0.0f);
  const int n = batch.size();
  if (n == 0) return absl::OkStatus();

  PoolArgs pool;
  pool.batch = n;
  pool.num_slots = spec_.num_slots;
  pool.dim = spec_.emb_dim;
  pool.mode = pooling_;
  pool.offsets = batch.offsets.data();
  pool.index = key_index.data();

  const float* params = dense_params.data();
  float* dense_grad = result->dense_grad.data();
  const int num_layers = static_cast<int>(spec_.layers.size());
  if (spec_.type == ModelConfig::LR) {
    const LayerSpec& layer = spec_.layers[0];
    // dW = dense^T (in x n) * d_logits (n x 1); db = sum of d_logits.
    backend_->Gemm(true, false, layer.in, 1, n, 1.0f, acts_[0].data(),
                   d_logits_.data(), 0.0f, dense_grad + layer.weight_offset);
    backend_->BiasGrad(n, 1, d_logits_.data(), dense_grad + layer.bias_offset);
    // Every slot's pooled weight gets its example's d_logit: the outer
    // product d_logits (n x 1) * ones (1 x slots).
    const std::vector<float> ones(spec_.num_slots, 1.0f);
    grads_[0].resize(static_cast<size_t>(n) * spec_.num_slots);
    backend_->Gemm(false, false, n, spec_.num_slots, 1, 1.0f, d_logits_.data(),
                   ones.data(), 0.0f, grads_[0].data());
    backend_->PoolBackward(pool, grads_[0].data(), spec_.num_slots, num_unique,
                           result->row_grad.data());
    return absl::OkStatus();
  }

  grads_[num_layers] = d_logits_;
  for (int l = num_layers - 1; l >= 0; --l) {
    const LayerSpec& layer = spec_.layers[l];
    float* d_out = grads_[l + 1].data();
    if (layer.relu) {
      backend_->ActivationBackward(static_cast<int64_t>(n) * layer.out,
                                   Activation::kRelu, acts_[l + 1].data(),
                                   d_out);
    }
    // dW = x^T (in x n) * d_out (n x out); db = column sums of d_out.
    backend_->Gemm(true, false, layer.in, layer.out, n, 1.0f, acts_[l].data(),
                   d_out, 0.0f, dense_grad + layer.weight_offset);
    backend_->BiasGrad(n, layer.out, d_out, dense_grad + layer.bias_offset);
    // dx = d_out (n x out) * W^T (out x in).
    grads_[l].resize(static_cast<size_t>(n) * layer.in);
    backend_->Gemm(false, true, n, layer.in, layer.out, 1.0f, d_out,
                   params + layer.weight_offset, 0.0f, grads_[l].data());
  }
  backend_->PoolBackward(pool, grads_[0].data(), spec_.input_width, num_unique,
                         result->row_grad.data());
  return absl::OkStatus();
}

}  // namespace ps
