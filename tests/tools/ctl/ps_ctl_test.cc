// The Stats RPC on a real PsServer (port 0, loopback) after pushes from two
// workers, and ps_ctl's logic (tools/ctl/admin_client.h): collecting stats from
// several servers, the table / JSON / one-line formats, stop, the error that
// names an unreachable server, and the exit codes.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wire_requests.h"
#include "tools/ctl/admin_client.h"

namespace ps {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing_util::StatusIs;

constexpr int kDim = 2;
constexpr int kDenseFloats = 66;  // 26 slots x 2 + 13 dense inputs + 1 bias

// As tests/server/service/ps_service_test.cc: sparse table "emb" (dim 2) and a
// DNN with no hidden layer (66 dense floats, blocks of 8).
JobConfig MakeConfig(int num_servers) {
  return SmallJobConfig(num_servers, /*num_workers=*/2, kDim,
                        /*dense_block_size=*/8);
}

std::unique_ptr<PsService::Stub> Stub(const PsServer& server) {
  return PsService::NewStub(grpc::CreateChannel(
      Endpoint(server), grpc::InsecureChannelCredentials()));
}

// One push request that the server must apply: a server applies a worker's
// (step, part) once, so each push of a worker needs its own step.
void MustPush(PsService::Stub& stub, const PushRequest& request) {
  grpc::ClientContext context;
  PushResponse response;
  grpc::Status s = stub.Push(&context, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_FALSE(response.duplicate())
      << "worker " << request.header().worker_rank() << " step "
      << request.header().step() << " was applied before";
}

void PushSparse(PsService::Stub& stub, int worker,
                const std::vector<uint64_t>& keys, bool is_delta,
                int64_t step) {
  MustPush(stub, SparsePushRequest(0, kDim, keys,
                                   std::vector<float>(keys.size() * kDim, 1.0f),
                                   step, worker, is_delta));
}

void PushDense(PsService::Stub& stub, int worker, int floats, int64_t step) {
  MustPush(stub,
           DensePushRequest(0, std::vector<float>(floats, 1.0f), step, worker));
}

AdminOptions Options(std::vector<std::string> servers) {
  AdminOptions o;
  o.servers = std::move(servers);
  o.rpc_timeout = absl::Seconds(5);
  return o;
}

TEST(PsCtlTest, StatsRpcCountsRowsAndPushesPerWorker) {
  auto server = StartServer(MakeConfig(1), 0);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(*server);
  PushSparse(*stub, 0, {1, 2, 3}, false, /*step=*/0);
  PushSparse(*stub, 0, {3, 4}, false, /*step=*/1);
  PushSparse(*stub, 1, {9}, true, /*step=*/0);
  PushDense(*stub, 0, kDenseFloats, /*step=*/2);
  {
    // Worker 1 re-sends its push (its answer was lost): a repeat.
    grpc::ClientContext again;
    PushResponse response;
    ASSERT_TRUE(stub->Push(&again,
                           SparsePushRequest(0, kDim, std::vector<uint64_t>{9},
                                             std::vector<float>(kDim, 1.0f), 0,
                                             1, true),
                           &response)
                    .ok());
    EXPECT_TRUE(response.duplicate());
  }

  grpc::ClientContext context;
  StatsResponse stats;
  grpc::Status s = stub->Stats(&context, StatsRequest(), &stats);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(stats.server_rank(), 0);
  ASSERT_EQ(stats.sparse_tables_size(), 1);
  const SparseTableStats& emb = stats.sparse_tables(0);
  EXPECT_EQ(emb.table_id(), 0u);
  EXPECT_EQ(emb.name(), "emb");
  EXPECT_EQ(emb.dim(), static_cast<uint32_t>(kDim));
  EXPECT_EQ(emb.rows_in_memory(), 5);  // keys 1, 2, 3, 4, 9
  EXPECT_EQ(emb.rows_on_disk(), 0);
  EXPECT_EQ(emb.rows(), 5);
  EXPECT_GT(emb.memory_bytes(), 0);
  EXPECT_EQ(emb.evictions(), 0);
  EXPECT_EQ(emb.write_backs(), 0);
  ASSERT_EQ(stats.dense_tables_size(), 1);
  EXPECT_EQ(stats.dense_tables(0).name(), "model");
  EXPECT_EQ(stats.dense_tables(0).floats_held(), kDenseFloats);
  ASSERT_EQ(stats.pushes_size(), 2);
  EXPECT_EQ(stats.pushes(0).worker_rank(), 0);
  EXPECT_EQ(stats.pushes(0).sparse_gradients(), 2);
  EXPECT_EQ(stats.pushes(0).sparse_deltas(), 0);
  EXPECT_EQ(stats.pushes(0).dense_gradients(), 1);
  EXPECT_EQ(stats.pushes(1).worker_rank(), 1);
  EXPECT_EQ(stats.pushes(1).sparse_deltas(), 1);
  EXPECT_EQ(stats.pushes(1).dense_gradients(), 0);
  EXPECT_EQ(stats.pushes(1).duplicates(), 1);
  EXPECT_EQ(stats.pushes(0).duplicates(), 0);
  EXPECT_EQ(stats.pushes(0).applied(), 3);
  EXPECT_EQ(stats.pushes(0).last_step(), 2);
  EXPECT_NE(stats.server_incarnation(), 0u);

  // The summary line the server logs every 30 s.
  const std::string line = FormatStatsLine(stats);
  EXPECT_THAT(line, StartsWith("server 0: emb rows=5 (mem 5, disk 0) mem="));
  EXPECT_THAT(
      line,
      HasSubstr(" evict=0 wb=0 pending=0 shrunk=0; dense model 66 floats; "
                "pushes sparse=3 dense=1 workers=2"));

  // What the server's /metrics serves (ps_server --metrics_address).
  const std::string metrics = FormatStatsPrometheus(stats);
  EXPECT_THAT(metrics,
              HasSubstr("# TYPE ps_sparse_rows gauge\n"
                        "ps_sparse_rows{server=\"0\",table=\"emb\"} 5\n"));
  EXPECT_THAT(
      metrics,
      HasSubstr("ps_sparse_rows_in_memory{server=\"0\",table=\"emb\"} 5\n"));
  EXPECT_THAT(metrics, HasSubstr("# TYPE ps_sparse_evictions_total counter\n"));
  EXPECT_THAT(
      metrics,
      HasSubstr("ps_dense_floats_held{server=\"0\",table=\"model\"} 66\n"));
  EXPECT_THAT(metrics, HasSubstr("ps_pushes_total{server=\"0\",worker=\"0\","
                                 "kind=\"sparse_gradients\"} 2\n"));
  EXPECT_THAT(metrics, HasSubstr("ps_pushes_total{server=\"0\",worker=\"1\","
                                 "kind=\"sparse_deltas\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("ps_push_repeats_total{server=\"0\","
                                 "worker=\"1\"} 1\n"));
  EXPECT_THAT(metrics, Not(HasSubstr("table_id")));
}

// Prometheus' text format keeps every line of a metric in one group, under
// one HELP and TYPE, however many tables and workers there are.
TEST(PsCtlTest, PrometheusGroupsEachMetricsLines) {
  StatsResponse stats;
  stats.set_server_rank(1);
  for (const char* name : {"a", "b"}) {
    SparseTableStats* t = stats.add_sparse_tables();
    t->set_name(name);
    t->set_rows(name[0] == 'a' ? 3 : 4);
    t->set_hits(7);
  }
  for (int w = 0; w < 2; ++w) stats.add_pushes()->set_worker_rank(w);
  const std::string text = FormatStatsPrometheus(stats);
  EXPECT_THAT(text, HasSubstr("# TYPE ps_sparse_rows gauge\n"
                              "ps_sparse_rows{server=\"1\",table=\"a\"} 3\n"
                              "ps_sparse_rows{server=\"1\",table=\"b\"} 4\n"));
  EXPECT_THAT(text,
              HasSubstr("ps_sparse_hits_total{server=\"1\",table=\"a\"} 7\n"
                        "ps_sparse_hits_total{server=\"1\",table=\"b\"} 7\n"));
  // Each metric's name starts one run of lines: no name comes back later.
  std::vector<std::string> runs;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') continue;
    std::string name(line.substr(0, line.find('{')));
    if (runs.empty() || runs.back() != name) runs.push_back(name);
  }
  std::vector<std::string> sorted = runs;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end())
      << "a metric's lines are split: " << text;
}

TEST(PsCtlTest, CollectsStatsFromEveryServerAndFormatsThem) {
  const JobConfig config = MakeConfig(2);
  auto s0 = StartServer(config, 0);
  auto s1 = StartServer(config, 1);
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  StatsResponse direct;
  s0->handler()->Stats(&direct);
  PushDense(*Stub(*s0), 1,
            static_cast<int>(direct.dense_tables(0).floats_held()),
            /*step=*/0);

  auto stats = CollectStats(Options({Endpoint(*s0), Endpoint(*s1)}));
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 2u);
  EXPECT_EQ((*stats)[0].endpoint, Endpoint(*s0));
  EXPECT_EQ((*stats)[0].stats.server_rank(), 0);
  EXPECT_EQ((*stats)[1].stats.server_rank(), 1);
  // The dense blocks are split between the servers.
  EXPECT_EQ((*stats)[0].stats.dense_tables(0).floats_held() +
                (*stats)[1].stats.dense_tables(0).floats_held(),
            kDenseFloats);

  const std::string table = FormatStatsTable(*stats);
  EXPECT_THAT(table, HasSubstr("server 0 (" + Endpoint(*s0) + ")\n"));
  EXPECT_THAT(table, HasSubstr("server 1 (" + Endpoint(*s1) + ")\n"));
  EXPECT_THAT(table, HasSubstr("rows in mem"));
  EXPECT_THAT(table, HasSubstr(" emb "));

  const std::string json = FormatStatsJson(*stats);
  EXPECT_THAT(json, StartsWith("[{\"endpoint\":\"" + Endpoint(*s0) + "\""));
  EXPECT_THAT(json, HasSubstr("\"server_rank\":1"));
  EXPECT_THAT(json, HasSubstr("\"rows_in_memory\":\"0\""));
  EXPECT_THAT(json, HasSubstr("\"dense_gradients\":\"1\""));

  std::ostringstream out, err;
  AdminOptions options = Options({Endpoint(*s0), Endpoint(*s1)});
  options.json = true;
  EXPECT_EQ(RunCtlCommand(options, "stats", out, err), 0) << err.str();
  EXPECT_EQ(out.str(), json);
  EXPECT_EQ(err.str(), "");
}

TEST(PsCtlTest, UnreachableServerIsNamedAndExitsOne) {
  auto server = StartServer(MakeConfig(1), 0);
  ASSERT_NE(server, nullptr);
  // Nothing listens on port 1.
  AdminOptions options = Options({Endpoint(*server), "127.0.0.1:1"});
  options.rpc_timeout = absl::Milliseconds(500);
  auto stats = CollectStats(options);
  ASSERT_FALSE(stats.ok());
  EXPECT_THAT(stats, StatusIs(AnyOf(absl::StatusCode::kUnavailable,
                                    absl::StatusCode::kDeadlineExceeded),
                              StartsWith("Stats to server 1 (127.0.0.1:1): ")));

  std::ostringstream out, err;
  EXPECT_EQ(RunCtlCommand(options, "stats", out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(),
              StartsWith("ps_ctl: Stats to server 1 (127.0.0.1:1): "));

  std::ostringstream out2, err2;
  EXPECT_EQ(RunCtlCommand(options, "stop", out2, err2), 1);
  EXPECT_THAT(err2.str(),
              StartsWith("ps_ctl: Shutdown to server 1 (127.0.0.1:1): "));
  // The reachable server was still stopped.
  EXPECT_TRUE(server->WaitForShutdownRequest(absl::Seconds(5)));
}

TEST(PsCtlTest, StopSendsShutdownToEveryServer) {
  const JobConfig config = MakeConfig(2);
  auto s0 = StartServer(config, 0);
  auto s1 = StartServer(config, 1);
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  std::ostringstream out, err;
  AdminOptions options = Options({Endpoint(*s0), Endpoint(*s1)});
  options.stop_reason = "maintenance";
  EXPECT_EQ(RunCtlCommand(options, "stop", out, err), 0) << err.str();
  EXPECT_EQ(out.str(), "sent Shutdown to 2 server(s)\n");
  EXPECT_TRUE(s0->WaitForShutdownRequest(absl::Seconds(5)));
  EXPECT_TRUE(s1->WaitForShutdownRequest(absl::Seconds(5)));
}

TEST(PsCtlTest, ShrinkRemovesOldRowsOnEveryServerAndReportsCounts) {
  JobConfig config = MakeConfig(2);
  config.mutable_sparse_tables(0)->mutable_accessor()->set_max_unseen_steps(5);
  auto s0 = StartServer(config, 0);
  auto s1 = StartServer(config, 1);
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  // Keys routed to their servers: old ones pushed at step 1, new at 20.
  std::vector<uint64_t> old_keys[2], new_keys[2];
  for (uint64_t k = 0; k < 200; ++k) {
    (k < 100 ? old_keys : new_keys)[ServerForKey(k, 2)].push_back(k);
  }
  for (int s = 0; s < 2; ++s) {
    auto stub = Stub(s == 0 ? *s0 : *s1);
    PushSparse(*stub, 0, old_keys[s], false, /*step=*/1);
    PushSparse(*stub, 0, new_keys[s], false, /*step=*/20);
  }
  std::ostringstream out, err;
  AdminOptions options = Options({Endpoint(*s0), Endpoint(*s1)});
  EXPECT_EQ(RunCtlCommand(options, "shrink", out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr(absl::StrCat(
                             "server 0 table 'emb' at step 20: removed ",
                             old_keys[0].size(), " rows, ", new_keys[0].size(),
                             " left\n")));
  EXPECT_THAT(out.str(),
              HasSubstr("shrink: removed 100 rows in all, 100 left\n"));

  options.tables = {"clicks"};
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCtlCommand(options, "shrink", out2, err2), 1);
  EXPECT_THAT(err2.str(), HasSubstr("Shrink to server 0"));
  EXPECT_THAT(err2.str(), HasSubstr("no sparse table 'clicks' on server 0"));
}

TEST(PsCtlTest, UnknownCommandOrNoServersIsUsageError) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCtlCommand(Options({"127.0.0.1:1"}), "compact", out, err), 2);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(), StartsWith("ps_ctl: unknown command 'compact'\n"
                                    "usage: ps_ctl --servers"));
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCtlCommand(Options({}), "stats", out2, err2), 2);
  EXPECT_THAT(err2.str(),
              StartsWith("ps_ctl: --servers (or PS_SERVERS) is required\n"));
}

}  // namespace
}  // namespace ps
