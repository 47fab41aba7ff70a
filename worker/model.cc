#include "worker/model.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/model_deep.h"
#include "worker/model_linear.h"

namespace ps {

namespace {

std::string TypeName(ModelConfig::Type type) {
  return ModelConfig::Type_Name(type);
}

// The row width a spec's model needs: LR reads the linear weight alone, the
// others with a linear weight need an embedding after it.
absl::Status ValidateRowWidth(const ModelSpec& spec) {
  if (spec.type == ModelConfig::LR && spec.emb_dim != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LR model needs embeddings of dim 1, the spec has dim ", spec.emb_dim));
  }
  if (spec.type != ModelConfig::LR && spec.linear_dim == 1 &&
      spec.emb_dim < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        TypeName(spec.type),
        " model needs rows of dim >= 2 (1 linear weight + embedding), the "
        "spec has dim ",
        spec.emb_dim));
  }
  if (spec.emb_dim < 1 || spec.emb_dim != spec.linear_dim + spec.factor_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        TypeName(spec.type), " model spec has rows of dim ", spec.emb_dim,
        " but reads ", spec.linear_dim, " linear weight(s) + ", spec.factor_dim,
        " embedding floats"));
  }
  return absl::OkStatus();
}

// Checks that the batch and the parameters handed to a step fit the spec.
absl::Status ValidateStep(const ModelSpec& spec, const Batch& batch,
                          absl::Span<const uint32_t> key_index,
                          int64_t num_unique, absl::Span<const float> rows,
                          absl::Span<const float> dense_params) {
  const std::string model = TypeName(spec.type);
  RETURN_IF_ERROR(ValidateRowWidth(spec));
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

std::vector<std::unique_ptr<ModelTerm>> MakeModelTerms(const ModelSpec& spec,
                                                       Backend* backend) {
  std::vector<std::unique_ptr<ModelTerm>> terms;
  if (spec.has_linear) {
    terms.push_back(std::make_unique<LinearTerm>(spec, backend));
  }
  if (spec.has_fm) terms.push_back(std::make_unique<FmTerm>(spec, backend));
  if (spec.has_deep) terms.push_back(std::make_unique<DeepTerm>(spec, backend));
  return terms;
}

Model::Model(const ModelSpec& spec, PoolMode pooling, Backend* backend)
    : spec_(spec),
      pooling_(pooling),
      backend_(backend),
      terms_(MakeModelTerms(spec_, backend)) {
  CHECK(backend_ != nullptr);
  CHECK(!terms_.empty()) << "a model spec has at least one term";
}

Model::~Model() = default;

PoolArgs Model::MakePoolArgs(const Batch& batch,
                             absl::Span<const uint32_t> key_index) const {
  PoolArgs pool;
  pool.batch = batch.size();
  pool.num_slots = spec_.num_slots;
  pool.dim = spec_.emb_dim;
  pool.mode = pooling_;
  pool.offsets = batch.offsets.data();
  pool.index = key_index.data();
  return pool;
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

  const int pooled_width = spec_.num_slots * spec_.emb_dim;
  pooled_.resize(static_cast<size_t>(n) * pooled_width);
  backend_->PoolForward(MakePoolArgs(batch, key_index), rows.data(),
                        pooled_.data(), pooled_width);
  const TermInputs in{n, pooled_.data(), batch.dense.data(),
                      dense_params.data()};
  logits_.assign(n, 0.0f);
  for (const auto& term : terms_) term->Forward(in, logits_.data());
  d_logits_.resize(n);
  backend_->SigmoidCrossEntropy(
      n, logits_.data(), batch.labels.data(), 1.0f / static_cast<float>(n),
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

  const int pooled_width = spec_.num_slots * spec_.emb_dim;
  d_pooled_.assign(static_cast<size_t>(n) * pooled_width, 0.0f);
  const TermInputs in{n, pooled_.data(), batch.dense.data(),
                      dense_params.data()};
  for (const auto& term : terms_) {
    term->Backward(in, d_logits_.data(), d_pooled_.data(),
                   result->dense_grad.data());
  }
  backend_->PoolBackward(MakePoolArgs(batch, key_index), d_pooled_.data(),
                         pooled_width, num_unique, result->row_grad.data());
  return absl::OkStatus();
}

}  // namespace ps
