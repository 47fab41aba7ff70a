// ps_server --config JOB --rank i: serves shard i of every table; server 0
// also serves the Coordinator. Stops on SIGTERM/SIGINT or when the
// coordinator ends the job.
#include <csignal>
#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/ps_handler.h"
#include "server/ps_server.h"

DEFINE_string(config, "", "job config file (.pbtxt)");
DEFINE_int32(rank, -1, "this server's rank (default: $PS_RANK)");
DEFINE_string(servers, "",
              "comma-separated host:port of all servers, overriding the "
              "config (default: $PS_SERVERS)");
DEFINE_int32(num_workers, 0, "overrides cluster.num_workers (default: "
                             "$PS_NUM_WORKERS)");
DEFINE_string(listen, "",
              "address to bind (default: this rank's endpoint; its port on "
              "0.0.0.0 when the host is not a loopback address)");

namespace {

volatile std::sig_atomic_t g_signal = 0;
void OnSignal(int sig) { g_signal = sig; }

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

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
  gflags::SetUsageMessage("ps_server --config JOB --rank I");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;

  ps::ConfigOverrides overrides;
  std::string servers = FLAGS_servers.empty() ? Env("PS_SERVERS") : FLAGS_servers;
  overrides.servers = ps::SplitEndpoints(servers);
  overrides.num_workers = FLAGS_num_workers;
  if (overrides.num_workers == 0 && !Env("PS_NUM_WORKERS").empty() &&
      !absl::SimpleAtoi(Env("PS_NUM_WORKERS"), &overrides.num_workers)) {
    LOG(ERROR) << "PS_NUM_WORKERS='" << Env("PS_NUM_WORKERS")
               << "' is not a number";
    return 2;
  }
  int rank = FLAGS_rank;
  if (rank < 0 && !Env("PS_RANK").empty() &&
      !absl::SimpleAtoi(Env("PS_RANK"), &rank)) {
    LOG(ERROR) << "PS_RANK='" << Env("PS_RANK") << "' is not a number";
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
  if (rank < 0 || rank >= config->cluster().servers_size()) {
    LOG(ERROR) << "--rank " << rank << " is out of range: the job has "
               << config->cluster().servers_size() << " servers";
    return 2;
  }

  ps::PsServerOptions options;
  options.config = *config;
  options.rank = rank;
  options.listen_address = FLAGS_listen.empty()
                               ? DefaultListen(config->cluster().servers(rank))
                               : FLAGS_listen;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  auto server = ps::PsServer::Start(options);
  if (!server.ok()) {
    LOG(ERROR) << server.status().message();
    return 1;
  }
  while (!(*server)->WaitForShutdownRequest(absl::Milliseconds(100))) {
    if (g_signal != 0) {
      (*server)->RequestShutdown(absl::StrCat("signal ", g_signal));
    }
  }
  (*server)->Shutdown();
  std::vector<int64_t> rows = (*server)->handler()->SparseRows();
  for (size_t t = 0; t < rows.size(); ++t) {
    LOG(INFO) << "server " << rank << ": table "
              << config->sparse_tables(t).name() << " holds " << rows[t]
              << " rows";
  }
  LOG(INFO) << "server " << rank << " stopped cleanly";
  return 0;
}
