// A CTR model (LR, DNN, FM, FWFM, WIDE_DEEP, DEEPFM or DCN; see
// common/model_spec.h) computed with a Backend.
//
// Forward: every slot's rows are pooled (sum or mean) once into [slot 0 |
// slot 1 | ...] per example; the model's terms (worker/model/model_term.h:
// linear, FM second order, deep) each read the pooled rows and the dense
// features and add to the logit. Loss: sigmoid cross-entropy, averaged over the
// batch. Backward gives the gradient of that mean loss for the dense parameter
// vector and for every unique sparse row of the batch (merged per key).
//
// Memory: the model is device-resident. Its parameters, activations and
// gradients live in backend memory (Backend::Allocate, device memory on a
// GPU; worker/model/model_buffer.h) and are touched only by the backend's
// kernels, so a device backend is used directly, with no staging layer. Host
// and backend memory meet only at these boundaries:
//  - SetDenseParams: the dense parameters, one copy, kept for later steps
//    (call it after every dense pull); with a dense optimizer on the
//    backend (SetDenseOptimizer, GEO's local training) the steps update
//    them there, and GetDenseParams downloads them when the host needs them;
//  - each step: the batch's offsets, key index, labels and dense features
//    and the pulled rows, packed into one pinned host buffer
//    (Backend::AllocateHost) and uploaded in one copy;
//  - each step: the probabilities (unless metrics stay on the backend,
//    SetBackendMetrics) and the loss sum, and (TrainStep) the dense gradient
//    (unless the dense optimizer runs on the backend) and the row gradients,
//    downloaded once each into pinned host buffers and copied into the
//    StepResult; then one Backend::Synchronize.
//
// Overlap: a step can be split into Stage, Launch and Finish, so that the
// next batch is staged (its upload queued) while this one's kernels run:
//
//   Stage(b1); Launch(true, &r1);
//   ...pull the rows of b2 (RPCs)...; Stage(b2); Finish();   // r1 is ready
//   Launch(true, &r2); ...; Stage(b3); Finish(); ...
//
// Two sets of staging and input buffers alternate. On a GPU, Launch and
// Stage return at once (kernels, the upload and the downloads are queued on
// their streams; see kernels/cuda/cuda_backend.h); only Finish waits.
// Backend buffers grow with the batch and are kept between steps. On the CPU
// backend every copy is a memcpy, and the numbers are those of host buffers.
//
// A Model is used by one thread.
#ifndef PS_WORKER_MODEL_MODEL_H_
#define PS_WORKER_MODEL_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/model_spec.h"
#include "common/optimizer_math.h"
#include "kernels/auc.h"
#include "kernels/backend.h"
#include "worker/data/batch.h"
#include "worker/model/model_buffer.h"
#include "worker/model/model_term.h"

namespace ps {

// What a step returns, in host memory.
struct StepResult {
  std::vector<float> probs;       // one per example (none with metrics on
                                  // the backend)
  double loss_sum = 0;            // sum (not mean) of per-example losses
  std::vector<float> dense_grad;  // spec.dense_size (none with the dense
                                  // optimizer on the backend)
  std::vector<float> row_grad;    // the rows' gradients, laid out like the
                                  // rows (table after table)
};

// The distinct keys of `batch` per table of `spec` (each slot's keys in
// its table), as the model's steps take them.
inline UniqueKeys DeduplicateByTable(const ModelSpec& spec,
                                     const Batch& batch) {
  return Deduplicate(batch, spec.slot_table,
                     static_cast<int>(spec.tables.size()));
}

// The backend's pooling of a config's model.pooling (SUM for unspecified).
PoolMode PoolModeOf(ModelConfig::Pooling pooling);

class Model {
 public:
  // `backend` is not owned and must outlive the model.
  Model(const ModelSpec& spec, PoolMode pooling, Backend* backend);
  ~Model();

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelSpec& spec() const { return spec_; }

  // Copies `dense_params` (spec.dense_size floats) into backend memory, where
  // the steps below read them until the next call. The span may change or go
  // away once this returns (the copy is complete then). InvalidArgument when
  // the size does not match the spec; the backend's errors (allocation, or a
  // failed copy on a device backend).
  absl::Status SetDenseParams(absl::Span<const float> dense_params);

  // One forward and backward pass with the dense parameters of the last
  // SetDenseParams. Rows: table after table of spec.tables, table t's
  // table_rows[t] rows of its dim each (UniqueKeys' layout, batch.h);
  // key_index maps every key of batch.keys to a row among its slot's
  // table's rows. A model of one table may pass its row count as
  // `num_unique`. On return (also on
  // a device backend) `result` holds the step's probabilities, loss sum and
  // gradients, and the backend has been synchronized. InvalidArgument when
  // the batch does not match the spec (slot count, dense feature count,
  // index out of range) or the spec's row width does not suit its model;
  // FailedPrecondition when no dense parameters were set (unless the batch
  // is empty); the backend's errors (allocation, or the first failed kernel
  // or copy of the step).
  absl::Status TrainStep(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         absl::Span<const int64_t> table_rows,
                         absl::Span<const float> rows, StepResult* result);
  absl::Status TrainStep(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         int64_t num_unique, absl::Span<const float> rows,
                         StepResult* result) {
    return TrainStep(batch, key_index, {&num_unique, 1}, rows, result);
  }

  // Forward only: result->probs and result->loss_sum; grads left empty.
  // Errors as TrainStep.
  absl::Status Predict(const Batch& batch, absl::Span<const uint32_t> key_index,
                       absl::Span<const int64_t> table_rows,
                       absl::Span<const float> rows, StepResult* result);
  absl::Status Predict(const Batch& batch, absl::Span<const uint32_t> key_index,
                       int64_t num_unique, absl::Span<const float> rows,
                       StepResult* result) {
    return Predict(batch, key_index, {&num_unique, 1}, rows, result);
  }

  // As above, after SetDenseParams(dense_params) (when the batch is valid):
  // for callers that hand over the dense parameters with every step, at the
  // price of one more upload per step. `dense_params` has spec.dense_size
  // floats.
  absl::Status TrainStep(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         absl::Span<const int64_t> table_rows,
                         absl::Span<const float> rows,
                         absl::Span<const float> dense_params,
                         StepResult* result);
  absl::Status Predict(const Batch& batch, absl::Span<const uint32_t> key_index,
                       absl::Span<const int64_t> table_rows,
                       absl::Span<const float> rows,
                       absl::Span<const float> dense_params,
                       StepResult* result);
  absl::Status TrainStep(const Batch& batch,
                         absl::Span<const uint32_t> key_index,
                         int64_t num_unique, absl::Span<const float> rows,
                         absl::Span<const float> dense_params,
                         StepResult* result) {
    return TrainStep(batch, key_index, {&num_unique, 1}, rows, dense_params,
                     result);
  }
  absl::Status Predict(const Batch& batch, absl::Span<const uint32_t> key_index,
                       int64_t num_unique, absl::Span<const float> rows,
                       absl::Span<const float> dense_params,
                       StepResult* result) {
    return Predict(batch, key_index, {&num_unique, 1}, rows, dense_params,
                   result);
  }

  // The dense optimizer on the backend, for GEO mode's local training: from
  // now on every training step with examples applies `config`'s rule to
  // the dense parameters in backend memory right after its backward pass
  // (Backend::DenseOptimizerStep: the servers' arithmetic, bit for bit), and
  // its StepResult::dense_grad stays empty, so neither the gradient nor the
  // parameters cross to the host. The rule's state lives in backend memory
  // too, starts as a fresh row's (the rule's InitState) and is kept across
  // SetDenseParams. InvalidArgument for a bad rule (as
  // OptimizerRule::Create); FailedPrecondition while a step is launched or
  // when a dense optimizer is already set; the backend's errors.
  absl::Status SetDenseOptimizer(const OptimizerConfig& config);
  bool has_dense_optimizer() const { return dense_rule_.has_value(); }
  // The step that the steps launched from now on belong to: the step their
  // pushes carry (steps finished, counting the one launched: 1 for the
  // first), and the seed of their random training-only draws (workers pass
  // their rank, so that they draw differently). The dense optimizer's
  // learning-rate schedule goes by the step; dropout masks
  // (ModelConfig.dropout) by both, so a step's masks are the same on any
  // backend and after a resume. Default: step 1, seed 0.
  void SetStep(int64_t step, uint64_t seed) {
    step_ = step;
    seed_ = seed;
  }
  // Downloads the dense parameters as the last finished step left them
  // into `out` (spec.dense_size floats). InvalidArgument for another size;
  // FailedPrecondition while a step is launched or before SetDenseParams;
  // the backend's errors.
  absl::Status GetDenseParams(absl::Span<float> out);

  // --- A step in three calls (see the top of this file) -------------------
  // Validates a batch (errors as TrainStep), packs its inputs into the
  // staging buffer not in use and queues their upload. The batch's memory
  // may change once this returns. FailedPrecondition when a staged batch
  // waits for its Launch.
  absl::Status Stage(const Batch& batch, absl::Span<const uint32_t> key_index,
                     absl::Span<const int64_t> table_rows,
                     absl::Span<const float> rows);
  absl::Status Stage(const Batch& batch, absl::Span<const uint32_t> key_index,
                     int64_t num_unique, absl::Span<const float> rows) {
    return Stage(batch, key_index, {&num_unique, 1}, rows);
  }
  // Queues the forward pass of the staged batch (and the backward pass when
  // `train`) and the downloads of its results for `result`, which must stay
  // untouched until Finish. FailedPrecondition when nothing is staged, a
  // launched step is not finished, or no dense parameters were set; the
  // backend's allocation errors.
  absl::Status Launch(bool train, StepResult* result);
  // Waits for the launched step; then its StepResult is filled in as
  // TrainStep (or Predict) would. FailedPrecondition when nothing was
  // launched; the backend's errors (the first failed kernel or copy).
  absl::Status Finish();
  // True between Launch and Finish.
  bool launched() const { return launched_; }

  // Metrics on the backend. With `on`, each later step adds its
  // predictions to AUC/logloss statistics kept in backend memory
  // (Backend::AccumulateMetrics; device memory on a GPU) instead of
  // downloading them, and StepResult::probs stays empty. Default: off.
  void SetBackendMetrics(bool on) { backend_metrics_ = on; }
  // Adds the statistics gathered since the last call to `acc` and clears
  // them (one download). FailedPrecondition while a step is launched; the
  // backend's errors.
  absl::Status TakeMetrics(AucAccumulator* acc);

 private:
  // Where the parts of a batch's upload lie in inputs_ (in 4-byte words).
  // Per table t of spec.tables: the CSR of its slots (batch x its slots + 1
  // offsets, uint32) and the row index of their keys (uint32); with one
  // table, the batch's own offsets and key_index.
  struct InputLayout {
    std::vector<int64_t> offsets;
    std::vector<int64_t> index;
    std::vector<int64_t> num_keys;  // per table: its keys in the batch
    int64_t labels = 0;             // float: batch
    int64_t dense = 0;              // float: batch * num_dense
    int64_t rows = 0;               // float: the rows, table after table
    int64_t words = 0;              // the total
  };

  // A staged batch: what Launch needs to know of it.
  struct Staged {
    InputLayout layout;
    int n = 0;
    std::vector<int64_t> table_rows;  // per table: its rows
    std::vector<int64_t> row_floats;  // per table: where its rows start
    int64_t total_floats = 0;         // floats of all rows
    int buffer = 0;                   // of staged_ / inputs_
  };

  // Grows the backend buffers for a batch of `n` examples (the gradients'
  // only when `train`).
  absl::Status Reserve(int n, int64_t row_floats, bool train);
  // Lays out the upload; per table, its keys' count in `num_keys`.
  InputLayout LayoutInputs(const Batch& batch, int64_t row_floats) const;
  // With several tables: each table's CSR and index into split_ (one
  // table's words after another's, as LayoutInputs places them).
  void SplitByTable(const Batch& batch, absl::Span<const uint32_t> key_index);
  PoolArgs MakePoolArgs(const Staged& s, int table) const;
  const float* InputFloats(const Staged& s, int64_t at) const;
  // Stage, SetDenseParams(*dense_params) unless null, Launch, Finish.
  absl::Status RunNow(const Batch& batch, absl::Span<const uint32_t> key_index,
                      absl::Span<const int64_t> table_rows,
                      absl::Span<const float> rows,
                      const absl::Span<const float>* dense_params, bool train,
                      StepResult* result);

  const ModelSpec spec_;
  const PoolMode pooling_;
  Backend* const backend_;
  const std::vector<std::unique_ptr<ModelTerm>> terms_;

  // Backend memory, kept between steps (model_buffer.h).
  BackendArray<float> params_;  // spec.dense_size, from SetDenseParams
  bool has_params_ = false;
  // The dense optimizer on the backend (SetDenseOptimizer): the host keeps
  // the rule and its per-row state, the backend the per-weight state.
  std::optional<optimizer_math::DenseRowState> dense_rule_;
  int64_t step_ = 1;                 // SetStep
  uint64_t seed_ = 0;                // SetStep
  BackendArray<float> dense_state_;  // StatesPerWeight * spec.dense_size
  // Two sets: Stage fills the one the launched step does not use.
  BackendArray<uint32_t> staged_[2] = {
      BackendArray<uint32_t>(BackendArray<uint32_t>::Memory::kHost),
      BackendArray<uint32_t>(BackendArray<uint32_t>::Memory::kHost)};
  BackendArray<uint32_t> inputs_[2];    // the uploaded staged_ (InputLayout)
  std::optional<Staged> staged_batch_;  // staged, not launched
  Staged running_;                      // launched (or last launched)
  bool launched_ = false;
  bool launched_train_ = false;
  StepResult* launched_result_ = nullptr;
  // Pinned host buffers the results are downloaded into (device backends;
  // host-memory backends copy straight into the StepResult in Finish).
  BackendArray<float> host_probs_{BackendArray<float>::Memory::kHost};
  BackendArray<double> host_loss_{BackendArray<double>::Memory::kHost};
  BackendArray<float> host_dense_grad_{BackendArray<float>::Memory::kHost};
  BackendArray<float> host_row_grad_{BackendArray<float>::Memory::kHost};
  // Backend metrics (SetBackendMetrics).
  bool backend_metrics_ = false;
  bool metrics_zeroed_ = false;
  BackendArray<uint64_t> metric_counts_;  // 2 * AucAccumulator::kBuckets
  BackendArray<double> metric_sums_;      // loss sum, probability sum
  // SplitByTable's output: per table, its offsets then its index.
  std::vector<std::vector<uint32_t>> split_offsets_;
  std::vector<std::vector<uint32_t>> split_index_;
  BackendArray<float> pooled_;    // batch x pooled_width
  BackendArray<float> d_pooled_;  // its gradient
  BackendArray<float> logits_;
  BackendArray<float> d_logits_;
  BackendArray<float> probs_;
  BackendArray<double> loss_sum_;   // one
  BackendArray<float> dense_grad_;  // spec.dense_size
  BackendArray<float> row_grad_;    // like the rows
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_MODEL_H_
