// The training loop of one worker: reads its share of the data, pulls the
// rows each batch needs, runs the model on the backend and pushes gradients.
//
// ASYNC: the sparse rows of batch t+1 are pulled while batch t computes;
// pushes are asynchronous with at most training.max_inflight_pushes in
// flight; the dense table is pulled every training.pull_dense_every steps.
// SYNC: after each step a worker waits for its pushes, meets the others at a
// barrier, then pulls (no prefetch), so every step sees all pushes of the
// previous one. Progress (loss, AUC, examples/s, pull/push latency) is logged
// every training.log_every_steps steps. A Trainer is used by one thread.
#ifndef PS_WORKER_TRAINER_H_
#define PS_WORKER_TRAINER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_spec.h"
#include "kernels/backend.h"
#include "proto/config.pb.h"
#include "worker/model.h"
#include "worker/ps_client.h"

namespace ps {

struct TrainStats {
  int64_t examples = 0;
  int64_t steps = 0;
  int64_t bad_lines = 0;
  double seconds = 0;
  // Progressive validation: predictions made before each batch's update.
  double auc = 0;
  double logloss = 0;
};

struct EvalStats {
  int64_t examples = 0;
  int64_t bad_lines = 0;
  double auc = 0;
  double logloss = 0;
  double calibration = 0;
  double seconds = 0;
};

class Trainer {
 public:
  // `client` and `backend` are not owned and must outlive the trainer.
  Trainer(const JobConfig& config, int rank, PsClient* client,
          Backend* backend);

  // All epochs over this worker's share of data.train_files.
  absl::StatusOr<TrainStats> Train();

  // Scores `files` (shard `shard` of `num_shards`) with the current
  // parameters; no updates.
  absl::StatusOr<EvalStats> Evaluate(const std::vector<std::string>& files,
                                     int shard, int num_shards);

 private:
  struct Prepared;

  absl::Status Prepare(Prepared* p, int64_t step);
  absl::Status PullDense(int64_t step);

  const JobConfig config_;
  const int rank_;
  PsClient* const client_;
  const ModelSpec spec_;
  const DenseBlocks blocks_;
  Model model_;
  std::vector<float> dense_params_;
  double pull_ms_ = 0;  // summed since the last log line
  double push_wait_ms_ = 0;
};

}  // namespace ps

#endif  // PS_WORKER_TRAINER_H_
