// ps_worker --config JOB --rank j: trains on this worker's share of the data,
// pushing gradients to the servers; worker 0 then evaluates the eval files.
// Writes --result_file (JSON) with its figures.
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/config.h"
#include "common/status_macros.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "worker/ps_client.h"
#include "worker/trainer.h"

DEFINE_string(config, "", "job config file (.pbtxt)");
DEFINE_int32(rank, -1, "this worker's rank (default: $PS_RANK)");
DEFINE_string(servers, "", "comma-separated host:port of all servers, "
                           "overriding the config (default: $PS_SERVERS)");
DEFINE_int32(num_workers, 0, "overrides cluster.num_workers (default: "
                             "$PS_NUM_WORKERS)");
DEFINE_string(data_dir, "", "overrides data.generate.output_dir");
DEFINE_string(result_file, "", "where to write this worker's results (JSON)");
DEFINE_int32(blas_threads, 1, "BLAS threads of the CPU backend");

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

bool IntFromEnv(const char* name, int* out) {
  std::string v = Env(name);
  if (v.empty()) return true;
  if (absl::SimpleAtoi(v, out)) return true;
  LOG(ERROR) << name << "='" << v << "' is not a number";
  return false;
}

absl::Status Run(const ps::JobConfig& config, int rank, std::string* json) {
  ps::BackendOptions backend_options;
  backend_options.threads = FLAGS_blas_threads;
  auto backend = ps::Backend::CreateCpu(backend_options);
  if (!backend.ok()) return backend.status();
  LOG(INFO) << "worker " << rank << ": backend " << (*backend)->Name();
  auto client = ps::PsClient::Connect(ps::PsClientOptions::FromConfig(config, rank));
  if (!client.ok()) return client.status();
  absl::Status status = (*client)->Register();
  if (!status.ok()) return status;

  ps::Trainer trainer(config, rank, client->get(), backend->get());
  auto train = trainer.Train();
  std::string result = train.ok() ? "ok" : std::string(train.status().message());
  if (!train.ok()) {
    PS_IGNORE_STATUS((*client)->Finish(0, result));
    return train.status();
  }
  *json = absl::StrFormat(
      "{\"rank\": %d, \"examples\": %d, \"steps\": %d, \"bad_lines\": %d, "
      "\"train_seconds\": %.3f, \"examples_per_sec\": %.1f, "
      "\"train_auc\": %.6f, \"train_logloss\": %.6f",
      rank, train->examples, train->steps, train->bad_lines, train->seconds,
      train->examples / std::max(train->seconds, 1e-9), train->auc,
      train->logloss);
  LOG(INFO) << "worker " << rank << " trained " << train->examples
            << " examples in " << train->seconds << " s (progressive auc "
            << train->auc << ", logloss " << train->logloss << ")";
  // Everyone's pushes are applied before the model is evaluated.
  auto barrier = (*client)->Barrier("train-done", false);
  if (!barrier.ok()) return barrier.status();
  if (rank == 0 && config.data().eval_files_size() > 0) {
    auto eval = trainer.Evaluate({config.data().eval_files().begin(),
                                  config.data().eval_files().end()},
                                 0, 1);
    if (!eval.ok()) {
      PS_IGNORE_STATUS((*client)->Finish(train->examples,
                                         std::string(eval.status().message())));
      return eval.status();
    }
    LOG(INFO) << "eval: auc " << eval->auc << " logloss " << eval->logloss
              << " calibration " << eval->calibration << " on "
              << eval->examples << " examples";
    absl::StrAppendFormat(
        json,
        ", \"eval_examples\": %d, \"eval_auc\": %.6f, \"eval_logloss\": %.6f, "
        "\"eval_calibration\": %.4f, \"eval_bad_lines\": %d",
        eval->examples, eval->auc, eval->logloss, eval->calibration,
        eval->bad_lines);
  }
  *json += "}\n";
  return (*client)->Finish(train->examples, "ok");
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("ps_worker --config JOB --rank J");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;

  ps::ConfigOverrides overrides;
  overrides.servers = ps::SplitEndpoints(
      FLAGS_servers.empty() ? Env("PS_SERVERS") : FLAGS_servers);
  overrides.num_workers = FLAGS_num_workers;
  overrides.data_dir = FLAGS_data_dir;
  int rank = FLAGS_rank;
  if ((overrides.num_workers == 0 &&
       !IntFromEnv("PS_NUM_WORKERS", &overrides.num_workers)) ||
      (rank < 0 && !IntFromEnv("PS_RANK", &rank))) {
    return 2;
  }
  if (FLAGS_config.empty()) {
    LOG(ERROR) << "--config is required";
    return 2;
  }
  auto config = ps::LoadJobConfig(FLAGS_config, overrides);
  if (!config.ok()) {
    LOG(ERROR) << "bad config: " << config.status().message();
    return 2;
  }
  if (rank < 0 || rank >= config->cluster().num_workers()) {
    LOG(ERROR) << "--rank " << rank << " is out of range: the job has "
               << config->cluster().num_workers() << " workers";
    return 2;
  }
  std::string json;
  absl::Status status = Run(*config, rank, &json);
  if (!status.ok()) {
    LOG(ERROR) << "worker " << rank << " failed: " << status;
    return 1;
  }
  if (!FLAGS_result_file.empty()) {
    std::ofstream out(FLAGS_result_file);
    out << json;
    if (!out) {
      LOG(ERROR) << "cannot write " << FLAGS_result_file;
      return 1;
    }
  }
  LOG(INFO) << "worker " << rank << " done";
  return 0;
}
