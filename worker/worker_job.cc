#include "worker/worker_job.h"

#include "common/status_macros.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "worker/ps_client.h"

namespace ps {

absl::StatusOr<WorkerJobResult> RunWorkerJob(const JobConfig& config, int rank,
                                             const WorkerJobOptions& options) {
  BackendOptions backend_options;
  backend_options.threads = options.blas_threads;
  ASSIGN_OR_RETURN(auto backend, Backend::CreateCpu(backend_options));
  LOG(INFO) << "worker " << rank << ": backend " << backend->Name() << "; "
            << DescribeAccelerators();
  ASSIGN_OR_RETURN(auto client,
                   PsClient::Connect(PsClientOptions::FromConfig(config, rank)));
  RETURN_IF_ERROR(client->Register());

  WorkerJobResult result;
  Trainer trainer(config, rank, client.get(), backend.get());
  auto fail = [&](const absl::Status& status) {
    PS_IGNORE_STATUS(client->Finish(result.train.examples,
                                    std::string(status.message())));
    return status;
  };
  auto train = trainer.Train();
  if (!train.ok()) return fail(train.status());
  result.train = *train;
  LOG(INFO) << "worker " << rank << " trained " << train->examples
            << " examples in " << train->seconds << " s (progressive auc "
            << train->auc << ", logloss " << train->logloss << ")";

  // Every worker's pushes are applied before the model is evaluated.
  auto barrier = client->Barrier("train-done", false);
  if (!barrier.ok()) return fail(barrier.status());
  if (rank == 0 && config.data().eval_files_size() > 0) {
    auto eval = trainer.Evaluate({config.data().eval_files().begin(),
                                  config.data().eval_files().end()},
                                 0, 1);
    if (!eval.ok()) return fail(eval.status());
    LOG(INFO) << "eval: auc " << eval->auc << " logloss " << eval->logloss
              << " calibration " << eval->calibration << " on "
              << eval->examples << " examples";
    result.eval = *eval;
  }
  RETURN_IF_ERROR(client->Finish(result.train.examples, "ok"));
  return result;
}

}  // namespace ps
