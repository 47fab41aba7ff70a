#include "worker/worker_job.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "kernels/backend_select.h"
#include "common/metrics_log.h"
#include "worker/ps_client.h"

namespace ps {

namespace {

BackendKind ToBackendKind(TrainingConfig::Backend backend) {
  switch (backend) {
    case TrainingConfig::CPU:
      return BackendKind::kCpu;
    case TrainingConfig::CUDA:
      return BackendKind::kCuda;
    default:
      return BackendKind::kAuto;
  }
}

void LogEval(int rank, int epoch, const EvalStats& eval, MetricsLog* metrics) {
  LOG(INFO) << "eval after epoch " << epoch << ": auc " << eval.auc
            << " logloss " << eval.logloss << " calibration "
            << eval.calibration << " on " << eval.examples << " examples";
  for (const SlotValueCalibration& v : eval.per_value) {
    LOG(INFO) << "eval calibration of slot value " << v.key << ": "
              << v.examples << " examples, predicted ctr " << v.predicted_ctr
              << ", observed ctr " << v.observed_ctr;
  }
  if (metrics != nullptr) {
    metrics->Write("eval", {{"epoch", epoch},
                            {"examples", eval.examples},
                            {"auc", eval.auc},
                            {"logloss", eval.logloss},
                            {"calibration", eval.calibration}});
  }
}

}  // namespace

absl::StatusOr<WorkerJobResult> RunWorkerJob(const JobConfig& config, int rank,
                                             const WorkerJobOptions& options) {
  BackendOptions backend_options;
  backend_options.threads = options.blas_threads;
  ASSIGN_OR_RETURN(SelectedBackend selected,
                   SelectBackend(ToBackendKind(config.training().backend()),
                                 backend_options));
  std::unique_ptr<Backend> backend = std::move(selected.backend);
  // The model keeps its buffers in host memory (worker/model.h): a device
  // backend runs behind a staging layer that copies each call's operands.
  if (!backend->UsesHostMemory()) {
    backend = Backend::CreateStaging(std::move(backend));
  }
  LOG(INFO) << "worker " << rank << ": " << selected.description
            << "; model runs on " << backend->Name();
  std::unique_ptr<MetricsLog> metrics;
  if (!config.training().metrics_dir().empty()) {
    ASSIGN_OR_RETURN(metrics,
                     MetricsLog::Open(absl::StrCat(
                         config.training().metrics_dir(), "/worker_", rank,
                         ".jsonl")));
  }
  ASSIGN_OR_RETURN(auto client,
                   PsClient::Connect(PsClientOptions::FromConfig(config, rank)));
  RETURN_IF_ERROR(client->Register());

  WorkerJobResult result;
  Trainer trainer(config, rank, client.get(), backend.get(), metrics.get());
  auto fail = [&](const absl::Status& status) {
    PS_IGNORE_STATUS(client->Finish(trainer.stats().examples,
                                    std::string(status.message())));
    return status;
  };
  const int epochs = config.training().epochs();
  const bool has_eval = config.data().eval_files_size() > 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    absl::Status status = trainer.TrainEpoch(epoch - 1);
    if (status.ok() && epoch == epochs) status = trainer.FinishTraining();
    if (!status.ok()) return fail(status);
    if (!has_eval || (epoch < epochs && !config.training().eval_every_epoch())) {
      continue;
    }
    // Every worker's pushes are applied before the model is evaluated, and
    // nobody trains on while worker 0 evaluates.
    if (epoch < epochs) {
      status = client->WaitPushes(0);
      if (!status.ok()) return fail(status);
    }
    auto barrier = client->Barrier(absl::StrCat("epoch-", epoch, "-done"), false);
    if (!barrier.ok()) return fail(barrier.status());
    if (rank == 0) {
      auto eval = trainer.Evaluate({config.data().eval_files().begin(),
                                    config.data().eval_files().end()},
                                   0, 1);
      if (!eval.ok()) return fail(eval.status());
      LogEval(rank, epoch, *eval, metrics.get());
      result.eval = *eval;
    }
    if (epoch < epochs) {
      barrier = client->Barrier(absl::StrCat("epoch-", epoch, "-evaluated"),
                                false);
      if (!barrier.ok()) return fail(barrier.status());
    }
  }
  result.train = trainer.stats();
  LOG(INFO) << "worker " << rank << " trained " << result.train.examples
            << " examples in " << result.train.seconds
            << " s (progressive auc " << result.train.auc << ", logloss "
            << result.train.logloss << "; " << result.train.pushes
            << " pushes, " << result.train.merged_steps << " steps merged)";
  if (metrics != nullptr) {
    metrics->Write("train_done", {{"examples", result.train.examples},
                                  {"seconds", result.train.seconds},
                                  {"auc", result.train.auc},
                                  {"logloss", result.train.logloss}});
  }
  RETURN_IF_ERROR(client->Finish(result.train.examples, "ok"));
  return result;
}

}  // namespace ps
