// A real cluster on loopback for integration tests: the servers of a config
// started in this process on free ports (gRPC), every worker's whole job
// (RunWorkerJob) in its own thread. The servers stay readable after the job
// so tests can check what they recorded.
#ifndef PS_TESTS_TESTING_LOCAL_CLUSTER_H_
#define PS_TESTS_TESTING_LOCAL_CLUSTER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/service/ps_server.h"
#include "tests/testing/server_test_util.h"
#include "worker/train/worker_job.h"

namespace ps {

struct LocalCluster {
  std::vector<std::unique_ptr<PsServer>> servers;
  // One per worker; empty when a server could not start.
  std::vector<absl::StatusOr<WorkerJobResult>> results;
  // Whether the coordinator stopped every server after the workers finished.
  bool servers_stopped = false;
};

// Runs the job of `config` (its cluster.servers are replaced by the real
// endpoints) to the end; with `resume`, the servers start from the
// checkpoint LATEST names (PsServerOptions::resume). checkpoint.every_minutes
// counts in `checkpoint_minute`. drop_push_acks: the servers' fault hook
// (PsServerOptions). local_socket_dir: servers also listen on their
// Unix-domain sockets there and workers use them (the colocated fast path).
inline std::unique_ptr<LocalCluster> RunLocalCluster(
    JobConfig config, bool resume = false,
    absl::Duration checkpoint_minute = absl::Minutes(1),
    double drop_push_acks = 0, const std::string& local_socket_dir = "") {
  auto cluster = std::make_unique<LocalCluster>();
  std::vector<std::string> endpoints;
  for (int i = 0; i < config.cluster().servers_size(); ++i) {
    PsServerOptions options;
    options.config = config;
    options.rank = i;
    options.listen_address = "127.0.0.1:0";
    options.resume = resume;
    options.checkpoint_minute = checkpoint_minute;
    options.drop_push_acks = drop_push_acks;
    options.local_socket_dir = local_socket_dir;
    auto server = PsServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return cluster;
    endpoints.push_back(Endpoint(**server));
    cluster->servers.push_back(std::move(*server));
  }
  cluster->servers[0]->SetServerEndpoints(endpoints);
  config.mutable_cluster()->clear_servers();
  for (const auto& e : endpoints) config.mutable_cluster()->add_servers(e);

  const int num_workers = config.cluster().num_workers();
  cluster->results.resize(num_workers, absl::UnknownError("not run"));
  std::vector<std::thread> workers;
  for (int j = 0; j < num_workers; ++j) {
    workers.emplace_back([&, j] {
      WorkerJobOptions options;
      options.local_socket_dir = local_socket_dir;
      cluster->results[j] = RunWorkerJob(config, j, options);
    });
  }
  for (auto& t : workers) t.join();
  cluster->servers_stopped = true;
  for (auto& s : cluster->servers) {
    cluster->servers_stopped &= s->WaitForShutdownRequest(absl::Seconds(10));
  }
  return cluster;
}

}  // namespace ps

#endif  // PS_TESTS_TESTING_LOCAL_CLUSTER_H_
