// ps_server --config JOB --rank i [--resume | --resume_from DIR]: serves
// shard i of every table; server 0 also serves the Coordinator. With
// --resume the tables (and, on server 0, the workers' positions) start from
// the checkpoint LATEST names in checkpoint.dir. Stops on SIGTERM/SIGINT or
// when the coordinator ends the job. Exit code 0: stopped after a job in which
// every worker succeeded, or by SIGTERM/SIGINT or ps_ctl stop; 3: the job
// ended with a failed worker (the log names each and its error); 2: bad
// flags or config; 1: it could not start (e.g. a broken checkpoint, named in
// the log).
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/cli.h"
#include "common/cluster_env.h"
#include "common/config.h"
#include "common/local_socket.h"
#include "common/metrics_http.h"
#include "common/metrics_log.h"
#include "common/rpc_security.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "server/service/stats_format.h"

DEFINE_string(config, "", "job config file (.pbtxt)");
DEFINE_int32(rank, -1, "this server's rank (default: $PS_RANK)");
DEFINE_string(servers, "",
              "comma-separated host:port of all servers, overriding the "
              "config (default: $PS_SERVERS)");
DEFINE_int32(num_workers, 0,
             "overrides cluster.num_workers (default: "
             "$PS_NUM_WORKERS)");
DEFINE_string(listen, "",
              "address to bind (default: this rank's endpoint; its port on "
              "0.0.0.0 when the host is not a loopback address)");
DEFINE_string(local_socket_dir, "",
              "also listen on the Unix-domain socket DIR/server_<rank>.sock "
              "for workers on this host (the colocated fast path; default: "
              "$PS_LOCAL_SOCKET_DIR, none when empty)");
DEFINE_string(metrics_dir, "", "overrides training.metrics_dir");
DEFINE_bool(resume, false,
            "start from the checkpoint LATEST names in checkpoint.dir");
DEFINE_string(resume_from, "",
              "start from this checkpoint folder (e.g. the previous one when "
              "LATEST is broken)");
DEFINE_int32(stop_grace_sec, 600,
             "after SIGTERM/SIGINT: how long a checkpoint being written may "
             "still take before the process exits without it (the previous "
             "checkpoint stays LATEST); 10^8 memory rows of dim 16 with "
             "Adagrad take about 34 s at the measured 405 MB/s");
DEFINE_double(fault_drop_push_acks, 0,
              "fault injection (tests, scripts/chaos.sh): answer this share "
              "(0..1) of applied pushes with UNAVAILABLE, as if the "
              "acknowledgement were lost");
DEFINE_bool(insecure, false,
            "listen beyond loopback without TLS and an auth token (a "
            "trusted network only: anyone who reaches the port can stop the "
            "job or overwrite its tables)");
DEFINE_string(checkpoint_dir, "",
              "overrides checkpoint.dir (and turns checkpoints on with the "
              "section's defaults when the config has none; give the workers "
              "the same)");
DEFINE_string(storage_dir, "",
              "overrides storage.dir of every TIERED sparse table (each "
              "table keeps <dir>/<table>/server-<rank>)");
DEFINE_int32(metrics_every_sec, 10,
             "seconds between two lines of the server's metrics file");
DEFINE_string(metrics_address, "",
              "serve Prometheus metrics (the stats of every table) at "
              "http://ADDRESS/metrics (host:port or :port; default: "
              "$PS_METRICS_ADDRESS, else none)");
DEFINE_int32(stats_log_every_sec, 30,
             "seconds between two stats summary lines in the log (0: only "
             "at shutdown)");

namespace {

volatile std::sig_atomic_t g_signal = 0;
void OnSignal(int sig) { g_signal = sig; }

std::string DefaultListen(const std::string& endpoint) {
  size_t colon = endpoint.rfind(':');
  std::string host = endpoint.substr(0, colon);
  if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]") {
    return endpoint;
  }
  return "0.0.0.0" + endpoint.substr(colon);
}

}  // namespace

int main(int argc, char** argv) {
  ps::ParseCommandLine("ps_server", "ps_server --config JOB --rank I", __FILE__,
                       &argc, &argv);
  google::InitGoogleLogging(argv[0]);
  // Debian's Abseil is built without NDEBUG, which leaves Mutex deadlock
  // detection on: a lock-order graph update per Lock, 1-2 % of a training
  // job's CPU (perf). The tests keep it; the binaries do not need it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;

  ps::ConfigOverrides overrides;
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
  if (!FLAGS_storage_dir.empty()) {
    for (ps::SparseTableConfig& table : *config->mutable_sparse_tables()) {
      table.mutable_storage()->set_dir(FLAGS_storage_dir);
    }
  }
  if (!FLAGS_checkpoint_dir.empty()) {
    config->mutable_checkpoint()->set_dir(FLAGS_checkpoint_dir);
  }
  if (rank < 0 || rank >= config->cluster().servers_size()) {
    LOG(ERROR) << "--rank " << rank << " is out of range: the job has "
               << config->cluster().servers_size() << " servers";
    return ps::kExitUsage;
  }

  ps::PsServerOptions options;
  options.config = *config;
  options.rank = rank;
  options.listen_address = FLAGS_listen.empty()
                               ? DefaultListen(config->cluster().servers(rank))
                               : FLAGS_listen;
  {
    auto dir = ps::LocalSocketDirFromFlag(FLAGS_local_socket_dir, rank + 1);
    if (!dir.ok()) {
      LOG(ERROR) << dir.status().message();
      return ps::kExitUsage;
    }
    options.local_socket_dir = *std::move(dir);
  }
  options.resume = FLAGS_resume;
  options.resume_from = FLAGS_resume_from;
  if (FLAGS_fault_drop_push_acks < 0 || FLAGS_fault_drop_push_acks >= 1) {
    std::cerr << "ps_server: --fault_drop_push_acks must be in [0, 1), got "
              << FLAGS_fault_drop_push_acks << "\n";
    return ps::kExitUsage;
  }
  options.drop_push_acks = FLAGS_fault_drop_push_acks;
  options.insecure = FLAGS_insecure;
  {
    // An exposure the settings do not allow is a configuration error.
    auto security = ps::RpcSecurity::Load(config->cluster().security(),
                                          ps::RpcSecurity::Role::kServer);
    absl::Status exposed = security.ok()
                               ? (*security)->CheckExposure(
                                     options.listen_address, options.insecure)
                               : security.status();
    if (!exposed.ok()) {
      LOG(ERROR) << exposed.message();
      return ps::kExitUsage;
    }
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  auto server = ps::PsServer::Start(options);
  if (!server.ok()) {
    LOG(ERROR) << server.status().message();
    return ps::kExitFailure;
  }
  std::unique_ptr<ps::MetricsLog> metrics;
  if (!config->training().metrics_dir().empty()) {
    auto log = ps::MetricsLog::Open(absl::StrCat(
        config->training().metrics_dir(), "/server_", rank, ".jsonl"));
    if (!log.ok()) {
      LOG(ERROR) << log.status().message();
      return ps::kExitFailure;
    }
    metrics = std::move(*log);
  }
  const std::string metrics_address =
      ps::FlagOrEnv(FLAGS_metrics_address, "PS_METRICS_ADDRESS", std::getenv);
  std::unique_ptr<ps::MetricsHttpServer> metrics_http;
  if (!metrics_address.empty()) {
    ps::PsHandler* handler = (*server)->handler();
    auto http = ps::MetricsHttpServer::Start(metrics_address, [handler] {
      ps::StatsResponse stats;
      handler->Stats(&stats);
      return ps::FormatStatsPrometheus(stats);
    });
    if (!http.ok()) {
      LOG(ERROR) << http.status().message();
      return ps::kExitFailure;
    }
    metrics_http = std::move(*http);
    LOG(INFO) << "server " << rank << ": metrics at http://" << metrics_address
              << "/metrics (port " << metrics_http->port() << ")";
  }
  auto write_metrics = [&] {
    if (metrics == nullptr) return;
    std::vector<std::pair<std::string, double>> fields;
    std::vector<int64_t> rows = (*server)->handler()->SparseRows();
    for (size_t t = 0; t < rows.size(); ++t) {
      fields.emplace_back(
          absl::StrCat("rows_", config->sparse_tables(t).name()),
          static_cast<double>(rows[t]));
    }
    ps::StatsResponse stats;
    (*server)->handler()->Stats(&stats);
    fields.emplace_back("rows_pulled",
                        static_cast<double>(stats.rows_pulled()));
    fields.emplace_back("rows_pushed",
                        static_cast<double>(stats.rows_pushed()));
    fields.emplace_back("cpu_seconds", ps::ProcessCpuSeconds());
    metrics->Write("server", fields);
  };
  auto log_stats = [&] {
    ps::StatsResponse stats;
    (*server)->handler()->Stats(&stats);
    LOG(INFO) << ps::FormatStatsLine(stats);
  };
  absl::Time next_metrics = absl::Now();
  absl::Time next_stats =
      absl::Now() + absl::Seconds(FLAGS_stats_log_every_sec);
  bool stopping = false;
  while (!(*server)->WaitForShutdownRequest(absl::Milliseconds(100))) {
    if (g_signal != 0 && !stopping) {
      stopping = true;
      (*server)->RequestShutdown(absl::StrCat("signal ", g_signal));
      // Bounds the wait for a checkpoint being written (~PsServer finishes
      // it); everything else stops within its 5 s grace.
      const int grace = FLAGS_stop_grace_sec;
      std::thread([grace, rank] {
        absl::SleepFor(absl::Seconds(grace));
        LOG(ERROR) << "server " << rank << ": still stopping " << grace
                   << " s after the signal (--stop_grace_sec); exiting now, "
                      "a checkpoint being written is lost (LATEST keeps the "
                      "previous one)";
        std::_Exit(1);
      }).detach();
    }
    if (absl::Now() >= next_metrics) {
      write_metrics();
      next_metrics = absl::Now() + absl::Seconds(FLAGS_metrics_every_sec);
    }
    if (FLAGS_stats_log_every_sec > 0 && absl::Now() >= next_stats) {
      log_stats();
      next_stats = absl::Now() + absl::Seconds(FLAGS_stats_log_every_sec);
    }
  }
  (*server)->Shutdown();
  write_metrics();
  log_stats();
  std::vector<int64_t> rows = (*server)->handler()->SparseRows();
  for (size_t t = 0; t < rows.size(); ++t) {
    LOG(INFO) << "server " << rank << ": table "
              << config->sparse_tables(t).name() << " holds " << rows[t]
              << " rows";
  }
  // What the exactly-once ledger holds at the end (scripts/chaos.sh checks
  // that a disturbed job applied each push as often as an undisturbed one).
  for (const auto& [worker, c] : (*server)->handler()->AllPushCounts()) {
    LOG(INFO) << "server " << rank << ": push ledger: worker " << worker
              << " applied " << c.applied << " repeats " << c.duplicates
              << " last_step " << c.last_step;
  }
  const absl::Status outcome = (*server)->job_outcome();
  if (!outcome.ok()) {
    // The job ended with a failed worker: stopped cleanly, but the job
    // did not succeed, so neither does this process.
    LOG(ERROR) << "server " << rank << " stopped: " << outcome.message();
    return ps::kExitJobFailed;
  }
  LOG(INFO) << "server " << rank << " stopped cleanly";
  return ps::kExitOk;
}
