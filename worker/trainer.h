// The training loop of one worker: reads its share of the data, pulls the
// rows each batch needs, runs the model on the backend and pushes gradients,
// in the mode the config names (training.mode):
//
// ASYNC:   the sparse rows of batch t+1 are pulled while batch t computes;
//          pushes are asynchronous with at most max_inflight_pushes in
//          flight; when the queue is full, up to max_merged_steps further
//          steps are merged per key into one pending push (PushMerger); the
//          dense table is pulled every pull_dense_every steps.
// BOUNDED: as ASYNC, and before each step the coordinator holds the worker
//          back until it is at most `staleness` steps ahead of the slowest.
// SYNC:    after each step a worker waits for its pushes and meets the others
//          at a barrier, then pulls (no prefetch), so every step sees all
//          pushes of the previous one.
// GEO:     see worker/geo_cache.h: local training, deltas every geo_every
//          steps.
//
// Progress (loss, AUC, examples/s, pull/push latency) is logged every
// log_every_steps steps and written to the metrics log when there is one.
// A Trainer is used by one thread.
#ifndef PS_WORKER_TRAINER_H_
#define PS_WORKER_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_spec.h"
#include "kernels/auc.h"
#include "kernels/backend.h"
#include "proto/config.pb.h"
#include "worker/batch.h"
#include "common/metrics_log.h"
#include "worker/model.h"
#include "worker/ps_client.h"
#include "worker/push_merger.h"

namespace ps {

class GeoCache;

struct TrainStats {
  int64_t examples = 0;
  int64_t steps = 0;
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
  Trainer(const JobConfig& config, int rank, PsClient* client,
          Backend* backend, MetricsLog* metrics);
  ~Trainer();

  // One pass over this worker's share of data.train_files; statistics
  // accumulate over epochs.
  absl::Status TrainEpoch(int epoch);
  // Sends what is pending and waits for every push; BOUNDED: tells the
  // coordinator this worker no longer holds others back. Call once after the
  // last epoch.
  absl::Status FinishTraining();
  TrainStats stats() const;

  // Scores `files` (shard `shard` of `num_shards`) with the parameters on
  // the servers; no updates.
  absl::StatusOr<EvalStats> Evaluate(const std::vector<std::string>& files,
                                     int shard, int num_shards);

 private:
  struct Prepared;

  absl::Status Prepare(Prepared* p, int64_t step);
  absl::Status PullDense(int64_t step);
  // Forward/backward of one prepared batch, metrics and logging.
  absl::Status Compute(const Prepared& p, absl::Span<const float> rows);
  absl::Status Push(const Prepared& p);
  absl::Status FlushPushes(int max_in_flight);
  absl::Status TrainStepGeo(Prepared& p);
  absl::Status GeoSync();
  void LogProgress();

  const JobConfig config_;
  const int rank_;
  PsClient* const client_;
  Backend* const backend_;
  MetricsLog* const metrics_;
  const ModelSpec spec_;
  const DenseBlocks blocks_;
  Model model_;
  std::vector<float> dense_params_;
  PushMerger merger_;
  std::unique_ptr<GeoCache> geo_;
  StepResult result_;

  // Statistics.
  TrainStats stats_;
  AucAccumulator total_;
  AucAccumulator window_;
  int64_t window_examples_ = 0;
  double window_start_ = 0;  // seconds
  double train_seconds_ = 0;
  double pull_ms_ = 0;  // summed since the last log line
  double push_wait_ms_ = 0;
};

}  // namespace ps

#endif  // PS_WORKER_TRAINER_H_
