#include "worker/model/model.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/optimizer.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/model/model_deep.h"
#include "worker/model/model_linear.h"

namespace ps {

namespace {

std::string TypeName(ModelConfig::Type type) {
  return ModelConfig::Type_Name(type);
}

// The row width a spec's model needs, of every table: LR reads the linear
// weight alone, the others with a linear weight need an embedding after it;
// FM needs one width for all.
absl::Status ValidateRowWidth(const ModelSpec& spec) {
  if (spec.tables.empty() ||
      static_cast<int>(spec.slot_table.size()) != spec.num_slots ||
      static_cast<int>(spec.slot_offset.size()) != spec.num_slots ||
      static_cast<int>(spec.slot_width.size()) != spec.num_slots) {
    return absl::InvalidArgumentError(absl::StrCat(
        TypeName(spec.type), " model spec maps its ", spec.num_slots,
        " slots to no table (build specs with MakeModelSpec)"));
  }
  for (const TableSpec& table : spec.tables) {
    const int dim = table.dim;
    if (spec.type == ModelConfig::LR && dim != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LR model needs embeddings of dim 1, the spec has dim ", dim));
    }
    if (spec.type != ModelConfig::LR && spec.linear_dim == 1 && dim < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          TypeName(spec.type),
          " model needs rows of dim >= 2 (1 linear weight + embedding), the "
          "spec has dim ",
          dim));
    }
    if (dim < 1 || dim <= spec.linear_dim - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(TypeName(spec.type), " model spec has rows of dim ", dim,
                       " but reads ", spec.linear_dim, " linear weight(s)"));
    }
  }
  if ((spec.has_fm || spec.has_fwfm) && spec.emb_dim == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(TypeName(spec.type), " model needs tables of one dim"));
  }
  return absl::OkStatus();
}

// Checks that the batch and the rows handed to a step fit the spec.
absl::Status ValidateStep(const ModelSpec& spec, const Batch& batch,
                          absl::Span<const uint32_t> key_index,
                          absl::Span<const int64_t> table_rows,
                          absl::Span<const float> rows) {
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
  if (table_rows.size() != spec.tables.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "row counts given for ", table_rows.size(), " table(s) but ", model,
        " model reads ", spec.tables.size()));
  }
  int64_t floats = 0;
  for (size_t t = 0; t < table_rows.size(); ++t) {
    if (table_rows[t] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row count of table ", t, " is negative: ", table_rows[t]));
    }
    floats += table_rows[t] * spec.tables[t].dim;
  }
  if (spec.tables.size() == 1) {
    for (size_t i = 0; i < key_index.size(); ++i) {
      if (key_index[i] >= table_rows[0]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key_index[", i, "] = ", key_index[i],
            " is out of range: there are ", table_rows[0], " unique rows"));
      }
    }
  } else {
    for (int64_t e = 0; e < n; ++e) {
      for (int slot = 0; slot < spec.num_slots; ++slot) {
        const size_t cell = static_cast<size_t>(e * spec.num_slots + slot);
        const int t = spec.slot_table[slot];
        for (uint32_t i = batch.offsets[cell]; i < batch.offsets[cell + 1];
             ++i) {
          if (key_index[i] >= table_rows[t]) {
            return absl::InvalidArgumentError(absl::StrCat(
                "key_index[", i, "] = ", key_index[i],
                " is out of range: there are ", table_rows[t],
                " unique rows of table ", t, " (slot ", slot, ")"));
          }
        }
      }
    }
  }
  if (static_cast<int64_t>(rows.size()) != floats) {
    if (spec.tables.size() == 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rows has ", rows.size(), " floats but ", table_rows[0],
          " unique rows of dim ", spec.tables[0].dim, " need ", floats));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "rows has ", rows.size(), " floats but the unique rows ",
        "of the batch's ", spec.tables.size(), " tables need ", floats));
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

PoolMode PoolModeOf(ModelConfig::Pooling pooling) {
  switch (pooling) {
    case ModelConfig::MEAN:
      return PoolMode::kMean;
    case ModelConfig::SQRTN:
      return PoolMode::kSqrtN;
    default:
      return PoolMode::kSum;
  }
}

std::vector<std::unique_ptr<ModelTerm>> MakeModelTerms(const ModelSpec& spec,
                                                       Backend* backend) {
  std::vector<std::unique_ptr<ModelTerm>> terms;
  if (spec.has_linear) {
    terms.push_back(std::make_unique<LinearTerm>(spec, backend));
  }
  if (spec.has_fm) terms.push_back(std::make_unique<FmTerm>(spec, backend));
  if (spec.has_fwfm) {
    terms.push_back(std::make_unique<FwFmTerm>(spec, backend));
  }
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
    return absl::InvalidArgumentError(
        absl::StrCat("dense_params has ", dense_params.size(), " floats but ",
                     TypeName(spec_.type), " model has ", spec_.dense_size));
  }
  if (launched_) {
    return absl::FailedPreconditionError(
        "SetDenseParams while a launched step is not finished");
  }
  has_params_ = false;
  RETURN_IF_ERROR(params_.Reserve(backend_, spec_.dense_size));
  backend_->CopyToBackend(dense_params.data(), spec_.dense_size * sizeof(float),
                          params_.data());
  // The caller's span may change once we return: wait for the copy.
  absl::Status status = backend_->Synchronize();
  if (!status.ok()) {
    staged_batch_.reset();  // its upload may have failed too
    return status;
  }
  has_params_ = true;
  return absl::OkStatus();
}

absl::Status Model::SetDenseOptimizer(const OptimizerConfig& config) {
  ASSIGN_OR_RETURN(const optimizer_math::Hyper hyper, OptimizerHyper(config));
  if (launched_) {
    return absl::FailedPreconditionError(
        "SetDenseOptimizer while a launched step is not finished");
  }
  if (dense_rule_.has_value()) {
    return absl::FailedPreconditionError(
        "SetDenseOptimizer: the model has a dense optimizer already");
  }
  const int states = optimizer_math::StatesPerWeight(hyper.kind);
  const int64_t n = spec_.dense_size;
  RETURN_IF_ERROR(dense_state_.Reserve(backend_, states * n));
  // The state of a fresh row (OptimizerRule::InitState), uploaded once.
  std::vector<float> init(states * n);
  for (int k = 0; k < states; ++k) {
    std::fill_n(init.begin() + k * n, n,
                optimizer_math::InitialWeightState(hyper, k));
  }
  backend_->CopyToBackend(init.data(),
                          static_cast<int64_t>(init.size()) * sizeof(float),
                          dense_state_.data());
  RETURN_IF_ERROR(backend_->Synchronize());  // `init` goes away
  dense_rule_.emplace(hyper);
  return absl::OkStatus();
}

absl::Status Model::GetDenseParams(absl::Span<float> out) {
  if (static_cast<int64_t>(out.size()) != spec_.dense_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("GetDenseParams: ", out.size(), " floats asked for but ",
                     TypeName(spec_.type), " model has ", spec_.dense_size));
  }
  if (launched_) {
    return absl::FailedPreconditionError(
        "GetDenseParams while a launched step is not finished");
  }
  if (!has_params_) {
    return absl::FailedPreconditionError(
        "GetDenseParams: no dense parameters were set");
  }
  Download(backend_, params_.data(), spec_.dense_size, out.data());
  return backend_->Synchronize();
}

Model::InputLayout Model::LayoutInputs(const Batch& batch,
                                       int64_t row_floats) const {
  const int64_t n = batch.size();
  InputLayout layout;
  int64_t at = 0;
  const size_t tables = spec_.tables.size();
  for (size_t t = 0; t < tables; ++t) {
    const int64_t slots = static_cast<int64_t>(spec_.tables[t].slots.size());
    const int64_t keys = tables == 1
                             ? static_cast<int64_t>(batch.keys.size())
                             : static_cast<int64_t>(split_index_[t].size());
    layout.offsets.push_back(at);
    at = AlignWords(at + n * slots + 1);
    layout.index.push_back(at);
    layout.num_keys.push_back(keys);
    at = AlignWords(at + keys);
  }
  layout.labels = at;
  layout.dense = AlignWords(layout.labels + n);
  layout.rows = AlignWords(layout.dense + n * spec_.num_dense);
  layout.words = layout.rows + row_floats;
  return layout;
}

void Model::SplitByTable(const Batch& batch,
                         absl::Span<const uint32_t> key_index) {
  const size_t tables = spec_.tables.size();
  split_offsets_.resize(tables);
  split_index_.resize(tables);
  for (size_t t = 0; t < tables; ++t) {
    split_offsets_[t].assign(1, 0);
    split_index_[t].clear();
  }
  const int n = batch.size();
  for (int e = 0; e < n; ++e) {
    for (size_t t = 0; t < tables; ++t) {
      std::vector<uint32_t>& index = split_index_[t];
      for (const int slot : spec_.tables[t].slots) {
        const size_t cell = static_cast<size_t>(e) * spec_.num_slots + slot;
        index.insert(index.end(), key_index.begin() + batch.offsets[cell],
                     key_index.begin() + batch.offsets[cell + 1]);
        split_offsets_[t].push_back(static_cast<uint32_t>(index.size()));
      }
    }
  }
}

absl::Status Model::Reserve(int n, int64_t row_floats, bool train) {
  const int64_t pooled = static_cast<int64_t>(n) * spec_.pooled_width;
  RETURN_IF_ERROR(pooled_.Reserve(backend_, pooled));
  RETURN_IF_ERROR(logits_.Reserve(backend_, n));
  RETURN_IF_ERROR(d_logits_.Reserve(backend_, n));
  RETURN_IF_ERROR(probs_.Reserve(backend_, n));
  RETURN_IF_ERROR(loss_sum_.Reserve(backend_, 1));
  if (train) {
    RETURN_IF_ERROR(d_pooled_.Reserve(backend_, pooled));
    RETURN_IF_ERROR(dense_grad_.Reserve(backend_, spec_.dense_size));
    RETURN_IF_ERROR(row_grad_.Reserve(backend_, row_floats));
  }
  if (!backend_->UsesHostMemory()) {
    RETURN_IF_ERROR(host_probs_.Reserve(backend_, n));
    RETURN_IF_ERROR(host_loss_.Reserve(backend_, 1));
    if (train) {
      if (!dense_rule_.has_value()) {
        RETURN_IF_ERROR(host_dense_grad_.Reserve(backend_, spec_.dense_size));
      }
      RETURN_IF_ERROR(host_row_grad_.Reserve(backend_, row_floats));
    }
  }
  if (backend_metrics_ && !metrics_zeroed_) {
    RETURN_IF_ERROR(
        metric_counts_.Reserve(backend_, 2 * AucAccumulator::kBuckets));
    RETURN_IF_ERROR(metric_sums_.Reserve(backend_, 2));
    backend_->SetZero(2 * AucAccumulator::kBuckets * sizeof(uint64_t),
                      metric_counts_.data());
    backend_->SetZero(2 * sizeof(double), metric_sums_.data());
    metrics_zeroed_ = true;
  }
  for (const auto& term : terms_) RETURN_IF_ERROR(term->Reserve(n));
  return absl::OkStatus();
}

absl::Status Model::Stage(const Batch& batch,
                          absl::Span<const uint32_t> key_index,
                          absl::Span<const int64_t> table_rows,
                          absl::Span<const float> rows) {
  RETURN_IF_ERROR(ValidateStep(spec_, batch, key_index, table_rows, rows));
  if (staged_batch_.has_value()) {
    return absl::FailedPreconditionError(
        "Stage: the batch staged before was not launched yet");
  }
  const size_t tables = spec_.tables.size();
  if (tables > 1) SplitByTable(batch, key_index);
  Staged s;
  s.n = batch.size();
  s.table_rows.assign(table_rows.begin(), table_rows.end());
  for (size_t t = 0; t < tables; ++t) {
    s.row_floats.push_back(s.total_floats);
    s.total_floats += table_rows[t] * spec_.tables[t].dim;
  }
  s.layout = LayoutInputs(batch, s.total_floats);
  // Not the buffers of the launched step, whose kernels may still read
  // them; with none launched, those of the last step (all work is done).
  s.buffer = launched_ ? 1 - running_.buffer : running_.buffer;
  const InputLayout& layout = s.layout;
  RETURN_IF_ERROR(staged_[s.buffer].Reserve(backend_, layout.words));
  RETURN_IF_ERROR(inputs_[s.buffer].Reserve(backend_, layout.words));
  uint32_t* words = staged_[s.buffer].data();
  if (tables == 1) {
    Pack(batch.offsets.data(), batch.offsets.size(), words, layout.offsets[0]);
    Pack(key_index.data(), key_index.size(), words, layout.index[0]);
  } else {
    for (size_t t = 0; t < tables; ++t) {
      Pack(split_offsets_[t].data(), split_offsets_[t].size(), words,
           layout.offsets[t]);
      Pack(split_index_[t].data(), split_index_[t].size(), words,
           layout.index[t]);
    }
  }
  Pack(batch.labels.data(), batch.labels.size(), words, layout.labels);
  Pack(batch.dense.data(), batch.dense.size(), words, layout.dense);
  Pack(rows.data(), rows.size(), words, layout.rows);
  // staged_[buffer] stays unchanged until the Synchronize that ends the
  // step using it: the next Stage while that step runs takes the other.
  backend_->CopyToBackend(words, layout.words * sizeof(uint32_t),
                          inputs_[s.buffer].data());
  staged_batch_ = std::move(s);
  return absl::OkStatus();
}

const float* Model::InputFloats(const Staged& s, int64_t at) const {
  return reinterpret_cast<const float*>(inputs_[s.buffer].data() + at);
}

PoolArgs Model::MakePoolArgs(const Staged& s, int table) const {
  PoolArgs pool;
  pool.batch = s.n;
  pool.num_slots = static_cast<int>(spec_.tables[table].slots.size());
  pool.dim = spec_.tables[table].dim;
  pool.mode = pooling_;
  pool.offsets = inputs_[s.buffer].data() + s.layout.offsets[table];
  pool.index = inputs_[s.buffer].data() + s.layout.index[table];
  pool.num_keys = s.layout.num_keys[table];
  return pool;
}

absl::Status Model::Launch(bool train, StepResult* result) {
  CHECK(result != nullptr);
  if (launched_) {
    return absl::FailedPreconditionError(
        "Launch: the launched step was not finished");
  }
  if (!staged_batch_.has_value()) {
    return absl::FailedPreconditionError("Launch: no batch is staged");
  }
  // Read in place: the staged batch stays staged when this fails.
  const Staged& s = *staged_batch_;
  const int n = s.n;
  if (n > 0 && !has_params_) {
    return absl::FailedPreconditionError(
        absl::StrCat(TypeName(spec_.type),
                     " model has no dense parameters: call SetDenseParams "
                     "before the first step"));
  }
  result->probs.resize(backend_metrics_ ? 0 : n);
  result->loss_sum = 0;
  result->dense_grad.clear();
  result->row_grad.clear();
  // The gradients the host gets (the dense one stays on the backend when
  // the dense optimizer runs there).
  const bool dense_grad_out = train && !dense_rule_.has_value();
  if (train) {
    if (dense_grad_out) result->dense_grad.resize(spec_.dense_size);
    result->row_grad.resize(s.total_floats);
  }
  if (n > 0) RETURN_IF_ERROR(Reserve(n, s.total_floats, train));
  running_ = std::move(*staged_batch_);
  staged_batch_.reset();
  launched_ = true;
  launched_train_ = train;
  launched_result_ = result;
  if (n == 0) {
    std::fill(result->dense_grad.begin(), result->dense_grad.end(), 0.0f);
    std::fill(result->row_grad.begin(), result->row_grad.end(), 0.0f);
    return absl::OkStatus();
  }
  const Staged& r = running_;
  const InputLayout& layout = r.layout;

  // Forward: each table pools its slots' rows into its columns.
  const int pooled_width = spec_.pooled_width;
  const int tables = static_cast<int>(spec_.tables.size());
  for (int t = 0; t < tables; ++t) {
    backend_->PoolForward(
        MakePoolArgs(r, t), InputFloats(r, layout.rows + r.row_floats[t]),
        pooled_.data() + spec_.tables[t].pooled_offset, pooled_width);
  }
  const TermInputs in{n,
                      pooled_.data(),
                      InputFloats(r, layout.dense),
                      params_.data(),
                      train,
                      DropoutHash(seed_, static_cast<uint64_t>(step_))};
  backend_->SetZero(n * sizeof(float), logits_.data());
  for (const auto& term : terms_) term->Forward(in, logits_.data());
  const float* labels = InputFloats(r, layout.labels);
  backend_->SigmoidCrossEntropy(n, logits_.data(), labels,
                                1.0f / static_cast<float>(n), probs_.data(),
                                d_logits_.data(), loss_sum_.data());
  if (backend_metrics_) {
    backend_->AccumulateMetrics(n, probs_.data(), labels,
                                AucAccumulator::kBuckets, metric_counts_.data(),
                                metric_sums_.data());
  }
  const bool direct = backend_->UsesHostMemory();  // Finish copies
  if (!direct) {
    if (!backend_metrics_) {
      Download(backend_, probs_.data(), n, host_probs_.data());
    }
    Download(backend_, loss_sum_.data(), 1, host_loss_.data());
  }
  if (train) {
    // Backward.
    backend_->SetZero(spec_.dense_size * sizeof(float), dense_grad_.data());
    backend_->SetZero(static_cast<int64_t>(n) * pooled_width * sizeof(float),
                      d_pooled_.data());
    for (const auto& term : terms_) {
      term->Backward(in, d_logits_.data(), d_pooled_.data(),
                     dense_grad_.data());
    }
    for (int t = 0; t < tables; ++t) {
      backend_->PoolBackward(
          MakePoolArgs(r, t), d_pooled_.data() + spec_.tables[t].pooled_offset,
          pooled_width, r.table_rows[t], row_grad_.data() + r.row_floats[t]);
    }
    if (!dense_grad_out) {
      // After every kernel that reads the parameters (in stream order).
      backend_->DenseOptimizerStep(dense_rule_->Begin(step_), spec_.dense_size,
                                   dense_grad_.data(), params_.data(),
                                   dense_state_.data());
    }
    if (!direct) {
      if (dense_grad_out) {
        Download(backend_, dense_grad_.data(), spec_.dense_size,
                 host_dense_grad_.data());
      }
      Download(backend_, row_grad_.data(), r.total_floats,
               host_row_grad_.data());
    }
  }
  return absl::OkStatus();
}

absl::Status Model::Finish() {
  if (!launched_) {
    return absl::FailedPreconditionError("Finish: no step was launched");
  }
  launched_ = false;
  StepResult* result = launched_result_;
  launched_result_ = nullptr;
  const Staged& s = running_;
  if (s.n == 0) return absl::OkStatus();
  const bool direct = backend_->UsesHostMemory();
  if (direct) {
    // Host memory: copies are immediate, straight into the result.
    if (!backend_metrics_) {
      Download(backend_, probs_.data(), s.n, result->probs.data());
    }
    Download(backend_, loss_sum_.data(), 1, &result->loss_sum);
    if (launched_train_) {
      if (!result->dense_grad.empty()) {
        Download(backend_, dense_grad_.data(), spec_.dense_size,
                 result->dense_grad.data());
      }
      Download(backend_, row_grad_.data(), s.total_floats,
               result->row_grad.data());
    }
  }
  // The downloads are complete, and the kernels' errors known, after this.
  RETURN_IF_ERROR(backend_->Synchronize());
  if (!direct) {
    auto copy = [](const auto* from, auto& to) {
      if (!to.empty()) std::memcpy(to.data(), from, to.size() * sizeof(to[0]));
    };
    copy(host_probs_.data(), result->probs);
    result->loss_sum = *host_loss_.data();
    if (launched_train_) {
      copy(host_dense_grad_.data(), result->dense_grad);
      copy(host_row_grad_.data(), result->row_grad);
    }
  }
  return absl::OkStatus();
}

absl::Status Model::TakeMetrics(AucAccumulator* acc) {
  CHECK(acc != nullptr);
  if (launched_) {
    return absl::FailedPreconditionError(
        "TakeMetrics while a launched step is not finished");
  }
  if (!metrics_zeroed_) return absl::OkStatus();  // nothing gathered yet
  std::vector<uint64_t> counts(2 * AucAccumulator::kBuckets);
  double sums[2] = {0, 0};
  Download(backend_, metric_counts_.data(), static_cast<int64_t>(counts.size()),
           counts.data());
  Download(backend_, metric_sums_.data(), 2, sums);
  RETURN_IF_ERROR(backend_->Synchronize());
  backend_->SetZero(static_cast<int64_t>(counts.size()) * sizeof(uint64_t),
                    metric_counts_.data());
  backend_->SetZero(2 * sizeof(double), metric_sums_.data());
  return acc->AddHistogram(counts, sums[0], sums[1]);
}

absl::Status Model::RunNow(const Batch& batch,
                           absl::Span<const uint32_t> key_index,
                           absl::Span<const int64_t> table_rows,
                           absl::Span<const float> rows,
                           const absl::Span<const float>* dense_params,
                           bool train, StepResult* result) {
  CHECK(result != nullptr);
  if (launched_ || staged_batch_.has_value()) {
    return absl::FailedPreconditionError(
        "a step cannot run while another is staged or launched");
  }
  // Stage validates the batch, before any dense parameters are uploaded.
  RETURN_IF_ERROR(Stage(batch, key_index, table_rows, rows));
  absl::Status status = dense_params == nullptr ? absl::OkStatus()
                                                : SetDenseParams(*dense_params);
  if (status.ok()) status = Launch(train, result);
  if (!status.ok()) {
    staged_batch_.reset();
    return status;
  }
  return Finish();
}

absl::Status Model::TrainStep(const Batch& batch,
                              absl::Span<const uint32_t> key_index,
                              absl::Span<const int64_t> table_rows,
                              absl::Span<const float> rows,
                              StepResult* result) {
  return RunNow(batch, key_index, table_rows, rows, nullptr, /*train=*/true,
                result);
}

absl::Status Model::Predict(const Batch& batch,
                            absl::Span<const uint32_t> key_index,
                            absl::Span<const int64_t> table_rows,
                            absl::Span<const float> rows, StepResult* result) {
  return RunNow(batch, key_index, table_rows, rows, nullptr, /*train=*/false,
                result);
}

absl::Status Model::TrainStep(const Batch& batch,
                              absl::Span<const uint32_t> key_index,
                              absl::Span<const int64_t> table_rows,
                              absl::Span<const float> rows,
                              absl::Span<const float> dense_params,
                              StepResult* result) {
  return RunNow(batch, key_index, table_rows, rows, &dense_params,
                /*train=*/true, result);
}

absl::Status Model::Predict(const Batch& batch,
                            absl::Span<const uint32_t> key_index,
                            absl::Span<const int64_t> table_rows,
                            absl::Span<const float> rows,
                            absl::Span<const float> dense_params,
                            StepResult* result) {
  return RunNow(batch, key_index, table_rows, rows, &dense_params,
                /*train=*/false, result);
}

}  // namespace ps
