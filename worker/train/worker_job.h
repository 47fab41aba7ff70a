// Everything a worker process does, as a library call: connect to the
// servers, register with the coordinator, train, meet the other workers,
// evaluate (worker 0 scores all eval files with the final parameters) and
// tell the coordinator it finished. ps_worker's main and the integration
// tests both run this. Thread-compatible: one call per worker.
//
// While it runs, a heartbeat thread (worker/client/heartbeat.h) tells the
// coordinator every cluster.heartbeat_ms that the worker lives and at which
// step, and hands the trainer the checkpoint round the answer names. When
// the coordinator answers Register with a position (the job resumed from a
// checkpoint, or this worker rejoins after a restart), training continues
// there: at that epoch, step and place in the data.
#ifndef PS_WORKER_TRAIN_WORKER_JOB_H_
#define PS_WORKER_TRAIN_WORKER_JOB_H_

#include <optional>

#include "absl/status/statusor.h"
#include "proto/config.pb.h"
#include "worker/train/trainer.h"

namespace ps {

struct WorkerJobOptions {
  // BLAS threads of the CPU backend. Default: 1.
  int blas_threads = 1;
  // The worker was started to resume (ps_worker --resume). The coordinator
  // decides whether and from where it resumes; this only makes a start from
  // scratch log a WARNING. Default: false.
  bool expect_resume = false;
  // Serve Prometheus metrics (the training progress of each log line, the
  // evaluation: ps_worker_<type>_<field>{worker}) at http://ADDRESS/metrics
  // while the job runs; "" for none. Default: none.
  std::string metrics_address;
  // PsClientOptions::local_socket_dir: servers on this host through their
  // Unix-domain sockets there. Default: none (TCP).
  std::string local_socket_dir;
};

struct WorkerJobResult {
  TrainStats train;
  std::optional<EvalStats> eval;  // worker 0, when the config has eval files
  // The epoch after which training.early_stopping_patience stopped the job;
  // 0 when it ran every epoch.
  int stopped_early_after_epoch = 0;
};

// REQUIRES: config validated, 0 <= rank < num_workers. A failure is also
// reported to the coordinator (Finish with the error) when it is reachable.
absl::StatusOr<WorkerJobResult> RunWorkerJob(const JobConfig& config, int rank,
                                             const WorkerJobOptions& options);

}  // namespace ps

#endif  // PS_WORKER_TRAIN_WORKER_JOB_H_
