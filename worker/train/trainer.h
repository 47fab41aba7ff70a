// The training loop of one worker: reads its share of the data, pulls the
// rows each batch needs, runs the model on the backend and pushes gradients,
// in the mode the config names (training.mode):
//
// ASYNC:   the sparse rows of batch t+1 are pulled (on another thread)
//          while batch t computes, then staged (Model::Stage: on a GPU its
//          upload overlaps t's kernels) before t's results are fetched;
//          pushes are asynchronous with at most max_inflight_pushes in
//          flight; when the queue is full, up to max_merged_steps further
//          steps are merged per key into one pending push (PushMerger); the
//          dense table is pulled every pull_dense_every steps.
// BOUNDED: as ASYNC, and before each step the coordinator holds the worker
//          back until it is at most `staleness` steps ahead of the slowest.
// SYNC:    after each step a worker waits for its pushes and meets the others
//          at a barrier, then pulls (no prefetch), so every step sees all
//          pushes of the previous one.
// GEO:     see worker/train/geo_cache.h: local training, deltas every geo_every
//          steps. The dense vector trains where the model runs (its
//          optimizer on the backend: Model::SetDenseOptimizer) and comes to
//          the host only at a sync.
//
// Progress (loss, AUC, examples/s, pull/push latency) is logged every
// log_every_steps steps and written to the metrics log when there is one.
// Training AUC and logloss are gathered by the backend (on a GPU, in device
// memory: Model::SetBackendMetrics) and fetched at each log line and at the
// end of an epoch; so is Evaluate's, unless training.calibration_slot asks
// for each prediction.
//
// Checkpoints (only with a `checkpoint` config section): each batch keeps
// the reader position taken right after it was read; after a step that
// checkpoint.every_steps schedules, or once the coordinator reported a new
// round (heartbeat, StepGate), the trainer sends what is pending, waits for
// every push and arrives at the cut (PsClient::CheckpointArrive) with the
// position of the next untrained example (worker/train/checkpoint_trigger.h).
// Barriers carry the same step and position, exact with any number of
// reader threads.
//
// A Trainer is used by one thread, except step() and SetCheckpointPending,
// which any thread may call.
#ifndef PS_WORKER_TRAIN_TRAINER_H_
#define PS_WORKER_TRAIN_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
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
#include "worker/model/model.h"
#include "worker/train/checkpoint_trigger.h"
#include "worker/train/progress_reporter.h"

namespace ps {

class GeoCache;

struct TrainStats {
  int64_t examples = 0;
  int64_t steps = 0;  // counting from the resume step (Trainer::ResumeFrom)
  int64_t bad_lines = 0;
  double seconds = 0;
  // Progressive validation: predictions made before each batch's update.
  double auc = 0;
  double logloss = 0;
  // Pushes sent (after merging) and steps merged into another step's push.
  int64_t pushes = 0;
  int64_t merged_steps = 0;
};

// Eval calibration of one value of training.calibration_slot.
struct SlotValueCalibration {
  uint64_t key = 0;
  int64_t examples = 0;
  double predicted_ctr = 0;
  double observed_ctr = 0;
};

struct EvalStats {
  int64_t examples = 0;
  int64_t bad_lines = 0;
  double auc = 0;
  double logloss = 0;
  double calibration = 0;  // mean prediction / observed CTR
  double seconds = 0;
  // The most frequent values of training.calibration_slot (if set).
  std::vector<SlotValueCalibration> per_value;
};

class Trainer {
 public:
  // `client`, `backend` and `metrics` (may be null) are not owned and must
  // outlive the trainer.
  Trainer(const JobConfig& config, int rank, PsClient* client, Backend* backend,
          MetricsLog* metrics);
  ~Trainer();

  // Continue a resumed job: the step counter starts at `step` and
  // TrainEpoch(position.epoch) starts reading at `position` (worker/
  // data_reader.h). REQUIRES: before the first TrainEpoch.
  void ResumeFrom(int64_t step, const DataPosition& position);

  // One pass over this worker's share of data.train_files (epoch is
  // 0-based); statistics accumulate over epochs.
  absl::Status TrainEpoch(int epoch);
  // Sends what is pending, waits for every push, then meets the other
  // workers at barrier `name` (PsClient::Barrier) with step() and
  // position().
  absl::StatusOr<bool> Barrier(const std::string& name, bool has_more);
  // Sends what is pending and waits for every push; BOUNDED: tells the
  // coordinator this worker no longer holds others back. Call once after the
  // last epoch.
  absl::Status FinishTraining();
  TrainStats stats() const;
  // Steps finished (from the resume step on). Thread-safe.
  int64_t step() const { return step_.load(std::memory_order_relaxed); }
  // Where the next example this worker has not trained on is; empty without
  // a checkpoint section.
  const DataPosition& position() const { return position_; }
  // The coordinator's answer to a heartbeat sent at `asked_at`: the open
  // checkpoint round (0: none). Ignored without a checkpoint section.
  // Thread-safe.
  void SetCheckpointPending(int64_t id, absl::Time asked_at);

  // Scores `files` (shard `shard` of `num_shards`) with the parameters on
  // the servers; no updates. With data.eval_holdout_fraction, only the
  // lines of `files` it holds out. GEO: call it right after a Barrier (synced),
  // as the worker job does; training then continues from the servers'
  // dense vector.
  absl::StatusOr<EvalStats> Evaluate(const std::vector<std::string>& files,
                                     int shard, int num_shards);

 private:
  struct Prepared;

  absl::Status Prepare(Prepared* p, int64_t step);
  absl::Status PullDense(int64_t step);
  // Forward/backward of one prepared batch, metrics and logging.
  absl::Status Compute(const Prepared& p, absl::Span<const float> rows);
  absl::Status Push(const Prepared& p);
  // ASYNC and BOUNDED: gate, dense pull, Stage (unless staged) and Launch of
  // batch p; FinishStep waits for it, counts it and pushes.
  absl::Status LaunchStep(Prepared& p);
  absl::Status FinishStep(const Prepared& p);
  void CountStep(const Prepared& p);
  // Adds the metrics the model gathered since the last call to reporter_.
  absl::Status DrainMetrics();
  absl::Status FlushPushes(int max_in_flight);
  absl::Status TrainStepGeo(Prepared& p);
  absl::Status GeoSync();
  // A progress line every log_every_steps steps, with the ETA from the
  // fraction of the epoch done.
  absl::Status LogProgress(absl::FunctionRef<double()> epoch_fraction);
  // GEO: syncs the deltas; then sends merged gradients and waits for every
  // push.
  absl::Status SettlePushes();
  // After a step trained the batch `p`: records its position, then arrives
  // at a checkpoint if one is due.
  absl::Status AfterStep(const Prepared& p);

  const JobConfig config_;
  const int rank_;
  PsClient* const client_;
  const ModelSpec spec_;
  const DenseBlocks blocks_;
  Model model_;
  std::vector<float> dense_params_;
  PushMerger merger_;
  std::unique_ptr<GeoCache> geo_;
  bool geo_dense_pulled_ = false;
  StepResult result_;

  // Checkpoints; trigger_ is null without a checkpoint section.
  std::unique_ptr<CheckpointTrigger> trigger_;
  std::atomic<int64_t> step_{0};        // stats_.steps, for other threads
  DataPosition position_;               // of the next untrained example
  std::optional<DataPosition> resume_;  // until its epoch starts

  // Statistics.
  TrainStats stats_;
  ProgressReporter reporter_;
  AucAccumulator metrics_part_;  // DrainMetrics' scratch
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_TRAINER_H_
