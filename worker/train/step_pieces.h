// The pieces every training loop (worker/train/train_loop.h) is built from,
// written once, and the training state of a worker they share:
//
//   EpochBatches  one epoch of this worker's data: read a batch, dedup its
//                 keys, keep the reader's position after it (checkpoints),
//                 stop at training.max_steps; the epoch's progress.
//   StepPieces    the model on its backend, the dense vector, the push
//                 merger, the step counter and statistics, the checkpoint
//                 trigger and data position, the progress reporter; and the
//                 step's pieces: pull rows, pull dense, compute, count, push
//                 (and wait for all, or bounded), the progress line, the
//                 checkpoint bookkeeping after a step, barriers.
//
// Ownership: StepPieces owns the model, merger, trigger and reporter; the
// client, backend and metrics log are the caller's.
//
// Threads: the training thread calls everything, except that while it
// works on one batch a loop's prefetch threads may call EpochBatches::Read
// (one at a time) and StepPieces::PullRows (concurrently) for the batches
// ahead; these touch only those batches, the reader and the client's pulls.
// step() and SetCheckpointPending may be called from any thread.
#ifndef PS_WORKER_TRAIN_STEP_PIECES_H_
#define PS_WORKER_TRAIN_STEP_PIECES_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics_log.h"
#include "common/model_spec.h"
#include "kernels/auc.h"
#include "kernels/backend.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "worker/client/ps_client.h"
#include "worker/client/push_merger.h"
#include "worker/data/batch.h"
#include "worker/data/data_reader.h"
#include "worker/model/model.h"
#include "worker/train/checkpoint_trigger.h"
#include "worker/train/progress_reporter.h"
#include "worker/train/train_stats.h"

namespace ps {

// A batch with its distinct keys and their pulled rows.
struct PreparedBatch {
  Batch batch;
  UniqueKeys unique;
  std::vector<float> rows;  // the rows of `unique`, table after table
  // The dense vector pulled with `rows` (PullRows with_dense), for the
  // step that trains this batch; has_dense false when it was not pulled.
  std::vector<float> dense;
  bool has_dense = false;
  bool has_data = false;
  bool staged = false;  // handed to Model::Stage (the pipelined loop)
  double pull_ms = 0;
  double read_ms = 0;   // reading `batch`
  double dedup_ms = 0;  // making `unique`
  // With checkpoints: where the reader stood right after reading `batch`
  // (the next example not in it).
  DataPosition position;
};

class EpochBatches {
 public:
  // Epoch `epoch` (0-based) read from `reader`. max_steps:
  // training.max_steps (0: no limit); steps_done: steps of this epoch
  // trained before (a resumed epoch); positions: keep each batch's reader
  // position (with checkpoints).
  // `spec` tells which table each slot's keys belong to (they are
  // deduplicated per table).
  EpochBatches(int epoch, std::unique_ptr<DataReader> reader, int64_t max_steps,
               int64_t steps_done, bool positions, const ModelSpec& spec);

  int epoch() const { return epoch_; }
  // The next batch into `p`, its keys deduplicated; p->rows untouched.
  // p->has_data is false once the epoch's data or its max_steps are used
  // up. The reader's errors.
  absl::Status Read(PreparedBatch* p);
  // How much of the epoch is done: the reader's bytes, or the steps of
  // max_steps, whichever is further; < 0 while unknown.
  // Thread-safe with Read (a loop's prefetch thread may be reading).
  double fraction() const;
  int64_t bad_lines() const {
    absl::MutexLock lock(&mu_);
    return reader_->bad_lines();
  }

 private:
  const int epoch_;
  const std::unique_ptr<DataReader> reader_;
  const int64_t max_steps_;
  const bool positions_;
  const std::vector<int> slot_table_;  // ModelSpec::slot_table
  const int num_tables_;
  // Held while the reader moves (Read) and while it is asked where it is.
  mutable absl::Mutex mu_;
  int64_t steps_;  // batches of this epoch read, counting steps_done
};

class StepPieces {
 public:
  // `client`, `backend` and `metrics` (may be null) are not owned and must
  // outlive this object.
  StepPieces(const JobConfig& config, int rank, PsClient* client,
             Backend* backend, MetricsLog* metrics);

  StepPieces(const StepPieces&) = delete;
  StepPieces& operator=(const StepPieces&) = delete;

  // --- What the loops work with ---------------------------------------------
  const JobConfig& config() const { return config_; }
  const TrainingConfig& training() const { return config_.training(); }
  int rank() const { return rank_; }
  PsClient* client() const { return client_; }
  const ModelSpec& spec() const { return spec_; }
  const DenseBlocks& blocks() const { return blocks_; }
  Model& model() { return model_; }
  // The dense vector as last pulled (or downloaded from the model).
  std::vector<float>& dense_params() { return dense_params_; }
  // Where the model puts the results of a step.
  StepResult* result() { return &result_; }
  ProgressReporter& reporter() { return reporter_; }

  // --- State ----------------------------------------------------------------
  // Steps finished, counting from the resume step.
  int64_t steps() const { return stats_.steps; }
  // The same, for other threads (updated after each step). Thread-safe.
  int64_t step() const { return step_.load(std::memory_order_relaxed); }
  // The statistics so far, with the reporter's metrics and seconds.
  TrainStats stats() const;
  // Where the next untrained example is; empty without checkpoints.
  const DataPosition& position() const { return position_; }
  void set_position(const DataPosition& position) { position_ = position; }
  bool has_checkpoints() const { return trigger_ != nullptr; }
  // The step counter starts at `step`, the position at `position`.
  void ResumeFrom(int64_t step, const DataPosition& position);
  // See Trainer::SetCheckpointPending. Thread-safe.
  void SetCheckpointPending(int64_t id, absl::Time asked_at);

  // --- Pieces of a step -----------------------------------------------------
  // Pulls the rows of p's distinct keys into p->rows (for step `step`) and
  // times it in p->pull_ms; with_dense: the dense vector too, into
  // p->dense, in the same requests (PsClient::PullSparseAndDense).
  absl::Status PullRows(PreparedBatch* p, int64_t step,
                        bool with_dense = false) const;
  // Makes p's pulled dense vector (p->has_dense) dense_params() and hands it
  // to the model, as PullDense does.
  absl::Status UseDense(PreparedBatch* p);
  // Pulls the dense vector into dense_params() and hands it to the model.
  absl::Status PullDense(int64_t step);
  // Model::Stage of p's inputs.
  absl::Status Stage(const PreparedBatch& p);
  // Forward and backward of p in one call (Model::TrainStep), counted.
  absl::Status Compute(const PreparedBatch& p);
  // Counts a trained step of p: steps(), examples, the reporter's window,
  // p's read, dedup and pull times.
  void CountStep(const PreparedBatch& p);
  // Time of the stages the loops measure themselves (TrainStats::stages).
  void AddInputWaitMs(double ms) { stats_.stages.input_wait_ms += ms; }
  void AddComputeMs(double ms) { stats_.stages.compute_ms += ms; }
  void AddPushMs(double ms) {
    stats_.stages.push_ms += ms;
    reporter_.AddPushWaitMs(ms);
  }
  // Adds the step's gradients to the merger, sends them and waits for every
  // push (SYNC).
  absl::Status PushAndWait(const PreparedBatch& p);
  // Adds the step's gradients to the merger; sends the merged push when
  // fewer than max_inflight_pushes are in flight or more than
  // max_merged_steps steps are merged, waiting for room (ASYNC, BOUNDED).
  absl::Status PushBounded(const PreparedBatch& p);
  // Sends what the merger holds and waits for every push.
  absl::Status FlushAndWait();
  // GEO: sends parameter deltas (PsClient::PushDeltasAsync) at steps():
  // per table of spec().tables, its keys and their deltas.
  void PushDeltas(absl::Span<const std::vector<uint64_t>> keys,
                  absl::Span<const std::vector<float>> deltas,
                  absl::Span<const float> dense_delta);
  // Hands the metrics the model gathered since the last call to the
  // reporter.
  absl::Status DrainMetrics();
  // A progress line when one is due after steps().
  absl::Status LogProgress(const EpochBatches& batches);
  // After a step trained `p`: publishes step() and records p's position.
  // Returns the id to arrive at a checkpoint with, when one is due.
  std::optional<int64_t> RecordStep(const PreparedBatch& p);
  // Arrives at checkpoint `id` with steps() and position(). A checkpoint
  // that fails is logged; training goes on. REQUIRES: every push answered.
  void ArriveAtCheckpoint(int64_t id);
  // Meets the other workers at barrier `name` with steps() and position().
  // REQUIRES: every push answered.
  absl::StatusOr<bool> MeetAtBarrier(const std::string& name, bool has_more);

  // --- Epochs ---------------------------------------------------------------
  void StartEpoch(int epoch) { reporter_.StartEpoch(epoch); }
  // Drains the metrics, counts the epoch's bad lines, logs its end.
  absl::Status EndEpoch(const EpochBatches& batches);

 private:
  // Sends the merged push if there is one, after waiting until at most
  // `max_in_flight` pushes are in flight.
  absl::Status FlushPushes(int max_in_flight);

  // Constant after construction.
  const JobConfig config_;
  const int rank_;
  PsClient* const client_;
  const ModelSpec spec_;
  const DenseBlocks blocks_;
  // Null without a checkpoint section.
  const std::unique_ptr<CheckpointTrigger> trigger_;

  // The training thread's.
  Model model_;
  std::vector<float> dense_params_;
  PushMerger merger_;
  StepResult result_;
  TrainStats stats_;
  DataPosition position_;  // of the next untrained example
  ProgressReporter reporter_;
  AucAccumulator metrics_part_;  // DrainMetrics' scratch

  std::atomic<int64_t> step_{0};  // stats_.steps, for other threads
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_STEP_PIECES_H_
