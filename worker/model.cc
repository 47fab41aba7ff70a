#include "worker/model.h"

#include <cstring>
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

// Checks that the batch and the rows handed to a step fit the spec.
absl::Status ValidateStep(const ModelSpec& spec, const Batch& batch,
                          absl::Span<const uint32_t> key_index,
                          int64_t num_unique, absl::Span<const float> rows) {
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
  return absl::OkStatus();
}

// The parts of a step's upload start at multiples of 64 bytes.
constexpr int64_t kAlignWords = 16;

int64_t AlignWords(int64_t words) {
  return (words + kAlignWords - 1) / kAlignWords * kAlignWords;
}

// Copies `count` 4-byte values to words + at.
template <typename T>
void Pack(const T* values, int64_t count, uint32_t* words, int64_t at) {
  static_assert(sizeof(T) == sizeof(uint32_t));
  if (count > 0) std::memcpy(words + at, values, count * sizeof(T));
}

// A download of `count` T into host memory; none for zero.
template <typename T>
void Download(Backend* backend, const T* src, int64_t count, T* host) {
  if (count > 0) backend->CopyToHost(src, count * sizeof(T), host);
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

absl::Status Model::SetDenseParams(absl::Span<const float> dense_params) {
  if (static_cast<int64_t>(dense_params.size()) != spec_.dense_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dense_params has ", dense_params.size(), " floats but ",
        TypeName(spec_.type), " model has ", spec_.dense_size));
  }
  has_params_ = false;
  RETURN_IF_ERROR(params_.Reserve(backend_, spec_.dense_size));
  backend_->CopyToBackend(dense_params.data(),
                          spec_.dense_size * sizeof(float), params_.data());
  // The caller's span may change once we return: wait for the copy.
  RETURN_IF_ERROR(backend_->Synchronize());
  has_params_ = true;
  return absl::OkStatus();
}

Model::InputLayout Model::LayoutInputs(const Batch& batch,
                                       int64_t num_unique) const {
  const int64_t n = batch.size();
  InputLayout layout;
  layout.offsets = 0;
  layout.index = AlignWords(layout.offsets + n * spec_.num_slots + 1);
  layout.labels =
      AlignWords(layout.index + static_cast<int64_t>(batch.keys.size()));
  layout.dense = AlignWords(layout.labels + n);
  layout.rows = AlignWords(layout.dense + n * spec_.num_dense);
  layout.words = layout.rows + num_unique * spec_.emb_dim;
  return layout;
}

absl::Status Model::Reserve(int n, int64_t num_unique, bool train,
                            const InputLayout& layout) {
  const int64_t pooled = static_cast<int64_t>(n) * spec_.num_slots *
                         spec_.emb_dim;
  RETURN_IF_ERROR(staged_.Reserve(backend_, layout.words));
  RETURN_IF_ERROR(inputs_.Reserve(backend_, layout.words));
  RETURN_IF_ERROR(pooled_.Reserve(backend_, pooled));
  RETURN_IF_ERROR(logits_.Reserve(backend_, n));
  RETURN_IF_ERROR(d_logits_.Reserve(backend_, n));
  RETURN_IF_ERROR(probs_.Reserve(backend_, n));
  RETURN_IF_ERROR(loss_sum_.Reserve(backend_, 1));
  if (train) {
    RETURN_IF_ERROR(d_pooled_.Reserve(backend_, pooled));
    RETURN_IF_ERROR(dense_grad_.Reserve(backend_, spec_.dense_size));
    RETURN_IF_ERROR(row_grad_.Reserve(backend_, num_unique * spec_.emb_dim));
  }
  for (const auto& term : terms_) RETURN_IF_ERROR(term->Reserve(n));
  return absl::OkStatus();
}

void Model::UploadInputs(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         absl::Span<const float> rows,
                         const InputLayout& layout) {
  uint32_t* words = staged_.data();
  Pack(batch.offsets.data(), batch.offsets.size(), words, layout.offsets);
  Pack(key_index.data(), key_index.size(), words, layout.index);
  Pack(batch.labels.data(), batch.labels.size(), words, layout.labels);
  Pack(batch.dense.data(), batch.dense.size(), words, layout.dense);
  Pack(rows.data(), rows.size(), words, layout.rows);
  // staged_ stays unchanged until the Synchronize that ends the step.
  backend_->CopyToBackend(words, layout.words * sizeof(uint32_t),
                          inputs_.data());
}

const float* Model::InputFloats(int64_t at) const {
  return reinterpret_cast<const float*>(inputs_.data() + at);
}

PoolArgs Model::MakePoolArgs(const Batch& batch,
                             const InputLayout& layout) const {
  PoolArgs pool;
  pool.batch = batch.size();
  pool.num_slots = spec_.num_slots;
  pool.dim = spec_.emb_dim;
  pool.mode = pooling_;
  pool.offsets = inputs_.data() + layout.offsets;
  pool.index = inputs_.data() + layout.index;
  pool.num_keys = static_cast<int64_t>(batch.keys.size());
  return pool;
}

absl::Status Model::Run(const Batch& batch,
                        absl::Span<const uint32_t> key_index,
                        int64_t num_unique, absl::Span<const float> rows,
                        bool train, StepResult* result) {
  const int n = batch.size();
  result->probs.resize(n);
  result->loss_sum = 0;
  result->dense_grad.clear();
  result->row_grad.clear();
  if (n == 0) {
    if (train) {
      result->dense_grad.assign(spec_.dense_size, 0.0f);
      result->row_grad.assign(num_unique * spec_.emb_dim, 0.0f);
    }
    return absl::OkStatus();
  }
  if (!has_params_) {
    return absl::FailedPreconditionError(
        absl::StrCat(TypeName(spec_.type),
                     " model has no dense parameters: call SetDenseParams "
                     "before the first step"));
  }
  const InputLayout layout = LayoutInputs(batch, num_unique);
  RETURN_IF_ERROR(Reserve(n, num_unique, train, layout));
  UploadInputs(batch, key_index, rows, layout);

  // Forward.
  const int pooled_width = spec_.num_slots * spec_.emb_dim;
  const PoolArgs pool = MakePoolArgs(batch, layout);
  backend_->PoolForward(pool, InputFloats(layout.rows), pooled_.data(),
                        pooled_width);
  const TermInputs in{n, pooled_.data(), InputFloats(layout.dense),
                      params_.data()};
  backend_->SetZero(n * sizeof(float), logits_.data());
  for (const auto& term : terms_) term->Forward(in, logits_.data());
  backend_->SigmoidCrossEntropy(n, logits_.data(), InputFloats(layout.labels),
                                1.0f / static_cast<float>(n), probs_.data(),
                                d_logits_.data(), loss_sum_.data());
  Download(backend_, probs_.data(), n, result->probs.data());
  Download(backend_, loss_sum_.data(), 1, &result->loss_sum);

  if (train) {
    // Backward.
    result->dense_grad.resize(spec_.dense_size);
    result->row_grad.resize(num_unique * spec_.emb_dim);
    backend_->SetZero(spec_.dense_size * sizeof(float), dense_grad_.data());
    backend_->SetZero(static_cast<int64_t>(n) * pooled_width * sizeof(float),
                      d_pooled_.data());
    for (const auto& term : terms_) {
      term->Backward(in, d_logits_.data(), d_pooled_.data(),
                     dense_grad_.data());
    }
    backend_->PoolBackward(pool, d_pooled_.data(), pooled_width, num_unique,
                           row_grad_.data());
    Download(backend_, dense_grad_.data(), spec_.dense_size,
             result->dense_grad.data());
    Download(backend_, row_grad_.data(), num_unique * spec_.emb_dim,
             result->row_grad.data());
  }
  // The downloads are complete, and the kernels' errors known, after this.
  return backend_->Synchronize();
}

absl::Status Model::TrainStep(const Batch& batch,
                              absl::Span<const uint32_t> key_index,
                              int64_t num_unique, absl::Span<const float> rows,
                              StepResult* result) {
  CHECK(result != nullptr);
  RETURN_IF_ERROR(ValidateStep(spec_, batch, key_index, num_unique, rows));
  return Run(batch, key_index, num_unique, rows, /*train=*/true, result);
}

absl::Status Model::Predict(const Batch& batch,
                            absl::Span<const uint32_t> key_index,
                            int64_t num_unique, absl::Span<const float> rows,
                            StepResult* result) {
  CHECK(result != nullptr);
  RETURN_IF_ERROR(ValidateStep(spec_, batch, key_index, num_unique, rows));
  return Run(batch, key_index, num_unique, rows, /*train=*/false, result);
}

absl::Status Model::TrainStep(const Batch& batch,
                              absl::Span<const uint32_t> key_index,
                              int64_t num_unique, absl::Span<const float> rows,
                              absl::Span<const float> dense_params,
                              StepResult* result) {
  CHECK(result != nullptr);
  RETURN_IF_ERROR(ValidateStep(spec_, batch, key_index, num_unique, rows));
  RETURN_IF_ERROR(SetDenseParams(dense_params));
  return Run(batch, key_index, num_unique, rows, /*train=*/true, result);
}

absl::Status Model::Predict(const Batch& batch,
                            absl::Span<const uint32_t> key_index,
                            int64_t num_unique, absl::Span<const float> rows,
                            absl::Span<const float> dense_params,
                            StepResult* result) {
  CHECK(result != nullptr);
  RETURN_IF_ERROR(ValidateStep(spec_, batch, key_index, num_unique, rows));
  RETURN_IF_ERROR(SetDenseParams(dense_params));
  return Run(batch, key_index, num_unique, rows, /*train=*/false, result);
}

}  // namespace ps
