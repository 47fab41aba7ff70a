// ps_worker --config JOB --rank j: trains on this worker's share of the data,
// pushing gradients to the servers; worker 0 then evaluates the eval files.
// Writes --result_file (JSON) with its figures.
//
// Resuming: the coordinator (server 0) decides. When the job was resumed
// from a checkpoint (ps_server --resume) or this worker is restarted after
// it died, Register answers with the worker's position and step, and the
// worker continues there, with or without --resume. --resume only states
// the intent: a worker given it that the coordinator starts from scratch
// logs a warning.
//
// ps_worker --predict --export_dir D --data F --output P: scores data file F
// with the exported model in D (common/export_format.h) and writes one
// probability per line of F to P; needs no servers and no --config.
#include <signal.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/cli.h"
#include "common/cluster_env.h"
#include "common/config.h"
#include "common/export_format.h"
#include "common/local_socket.h"
#include "common/status_macros.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "kernels/cpu/blas_core.h"
#include "worker/data/follow_reader.h"
#include "worker/model/predict.h"
#include "worker/train/worker_job.h"

DEFINE_string(config, "", "job config file (.pbtxt)");
DEFINE_int32(rank, -1, "this worker's rank (default: $PS_RANK)");
DEFINE_string(servers, "",
              "comma-separated host:port of all servers, "
              "overriding the config (default: $PS_SERVERS)");
DEFINE_int32(num_workers, 0,
             "overrides cluster.num_workers (default: "
             "$PS_NUM_WORKERS)");
DEFINE_string(data_dir, "", "overrides data.generate.output_dir");
DEFINE_string(metrics_dir, "", "overrides training.metrics_dir");
DEFINE_string(checkpoint_dir, "",
              "overrides checkpoint.dir (and turns checkpoints on with the "
              "section's defaults when the config has none; give the servers "
              "the same)");
DEFINE_string(local_socket_dir, "",
              "reach the servers whose address is a loopback one through "
              "their Unix-domain sockets in this folder (ps_server "
              "--local_socket_dir; default: $PS_LOCAL_SOCKET_DIR, TCP when "
              "empty)");
DEFINE_string(result_file, "", "where to write this worker's results (JSON)");
DEFINE_int32(blas_threads, 1, "BLAS threads of the CPU backend");
DEFINE_string(metrics_address, "",
              "serve Prometheus metrics at http://ADDRESS/metrics (host:port "
              "or :port; default: $PS_METRICS_ADDRESS, else none)");
DEFINE_bool(resume, false,
            "expect to continue from the coordinator's "
            "checkpoint (it decides; warns when it has none)");
DEFINE_bool(predict, false,
            "score --data with the export in --export_dir "
            "into --output instead of training");
DEFINE_string(export_dir, "", "--predict: folder of the exported model");
DEFINE_string(data, "", "--predict: data file to score (the model's format)");
DEFINE_string(output, "",
              "--predict: where to write one probability per "
              "line");

namespace {

std::string ToJson(int rank, const ps::WorkerJobResult& r) {
  const ps::TrainStats& t = r.train;
  std::string json = absl::StrFormat(
      "{\"rank\": %d, \"examples\": %d, \"steps\": %d, \"bad_lines\": %d, "
      "\"train_seconds\": %.3f, \"examples_per_sec\": %.1f, "
      "\"train_auc\": %.6f, \"train_logloss\": %.6f",
      rank, t.examples, t.steps, t.bad_lines, t.seconds,
      t.examples / std::max(t.seconds, 1e-9), t.auc, t.logloss);
  if (r.eval.has_value()) {
    absl::StrAppendFormat(
        &json,
        ", \"eval_examples\": %d, \"eval_auc\": %.6f, \"eval_logloss\": "
        "%.6f, \"eval_calibration\": %.4f, \"eval_bad_lines\": %d",
        r.eval->examples, r.eval->auc, r.eval->logloss, r.eval->calibration,
        r.eval->bad_lines);
  }
  absl::StrAppendFormat(&json, ", \"cpu_seconds\": %.3f", t.cpu_seconds);
  const ps::StageTimes& st = t.stages;
  const double steps = static_cast<double>(std::max<int64_t>(st.steps, 1));
  absl::StrAppendFormat(
      &json,
      ", \"stage_ms_per_step\": {\"read\": %.4f, \"dedup\": %.4f, "
      "\"pull\": %.4f, \"input_wait\": %.4f, \"compute\": %.4f, "
      "\"push\": %.4f}",
      st.read_ms / steps, st.dedup_ms / steps, st.pull_ms / steps,
      st.input_wait_ms / steps, st.compute_ms / steps, st.push_ms / steps);
  if (r.stopped_early_after_epoch > 0) {
    absl::StrAppendFormat(&json, ", \"stopped_early_after_epoch\": %d",
                          r.stopped_early_after_epoch);
  }
  return json + "}\n";
}

// --predict mode; returns the exit code.
int Predict() {
  if (FLAGS_export_dir.empty() || FLAGS_data.empty() || FLAGS_output.empty()) {
    LOG(ERROR) << "--predict needs --export_dir, --data and --output";
    return ps::kExitUsage;
  }
  auto model = ps::ExportedModel::LoadDir(FLAGS_export_dir);
  if (!model.ok()) {
    LOG(ERROR) << "cannot load the export: " << model.status().message();
    return ps::kExitFailure;
  }
  ps::BackendOptions backend_options;
  backend_options.threads = FLAGS_blas_threads;
  auto backend = ps::Backend::CreateCpu(backend_options);
  if (!backend.ok()) {
    LOG(ERROR) << backend.status().message();
    return ps::kExitFailure;
  }
  auto lines =
      ps::PredictFile(**model, FLAGS_data, FLAGS_output, backend->get());
  if (!lines.ok()) {
    LOG(ERROR) << "predict failed: " << lines.status().message();
    return ps::kExitFailure;
  }
  LOG(INFO) << "scored " << *lines << " lines of " << FLAGS_data
            << " with the export of step " << (*model)->step() << " into "
            << FLAGS_output;
  return ps::kExitOk;
}

// Follow mode: the first SIGTERM or SIGINT ends the input (the job then
// ends as after its last batch); the handler resets itself, so a second
// signal stops the worker as usual.
void OnStopSignal(int) { ps::StopAllFollowReaders(); }

void StopFollowingOnSignals() {
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  // Before flags are parsed (they edit argv): may start this program again
  // with faster OpenBLAS kernels (kernels/cpu/blas_core.h).
  ps::RestartWithBetterBlasCore(argv);
  ps::ParseCommandLine("ps_worker", "ps_worker --config JOB --rank J", __FILE__,
                       &argc, &argv);
  google::InitGoogleLogging(argv[0]);
  // Debian's Abseil is built without NDEBUG, which leaves Mutex deadlock
  // detection on: a lock-order graph update per Lock, 1-2 % of a training
  // job's CPU (perf). The tests keep it; the binaries do not need it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;
  if (FLAGS_predict) return Predict();

  ps::ConfigOverrides overrides;
  overrides.data_dir = FLAGS_data_dir;
  overrides.metrics_dir = FLAGS_metrics_dir;
  int rank = -1;
  absl::Status env =
      ps::ResolveClusterFlags({FLAGS_servers, FLAGS_num_workers, FLAGS_rank},
                              std::getenv, &overrides, &rank);
  if (!env.ok()) {
    LOG(ERROR) << env.message();
    return ps::kExitUsage;
  }
  if (FLAGS_config.empty()) {
    LOG(ERROR) << "--config is required";
    return ps::kExitUsage;
  }
  auto config = ps::LoadJobConfig(FLAGS_config, overrides);
  if (!config.ok()) {
    LOG(ERROR) << "bad config: " << config.status().message();
    return ps::kExitUsage;
  }
  if (!FLAGS_checkpoint_dir.empty()) {
    config->mutable_checkpoint()->set_dir(FLAGS_checkpoint_dir);
  }
  if (rank < 0 || rank >= config->cluster().num_workers()) {
    LOG(ERROR) << "--rank " << rank << " is out of range: the job has "
               << config->cluster().num_workers() << " workers";
    return ps::kExitUsage;
  }
  if (config->data().follow()) {
    StopFollowingOnSignals();
    LOG(INFO) << "data.follow: training on files as they appear; SIGTERM or "
                 "SIGINT ends the input (a second one stops the worker)";
  }
  ps::WorkerJobOptions options;
  options.blas_threads = FLAGS_blas_threads;
  options.expect_resume = FLAGS_resume;
  options.metrics_address =
      ps::FlagOrEnv(FLAGS_metrics_address, "PS_METRICS_ADDRESS", std::getenv);
  {
    auto dir = ps::LocalSocketDirFromFlag(FLAGS_local_socket_dir,
                                          config->cluster().servers_size());
    if (!dir.ok()) {
      LOG(ERROR) << dir.status().message();
      return ps::kExitUsage;
    }
    options.local_socket_dir = *std::move(dir);
  }
  auto result = ps::RunWorkerJob(*config, rank, options);
  if (!result.ok()) {
    LOG(ERROR) << "worker " << rank << " failed: " << result.status();
    return ps::kExitFailure;
  }
  std::string json = ToJson(rank, *result);
  // In the log too, for launchers that collect logs but not files.
  LOG(INFO) << "worker " << rank
            << " result: " << json.substr(0, json.find_last_not_of('\n') + 1);
  if (!FLAGS_result_file.empty()) {
    std::ofstream out(FLAGS_result_file);
    out << json;
    if (!out) {
      LOG(ERROR) << "cannot write " << FLAGS_result_file;
      return ps::kExitFailure;
    }
  }
  LOG(INFO) << "worker " << rank << " done";
  return ps::kExitOk;
}
