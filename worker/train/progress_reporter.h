// What a training worker tells its user: every log_every_steps steps a
// progress line
//
//   worker 0 step 1000 examples 512000 loss 0.4826 auc 0.7766 ex/s 59645
//   pull_ms/step 5.87 push_wait_ms/step 2.31 epoch 1/1 52% eta 8s
//
// (one line; loss and AUC of the predictions made since the previous line,
// examples/s over that window, milliseconds spent pulling and waiting on
// pushes per step; the epoch's progress and the job's ETA only when the
// input's size is known), the same fields as a "train" line of the metrics
// log (common/metrics_log.h) when there is one, and a line at the end of
// each epoch. It also keeps the metrics of every prediction of the run (the
// progressive AUC and logloss of TrainStats) and the seconds spent training.
//
// The reporter only counts what it is told: the trainer adds each step's
// examples and pull time, the time it waited on pushes, and the prediction
// statistics it drains from the model (Model::TakeMetrics).
//
// Not thread-safe: the training thread owns it.
#ifndef PS_WORKER_TRAIN_PROGRESS_REPORTER_H_
#define PS_WORKER_TRAIN_PROGRESS_REPORTER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/metrics_log.h"
#include "kernels/auc.h"

namespace ps {

// The seconds left of a job whose current epoch is `fraction` done after
// `elapsed` seconds, with `epochs_after` more epochs of the same length to
// go; nullopt while fraction is unknown (< 0) or 0.
std::optional<double> EtaSeconds(double fraction, double elapsed,
                                 int epochs_after);
// "45s", "3m07s", "2h05m".
std::string FormatDuration(double seconds);

struct ProgressOptions {
  // The worker's rank, named in every line. Default: 0.
  int rank = 0;
  // Steps between progress lines (training.log_every_steps); the latencies
  // are per step of this many. REQUIRES: > 0. Default: 100.
  int log_every_steps = 100;
  // The job's epochs (training.epochs), for the ETA. Default: 1.
  int epochs = 1;
  // Seconds on a clock that does not go back. Default (empty): the wall
  // clock, in unix seconds.
  std::function<double()> clock;
};

class ProgressReporter {
 public:
  // `metrics` (may be null: no metrics log) is not owned and must outlive
  // the reporter.
  ProgressReporter(ProgressOptions options, MetricsLog* metrics);

  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // --- What happened since the last line ----------------------------------
  // A step trained on `examples` examples; pulling its sparse rows took
  // `pull_ms` milliseconds.
  void CountStep(int64_t examples, double pull_ms);
  // Other pulls (the dense vector).
  void AddPullMs(double ms) { pull_ms_ += ms; }
  // Time the trainer spent sending pushes and waiting for their answers.
  void AddPushWaitMs(double ms) { push_wait_ms_ += ms; }
  // Statistics of predictions made since the last call: they count in the
  // current window and in total().
  void AddMetrics(const AucAccumulator& part);

  // --- Epochs -------------------------------------------------------------
  // Epoch `epoch` (0-based) starts now; the ETA measures from here. The
  // first call also starts the first window.
  void StartEpoch(int epoch);
  // The epoch started last ended now: its time counts in seconds(). Logs
  // "worker R finished epoch E/N: X examples, B bad lines skipped" with the
  // run's `examples` so far and the epoch's `bad_lines`.
  void EndEpoch(int64_t examples, int64_t bad_lines);

  // --- Lines --------------------------------------------------------------
  // Whether a progress line is due once `step` steps are done.
  bool Due(int64_t step) const { return step % options_.log_every_steps == 0; }
  // The progress line after `step` steps and `examples` examples in all
  // (counting from a resumed step), with the current epoch `epoch_fraction`
  // done (< 0 or 0: unknown; no ETA then, and eta_sec -1 in the metrics
  // log). Logs it (LOG(INFO)), writes its fields to the metrics log as type
  // "train", returns it and starts the next window.
  std::string Report(int64_t step, int64_t examples, double epoch_fraction);

  // Every prediction added so far.
  const AucAccumulator& total() const { return total_; }
  // Seconds from StartEpoch to EndEpoch, summed over the epochs.
  double seconds() const { return train_seconds_; }

 private:
  double Now() const;

  const ProgressOptions options_;
  MetricsLog* const metrics_;

  AucAccumulator total_;
  // The window: what happened since the last line (or the first epoch).
  AucAccumulator window_;
  int64_t window_examples_ = 0;
  double window_start_ = 0;  // seconds; 0 before the first epoch
  double pull_ms_ = 0;
  double push_wait_ms_ = 0;

  int epoch_ = 0;
  double epoch_start_ = 0;
  double train_seconds_ = 0;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_PROGRESS_REPORTER_H_
