// PsServer, PsService and the Coordinator over real gRPC on loopback, driven
// by the real PsClient: end-to-end values after an SGD push, refused requests
// on the wire, registration/barrier/finish ending the job on both servers,
// and the errors a worker sees when a server is gone or never came up.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/hash.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wire_requests.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

constexpr int kDim = 2;
constexpr int kBlock = 8;

// `num_servers` servers at placeholder endpoints (tests bind port 0);
// sparse table "emb" (dim 2, SGD lr 0.5, zero rows); a DNN with no hidden
// layer over 26 slots x 2 + 13 dense inputs: 66 dense floats, SGD lr 0.25.
JobConfig MakeConfig(int num_servers, int num_workers) {
  return SmallJobConfig(num_servers, num_workers, kDim, kBlock);
}

PsClientOptions ClientOptions(std::vector<std::string> servers,
                              int worker_rank = 0, int num_workers = 1) {
  PsClientOptions o;
  o.servers = std::move(servers);
  o.worker_rank = worker_rank;
  o.num_workers = num_workers;
  o.max_message_bytes = 16 << 20;
  o.rpc_timeout_ms = 2000;
  o.connect_timeout_sec = 5;
  o.server_retry_sec = 1;  // a server that is gone fails a call after 1 s
  return o;
}

std::unique_ptr<PsClient> MustConnect(const PsClientOptions& options) {
  auto client = PsClient::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(client).value() : nullptr;
}

DenseBlocks Blocks(const JobConfig& config) {
  return DenseBlocks{MakeModelSpec(config).dense_size, kBlock,
                     config.cluster().servers_size()};
}

// Pushes keys/grads and a dense gradient, then checks the pulled values are
// one SGD step from the initial ones.
void CheckRoundTrip(PsClient& client, const JobConfig& config) {
  const std::vector<uint64_t> keys = {1, 2, 3, 1000, 77777};
  std::vector<float> values(keys.size() * kDim, -1.0f);
  ASSERT_TRUE(client.PullSparse(0, kDim, keys, absl::MakeSpan(values), 1).ok());
  EXPECT_EQ(values, std::vector<float>(keys.size() * kDim, 0.0f));

  std::vector<float> grads;
  for (size_t i = 0; i < keys.size() * kDim; ++i) {
    grads.push_back(static_cast<float>(i) - 4.0f);
  }
  const DenseBlocks blocks = Blocks(config);
  ASSERT_EQ(blocks.size, 66);
  std::vector<float> dense_grad(blocks.size);
  for (int64_t i = 0; i < blocks.size; ++i) dense_grad[i] = (i % 5) - 2.0f;
  client.PushAsync(0, kDim, keys, grads, 0, blocks, dense_grad, 1);
  absl::Status pushed = client.WaitPushes(0);
  ASSERT_TRUE(pushed.ok()) << pushed;

  ASSERT_TRUE(client.PullSparse(0, kDim, keys, absl::MakeSpan(values), 2).ok());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(values[i], -0.5f * grads[i]) << i;
  }
  std::vector<float> dense(blocks.size, -1.0f);
  absl::Status pulled = client.PullDense(0, blocks, absl::MakeSpan(dense), 2);
  ASSERT_TRUE(pulled.ok()) << pulled;
  const ModelSpec spec = MakeModelSpec(config);
  for (int64_t i = 0; i < blocks.size; ++i) {
    EXPECT_EQ(dense[i], DenseInitValue(spec, 1, i) - 0.25f * dense_grad[i])
        << i;
  }
}

TEST(PsServiceTest, OneServerRoundTrip) {
  const JobConfig config = MakeConfig(1, 1);
  auto server = StartServer(config, 0);
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  auto client = MustConnect(ClientOptions({Endpoint(*server)}));
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->num_servers(), 1);
  CheckRoundTrip(*client, config);
  EXPECT_EQ(server->handler()->SparseRows(), std::vector<int64_t>{5});
}

// Shows and clicks travel with the gradients, split over servers like the
// keys: a score-based shrink then keeps exactly the keys that scored.
TEST(PsServiceTest, ShowsAndClicksReachTheAccessor) {
  JobConfig config = MakeConfig(2, 1);
  AccessorConfig* a = config.mutable_sparse_tables(0)->mutable_accessor();
  a->set_min_score(0.5f);  // score = 0.1 (show - click) + click
  auto s0 = StartServer(config, 0);
  auto s1 = StartServer(config, 1);
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  auto client = MustConnect(ClientOptions({Endpoint(*s0), Endpoint(*s1)}));
  ASSERT_NE(client, nullptr);
  std::vector<uint64_t> keys;
  std::vector<float> shows, clicks;
  for (uint64_t k = 0; k < 100; ++k) {
    keys.push_back(k);
    shows.push_back(k % 2 == 0 ? 10.0f : 1.0f);  // even: 0.9 + 1 = 1.9
    clicks.push_back(k % 2 == 0 ? 1.0f : 0.0f);  // odd: 0.1
  }
  client->PushAsync(0, kDim, keys, std::vector<float>(100 * kDim, 0.5f), 0,
                    Blocks(config), {}, 1, shows, clicks);
  ASSERT_TRUE(client->WaitPushes(0).ok());
  int64_t removed = 0;
  for (PsServer* server : {s0.get(), s1.get()}) {
    ShrinkResponse response;
    ASSERT_TRUE(server->handler()->Shrink(ShrinkRequest(), &response).ok());
    removed += response.tables(0).removed();
  }
  EXPECT_EQ(removed, 50);
  EXPECT_EQ(s0->handler()->SparseRows()[0] + s1->handler()->SparseRows()[0],
            50);
}

TEST(PsServiceTest, TwoServersSplitKeysAndDenseBlocks) {
  const JobConfig config = MakeConfig(2, 1);
  auto s0 = StartServer(config, 0);
  auto s1 = StartServer(config, 1);
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  auto client = MustConnect(ClientOptions({Endpoint(*s0), Endpoint(*s1)}));
  ASSERT_NE(client, nullptr);
  CheckRoundTrip(*client, config);
  // Each server stored exactly the keys it owns.
  int64_t on0 = 0;
  for (uint64_t k : {1, 2, 3, 1000, 77777}) on0 += ServerForKey(k, 2) == 0;
  ASSERT_GT(on0, 0);
  ASSERT_LT(on0, 5);
  EXPECT_EQ(s0->handler()->SparseRows(), std::vector<int64_t>{on0});
  EXPECT_EQ(s1->handler()->SparseRows(), std::vector<int64_t>{5 - on0});
}

TEST(PsServiceTest, BadRequestsAreInvalidArgumentOnTheWire) {
  const JobConfig config = MakeConfig(1, 1);
  auto server = StartServer(config, 0);
  ASSERT_NE(server, nullptr);
  auto stub = PsService::NewStub(grpc::CreateChannel(
      Endpoint(*server), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    PullResponse response;
    grpc::Status s =
        stub->Pull(&context, SparsePullRequest(7, kDim, {}), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "sparse table 7 does not exist on server 0 (has 0 'emb')");
  }
  {
    grpc::ClientContext context;
    const std::vector<uint64_t> keys = {1, 2};
    PushResponse response;
    grpc::Status s = stub->Push(
        &context,
        SparsePushRequest(0, kDim, keys, std::vector<float>(3, 1.0f), 1),
        &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "table 'emb' push: 2 keys of dim 2 (table dim 2) do not fit the "
              "request's 2 keys and 3 gradient floats left");
  }
  {
    grpc::ClientContext context;
    PushResponse response;
    grpc::Status s = stub->Push(
        &context, DensePushRequest(0, std::vector<float>(1, 1.0f), 2),
        &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(),
              "dense table 'model' push: 1 values, server 0 holds 66 (1 left "
              "in the request)");
  }
  EXPECT_EQ(server->handler()->SparseRows(), std::vector<int64_t>{0});
}

TEST(PsServiceTest, ClientErrorsNameTheServer) {
  const JobConfig config = MakeConfig(1, 1);
  auto server = StartServer(config, 0);
  ASSERT_NE(server, nullptr);
  const std::string name = absl::StrCat("server 0 (", Endpoint(*server), ")");
  auto client = MustConnect(ClientOptions({Endpoint(*server)}));
  ASSERT_NE(client, nullptr);

  const std::vector<uint64_t> keys = {5, 6};
  std::vector<float> grads = {1.0f, std::numeric_limits<float>::quiet_NaN(),
                              1.0f, 1.0f};
  client->PushAsync(0, kDim, keys, grads, 0, Blocks(config), {}, 1);
  absl::Status s = client->WaitPushes(0);
  EXPECT_THAT(s,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Push to " + name +
                           ": table 'emb' push: value 1 is nan (not finite)"));
  EXPECT_EQ(server->handler()->SparseRows(), std::vector<int64_t>{0});

  // A worker that believes the table has another dim: the pull says which
  // dim it expects, and the server refuses it.
  std::vector<float> values(keys.size() * 3);
  s = client->PullSparse(0, 3, keys, absl::MakeSpan(values), 1);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "Pull to " + name +
                              ": table 'emb': pull expects dim 3, the table "
                              "has dim 2"));

  // A worker that believes the dense table has another size.
  DenseBlocks wrong{65, kBlock, 1};
  std::vector<float> dense(65);
  s = client->PullDense(0, wrong, absl::MakeSpan(dense), 1);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          "Pull (dense) from " + name +
                              ": server has a table of 66 floats (66 here), "
                              "this worker expects 65 (do all processes use "
                              "the same config?)"));

  s = client->PullSparse(9, kDim, keys, absl::MakeSpan(values).subspan(0, 4),
                         1);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "Pull to " + name +
                              ": sparse table 9 does not exist on server 0 "
                              "(has 0 'emb')"));
}

TEST(PsServiceTest, TwoWorkersRegisterBarrierFinishAndStopBothServers) {
  const JobConfig config = MakeConfig(2, 2);
  auto s0 = StartServer(config, 0);
  auto s1 = StartServer(config, 1);
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  const std::vector<std::string> endpoints = {Endpoint(*s0), Endpoint(*s1)};
  s0->SetServerEndpoints(endpoints);
  EXPECT_FALSE(s0->WaitForShutdownRequest(absl::ZeroDuration()));

  std::atomic<int> arrived_first{0};
  std::atomic<int> arrived_second{0};
  std::vector<absl::Status> errors(2);
  std::vector<int> seen_first(2, -1), seen_second(2, -1);
  std::vector<int> all_done_first(2, -1), all_done_second(2, -1);
  auto worker = [&](int rank) {
    auto client = PsClient::Connect(ClientOptions(endpoints, rank, 2));
    if (!client.ok()) {
      errors[rank] = client.status();
      return;
    }
    absl::Status s = (*client)->Register().status();
    if (!s.ok()) {
      errors[rank] = s;
      return;
    }
    // Worker 1 comes late, so a barrier that does not wait would let
    // worker 0 through while the counter is still 1.
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    arrived_first.fetch_add(1);
    auto done = (*client)->Barrier("epoch 0", /*has_more=*/rank == 0);
    if (!done.ok()) {
      errors[rank] = done.status();
      return;
    }
    seen_first[rank] = arrived_first.load();
    all_done_first[rank] = *done;
    if (rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    arrived_second.fetch_add(1);
    done = (*client)->Barrier("epoch 1", /*has_more=*/false);
    if (!done.ok()) {
      errors[rank] = done.status();
      return;
    }
    seen_second[rank] = arrived_second.load();
    all_done_second[rank] = *done;
    errors[rank] = (*client)->Finish(100, "ok");
  };
  std::thread w0(worker, 0);
  std::thread w1(worker, 1);
  w0.join();
  w1.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(errors[r].ok()) << "worker " << r << ": " << errors[r];
    EXPECT_EQ(seen_first[r], 2) << "worker " << r << " passed barrier early";
    EXPECT_EQ(seen_second[r], 2) << "worker " << r << " passed barrier early";
    // Worker 0 still had data at the first barrier.
    EXPECT_EQ(all_done_first[r], 0) << r;
    EXPECT_EQ(all_done_second[r], 1) << r;
  }
  // The coordinator stopped server 1 (Shutdown RPC) and itself.
  EXPECT_TRUE(s1->WaitForShutdownRequest(absl::Seconds(5)));
  EXPECT_TRUE(s0->WaitForShutdownRequest(absl::Seconds(5)));
}

TEST(PsServiceTest, CoordinatorRefusesBadWorkers) {
  const JobConfig config = MakeConfig(1, 1);
  auto server = StartServer(config, 0);
  ASSERT_NE(server, nullptr);
  const std::string name = absl::StrCat("server 0 (", Endpoint(*server), ")");

  auto stranger = MustConnect(ClientOptions({Endpoint(*server)}, 3, 1));
  ASSERT_NE(stranger, nullptr);
  auto done = stranger->Barrier("b", false);
  ASSERT_FALSE(done.ok());
  EXPECT_THAT(
      done,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Barrier 'b' to " + name +
                   ": worker rank 3 is out of range: the job has 1 workers"));
  absl::Status s = stranger->Register().status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          "Register to " + name +
                              ": worker rank 3 is out of range: the job has 1 "
                              "workers"));

  auto misconfigured = MustConnect(ClientOptions({Endpoint(*server)}, 0, 3));
  ASSERT_NE(misconfigured, nullptr);
  s = misconfigured->Register().status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          "Register to " + name +
                              ": worker 0 was configured for 3 workers, the "
                              "coordinator for 1"));
  // Nobody finished, so the job goes on.
  EXPECT_FALSE(server->WaitForShutdownRequest(absl::ZeroDuration()));
}

TEST(PsServiceTest, ShutdownRpcRequestsShutdown) {
  auto server = StartServer(MakeConfig(1, 1), 0);
  ASSERT_NE(server, nullptr);
  EXPECT_FALSE(server->WaitForShutdownRequest(absl::ZeroDuration()));
  auto stub = PsService::NewStub(grpc::CreateChannel(
      Endpoint(*server), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  ShutdownRequest request;
  request.set_reason("test");
  ShutdownResponse response;
  EXPECT_TRUE(stub->Shutdown(&context, request, &response).ok());
  EXPECT_TRUE(server->WaitForShutdownRequest(absl::Seconds(5)));
}

// gRPC's shutdown waits for every call, grace or not: a call parked at the
// coordinator (a barrier missing a worker) used to hold Shutdown forever.
TEST(PsServiceTest, ShutdownEndsCallsParkedAtTheCoordinator) {
  auto server = StartServer(MakeConfig(1, 2), 0);
  ASSERT_NE(server, nullptr);
  auto stub = Coordinator::NewStub(grpc::CreateChannel(
      Endpoint(*server), grpc::InsecureChannelCredentials()));
  // Calls carry the generation the worker registered in.
  int64_t generation = 0;
  {
    grpc::ClientContext context;
    RegisterRequest request;
    request.set_worker_rank(0);
    request.set_num_workers(2);
    RegisterResponse response;
    ASSERT_TRUE(stub->Register(&context, request, &response).ok());
    generation = response.generation();
  }
  grpc::Status status;
  std::atomic<bool> returned{false};
  std::thread worker([&] {
    grpc::ClientContext context;
    BarrierRequest request;
    request.set_worker_rank(0);
    request.set_generation(generation);
    request.set_name("epoch 0");
    BarrierResponse response;
    status = stub->Barrier(&context, request, &response);
    returned = true;
  });
  // Worker 1 never comes; wait until the call is parked.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_FALSE(returned.load());
  std::atomic<bool> shut_down{false};
  std::thread stopper([&] {
    server->Shutdown();
    shut_down = true;
  });
  for (int i = 0; i < 200 && !shut_down.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(shut_down.load()) << "Shutdown still waits after 10 s";
  if (!shut_down.load()) {
    // Do not hang the test binary: the regression is reported above.
    stopper.detach();
    worker.detach();
    server.release();
    return;
  }
  stopper.join();
  worker.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(),
              HasSubstr("barrier 'epoch 0' (1 of 2 workers arrived)"));
}

TEST(PsServiceTest, PushToAServerThatIsGone) {
  const JobConfig config = MakeConfig(1, 1);
  auto server = StartServer(config, 0);
  ASSERT_NE(server, nullptr);
  const std::string endpoint = Endpoint(*server);
  auto client = MustConnect(ClientOptions({endpoint}));
  ASSERT_NE(client, nullptr);
  server->Shutdown();

  const std::vector<uint64_t> keys = {5};
  client->PushAsync(0, kDim, keys, std::vector<float>(kDim, 1.0f), 0,
                    Blocks(config), {}, 1);
  absl::Status s = client->WaitPushes(0);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                          HasSubstr("Push to server 0 (" + endpoint +
                                    "): server does not answer")));
}

TEST(PsServiceTest, ConnectNamesTheServerThatDoesNotAnswer) {
  auto server = StartServer(MakeConfig(1, 1), 0);
  ASSERT_NE(server, nullptr);
  // Nothing listens on port 1.
  PsClientOptions options = ClientOptions({Endpoint(*server), "127.0.0.1:1"});
  options.connect_timeout_sec = 1;
  auto client = PsClient::Connect(options);
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(
      client,
      StatusIs(absl::StatusCode::kUnavailable,
               "worker 0: no answer within 1 s from server 1 (127.0.0.1:1)"));
}

TEST(PsServiceTest, StartRefusesBadRankAndUnusableAddress) {
  PsServerOptions options;
  options.config = MakeConfig(1, 1);
  options.rank = 1;
  options.listen_address = "127.0.0.1:0";
  auto server = PsServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "server rank 1 is out of range: the job has 1 servers"));

  // 192.0.2.1 (TEST-NET-1) is no address of this machine.
  options.rank = 0;
  options.listen_address = "192.0.2.1:0";
  options.insecure = true;  // else refused first for its exposure
  server = PsServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(
      server,
      StatusIs(absl::StatusCode::kUnavailable,
               "server 0: cannot listen on 192.0.2.1:0 (address in use or not "
               "local?)"));
}

}  // namespace
}  // namespace ps
