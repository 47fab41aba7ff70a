#include "worker/train/worker_job.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/metrics_http.h"
#include "common/metrics_log.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "kernels/backend_select.h"
#include "worker/client/heartbeat.h"
#include "worker/client/ps_client.h"

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

// FinishRequest.status for a failed job: the error's message, or the whole
// status where the message alone would read as success ("" or "ok").
std::string FinishStatusText(const absl::Status& status) {
  if (status.message().empty() || status.message() == "ok") {
    return status.ToString();
  }
  return std::string(status.message());
}

// One run of the worker's job: register, train, finish and wait for the
// job's end, or stop for a rollback.
struct RunOutcome {
  absl::StatusOr<WorkerJobResult> result = absl::UnknownError("not run");
  bool rollback = false;   // the job rolled back: run again
  int64_t generation = 0;  // the generation to run in
};

RunOutcome RunOnce(const JobConfig& config, int rank,
                   const WorkerJobOptions& options, Backend* backend,
                   MetricsLog* metrics, int64_t generation);

}  // namespace

absl::StatusOr<WorkerJobResult> RunWorkerJob(const JobConfig& config, int rank,
                                             const WorkerJobOptions& options) {
  BackendOptions backend_options;
  backend_options.threads = options.blas_threads;
  ASSIGN_OR_RETURN(SelectedBackend selected,
                   SelectBackend(ToBackendKind(config.training().backend()),
                                 backend_options));
  // The model is device-resident (worker/model/model.h): it uses a device
  // backend directly, copying only a step's inputs and results.
  std::unique_ptr<Backend> backend = std::move(selected.backend);
  LOG(INFO) << "worker " << rank << ": " << selected.description
            << "; model runs on " << backend->Name();
  std::unique_ptr<MetricsLog> metrics;
  if (!config.training().metrics_dir().empty()) {
    ASSIGN_OR_RETURN(
        metrics, MetricsLog::Open(absl::StrCat(config.training().metrics_dir(),
                                               "/worker_", rank, ".jsonl")));
  }
  std::unique_ptr<MetricsHttpServer> metrics_http;
  if (!options.metrics_address.empty()) {
    if (metrics == nullptr) metrics = MetricsLog::InMemory();
    MetricsLog* log = metrics.get();
    ASSIGN_OR_RETURN(
        metrics_http,
        MetricsHttpServer::Start(options.metrics_address, [log, rank] {
          return LatestAsPrometheus("ps_worker", log->Latest(),
                                    {{"worker", absl::StrCat(rank)}});
        }));
    LOG(INFO) << "worker " << rank << ": metrics at http://"
              << options.metrics_address << "/metrics (port "
              << metrics_http->port() << ")";
  }
  // A job-wide rollback (a server restarted) starts the worker over from
  // its position in the checkpoint the servers reloaded: a new client (it
  // learns the servers' new incarnations) and a new trainer.
  int64_t generation = 0;
  for (int rollbacks = 0;; ++rollbacks) {
    RunOutcome run = RunOnce(config, rank, options, backend.get(),
                             metrics.get(), generation);
    if (run.rollback) {
      generation = run.generation;
      LOG(WARNING) << "worker " << rank << ": starting over (generation "
                   << generation << ", time " << rollbacks + 1
                   << "): training again from the checkpoint";
      continue;
    }
    return std::move(run.result);
  }
}

namespace {

// Trains epochs first_epoch.. of the job, evaluating after them as the
// config asks (worker 0; every worker waits at barriers meanwhile).
absl::Status TrainEpochs(const JobConfig& config, int rank, int first_epoch,
                         MetricsLog* metrics, Trainer* trainer,
                         WorkerJobResult* result) {
  const int epochs = config.training().epochs();
  // Evaluation reads the eval files, or the lines of the train files that
  // data.eval_holdout_fraction holds out.
  const bool holdout = config.data().eval_holdout_fraction() > 0;
  const auto& eval_files =
      holdout ? config.data().train_files() : config.data().eval_files();
  const bool has_eval = !eval_files.empty();
  // Early stopping (worker 0 decides; the others learn it at the barrier).
  const int patience = config.training().early_stopping_patience();
  double best_logloss = std::numeric_limits<double>::infinity();
  int best_epoch = 0;
  for (int epoch = first_epoch; epoch <= epochs; ++epoch) {
    RETURN_IF_ERROR(trainer->TrainEpoch(epoch - 1));
    if (epoch == epochs) RETURN_IF_ERROR(trainer->FinishTraining());
    if (!has_eval ||
        (epoch < epochs && !config.training().eval_every_epoch())) {
      continue;
    }
    // Every worker's pushes are applied before the model is evaluated (the
    // trainer's barriers wait for them), and nobody trains on while worker 0
    // evaluates.
    RETURN_IF_ERROR(
        trainer->Barrier(absl::StrCat("epoch-", epoch, "-done"), false)
            .status());
    bool go_on = true;
    if (rank == 0) {
      ASSIGN_OR_RETURN(
          EvalStats eval,
          trainer->Evaluate({eval_files.begin(), eval_files.end()}, 0, 1));
      LogEval(rank, epoch, eval, metrics);
      result->eval = eval;
      if (patience > 0) {
        if (eval.logloss <
            best_logloss - config.training().early_stopping_min_delta()) {
          best_logloss = eval.logloss;
          best_epoch = epoch;
        } else if (epoch - best_epoch >= patience && epoch < epochs) {
          LOG(INFO) << "worker 0: early stopping after epoch " << epoch
                    << ": eval logloss " << eval.logloss
                    << " has not improved on " << best_logloss << " (epoch "
                    << best_epoch << ") for " << epoch - best_epoch
                    << " epoch(s)";
          go_on = false;
        }
      }
    }
    if (epoch < epochs) {
      // Only worker 0 may have more: all_done means it stopped early.
      ASSIGN_OR_RETURN(
          const bool all_done,
          trainer->Barrier(absl::StrCat("epoch-", epoch, "-evaluated"),
                           /*has_more=*/rank == 0 && go_on));
      if (patience > 0 && all_done) {
        result->stopped_early_after_epoch = epoch;
        return trainer->FinishTraining();
      }
    }
  }
  return absl::OkStatus();
}

RunOutcome RunOnceInner(const JobConfig& config, int rank,
                        const WorkerJobOptions& options, Backend* backend,
                        MetricsLog* metrics, PsClient* client,
                        const ResumeInfo& resume) {
  RunOutcome out;
  out.generation = resume.generation;
  WorkerJobResult result;
  Trainer trainer(config, rank, client, backend, metrics);
  int first_epoch = 1;
  if (resume.position.has_value()) {
    const DataPosition& p = *resume.position;
    LOG(INFO) << "worker " << rank << ": resuming from " << resume.resumed_from
              << " at step " << resume.step << ", epoch " << p.epoch() + 1
              << ", file " << (p.file_index() < 0 ? "(shuffled)" : p.file())
              << " offset " << p.offset() << " (" << p.examples_done()
              << " examples of the epoch done)";
    trainer.ResumeFrom(resume.step, p);
    first_epoch = p.epoch() + 1;
  } else if (options.expect_resume && resume.generation == 0) {
    LOG(WARNING) << "worker " << rank << ": --resume was given, but the "
                 << "coordinator has no checkpoint to resume from: training "
                    "starts from the beginning";
  }
  HeartbeatThread heartbeat(
      client, absl::Milliseconds(std::max(1, config.cluster().heartbeat_ms())),
      [&trainer] { return trainer.step(); },
      [&trainer](int64_t pending, absl::Time asked_at) {
        trainer.SetCheckpointPending(pending, asked_at);
      });
  // A server restarted or the job rolls back: ask for (or join) the
  // rollback and start over. Anything else: report the failure to the
  // coordinator (the job's outcome becomes failed, naming this worker and
  // `status`) and return it.
  auto fail = [&](const absl::Status& status) {
    heartbeat.Stop();
    if (IsFenced(status)) {
      // Declared dead while it was stopped or cut off: it starts over as a
      // restarted worker (registering again), in this generation.
      LOG(WARNING) << "worker " << rank << ": " << status;
      out.rollback = true;
      out.generation = resume.generation;
      return out;
    }
    if (IsServerRestart(status) || IsRollback(status)) {
      LOG(WARNING) << "worker " << rank << ": " << status;
      absl::StatusOr<int64_t> next =
          client->Recover(resume.generation, std::string(status.message()));
      if (next.ok()) {
        out.rollback = true;
        out.generation = *next;
        return out;
      }
      LOG(ERROR) << "worker " << rank << ": rollback failed: " << next.status();
    }
    PS_IGNORE_STATUS(client->Finish(trainer.stats().examples,
                                    FinishStatusText(status), trainer.step(),
                                    trainer.position()));
    out.result = status;
    return out;
  };
  absl::Status trained =
      TrainEpochs(config, rank, first_epoch, metrics, &trainer, &result);
  if (!trained.ok()) return fail(trained);
  result.train = trainer.stats();
  result.train.cpu_seconds = ProcessCpuSeconds();
  LOG(INFO) << "worker " << rank << " trained " << result.train.examples
            << " examples in " << result.train.seconds << " s (progressive auc "
            << result.train.auc << ", logloss " << result.train.logloss << "; "
            << result.train.pushes << " pushes, " << result.train.merged_steps
            << " steps merged)";
  if (metrics != nullptr) {
    metrics->Write("train_done", {{"examples", result.train.examples},
                                  {"seconds", result.train.seconds},
                                  {"auc", result.train.auc},
                                  {"logloss", result.train.logloss}});
  }
  heartbeat.Stop();
  absl::Status finished = client->Finish(result.train.examples, "ok",
                                         trainer.step(), trainer.position());
  if (IsRollback(finished) || IsFenced(finished)) {
    // The job rolled back meanwhile (server 0 restarted, say): this
    // worker's part is trained again from the checkpoint.
    return fail(finished);
  }
  if (!finished.ok()) {
    out.result = finished;
    return out;
  }
  // Done, but a rollback before the job's end trains this worker's part
  // again from the checkpoint.
  absl::StatusOr<bool> rolled_back = client->WaitJobEnd(resume.generation);
  if (rolled_back.ok() && *rolled_back) {
    out.rollback = true;
    absl::StatusOr<int64_t> next =
        client->Recover(resume.generation,
                        "rolled back after this worker "
                        "finished");
    if (!next.ok()) {
      out.rollback = false;
      out.result = next.status();
      return out;
    }
    out.generation = *next;
    return out;
  }
  if (!rolled_back.ok()) {
    LOG(WARNING) << "worker " << rank
                 << ": waiting for the job's end: " << rolled_back.status();
  }
  out.result = result;
  return out;
}

RunOutcome RunOnce(const JobConfig& config, int rank,
                   const WorkerJobOptions& options, Backend* backend,
                   MetricsLog* metrics, int64_t generation) {
  RunOutcome out;
  PsClientOptions client_options = PsClientOptions::FromConfig(config, rank);
  client_options.local_socket_dir = options.local_socket_dir;
  absl::StatusOr<std::unique_ptr<PsClient>> client =
      PsClient::Connect(client_options);
  if (!client.ok()) {
    out.result = client.status();
    return out;
  }
  absl::StatusOr<ResumeInfo> resume = (*client)->Register();
  if (!resume.ok()) {
    out.result = resume.status();
    return out;
  }
  if (resume->generation < generation) {
    LOG(WARNING) << "worker " << rank << ": registered in generation "
                 << resume->generation << " after rollback " << generation;
  }
  return RunOnceInner(config, rank, options, backend, metrics, client->get(),
                      *resume);
}

}  // namespace

}  // namespace ps
