// What a worker's training and evaluation report (worker/train/trainer.h):
// plain values, copied out of the trainer.
#ifndef PS_WORKER_TRAIN_TRAIN_STATS_H_
#define PS_WORKER_TRAIN_TRAIN_STATS_H_

#include <cstdint>
#include <vector>

namespace ps {

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

}  // namespace ps

#endif  // PS_WORKER_TRAIN_TRAIN_STATS_H_
