// What a worker's training and evaluation report (worker/train/trainer.h):
// plain values, copied out of the trainer.
#ifndef PS_WORKER_TRAIN_TRAIN_STATS_H_
#define PS_WORKER_TRAIN_TRAIN_STATS_H_

#include <cstdint>
#include <vector>

namespace ps {

// Where a worker's training time went, in milliseconds summed over its
// steps. read, dedup and pull run on the prefetch thread of the pipelined
// loops (ASYNC, BOUNDED) while the previous step computes; input_wait is
// how long the training thread then waited for them (what the overlap did
// not hide). compute: the model's forward and backward with staging;
// push: adding to the merger, sending and waiting for room or answers.
struct StageTimes {
  int64_t steps = 0;    // steps trained by this process (not resumed ones)
  double read_ms = 0;   // reading and parsing batches
  double dedup_ms = 0;  // distinct keys per table, shows and clicks
  double pull_ms = 0;   // sparse and dense pulls, request to last answer
  double input_wait_ms = 0;
  double compute_ms = 0;
  double push_ms = 0;
};

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
  StageTimes stages;
  // CPU seconds the worker process had used when training ended (its
  // threads together; before evaluation).
  double cpu_seconds = 0;
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

}  // namespace ps

#endif  // PS_WORKER_TRAIN_TRAIN_STATS_H_
