// The training of one worker: reads its share of the data, pulls the rows
// each batch needs, runs the model on the backend and pushes gradients, in
// the mode the config names (training.mode). The Trainer is the front: it
// opens each epoch's reader, evaluates, and hands the steps to the loop it
// picked at construction:
//
//   worker/train/train_loop.h     one loop per mode (SYNC; pipelined ASYNC
//                                 and BOUNDED; GEO), how each step runs
//   worker/train/step_pieces.h    the pieces the loops share (read, pull,
//                                 compute, push, checkpoint bookkeeping) and
//                                 the training state (model, merger, steps)
//   worker/train/progress_reporter.h  progress lines, ETA, metrics log
//
// Progress (loss, AUC, examples/s, pull/push latency, the epoch's progress
// and the ETA) is logged every log_every_steps steps and written to the
// metrics log when there is one. Training AUC and logloss are gathered by
// the backend (on a GPU, in device memory: Model::SetBackendMetrics) and
// fetched at each log line and at the end of an epoch; so is Evaluate's,
// unless training.calibration_slot asks for each prediction.
//
// Checkpoints (only with a `checkpoint` config section): each batch keeps
// the reader position taken right after it was read; after a step that
// checkpoint.every_steps schedules, or once the coordinator reported a new
// round (heartbeat, StepGate), the loop sends what is pending, waits for
// every push and arrives at the cut (PsClient::CheckpointArrive) with the
// position of the next untrained example (worker/train/checkpoint_trigger.h).
// Barriers carry the same step and position, exact with any number of
// reader threads.
//
// A Trainer is used by one thread, except step() and SetCheckpointPending,
// which any thread may call.
#ifndef PS_WORKER_TRAIN_TRAINER_H_
#define PS_WORKER_TRAIN_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics_log.h"
#include "kernels/backend.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "worker/client/ps_client.h"
#include "worker/train/train_stats.h"

namespace ps {

class EpochBatches;
class StepPieces;
class TrainLoop;

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
  int64_t step() const;
  // Where the next example this worker has not trained on is; empty without
  // a checkpoint section.
  const DataPosition& position() const;
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
  // Opens epoch `epoch`'s reader (from the resume position when the job
  // resumed in that epoch).
  absl::StatusOr<std::unique_ptr<EpochBatches>> OpenEpoch(int epoch);

  const std::unique_ptr<StepPieces> pieces_;
  const std::unique_ptr<TrainLoop> loop_;  // over pieces_
  std::optional<DataPosition> resume_;     // until its epoch starts
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_TRAINER_H_
