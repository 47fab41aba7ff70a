// PsClient against parameter servers that go away (worker/client/ps_client.h):
// a call answered UNAVAILABLE is retried with backoff until the server is back
// on its port, or fails after server_retry_sec naming the server; a push is
// re-sent and applied once; other errors are not retried.
#include "worker/client/ps_client.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/ps_server.h"
#include "tests/testing/free_port.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::FreePort;
using testing_util::StatusIs;

constexpr int kDim = 2;

class PsClientRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = SmallJobConfig(1, 1, kDim, 8);
    port_ = FreePort();
    endpoint_ = absl::StrCat("127.0.0.1:", port_);
    config_.mutable_cluster()->set_servers(0, endpoint_);
    name_ = absl::StrCat("server 0 (", endpoint_, ")");
  }
  void TearDown() override {
    if (restarter_.joinable()) restarter_.join();
  }

  std::unique_ptr<PsServer> StartOnPort() {
    PsServerOptions options;
    options.config = config_;
    options.listen_address = endpoint_;
    auto server = PsServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(server).value() : nullptr;
  }

  // A client connected to a server on the port, which is then shut down.
  std::unique_ptr<PsClient> ConnectThenLoseTheServer(int retry_sec) {
    auto server = StartOnPort();
    if (server == nullptr) return nullptr;
    PsClientOptions options = PsClientOptions::FromConfig(config_, 0);
    options.rpc_timeout_ms = 5000;
    options.connect_timeout_sec = 5;
    options.server_retry_sec = retry_sec;
    auto client = PsClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    server->Shutdown();
    return client.ok() ? std::move(client).value() : nullptr;
  }

  // Starts a server on the port after `delay`, on another thread.
  void RestartAfter(absl::Duration delay) {
    restarter_ = std::thread([this, delay] {
      absl::SleepFor(delay);
      restarted_ = StartOnPort();
    });
  }

  JobConfig config_;
  int port_ = 0;
  std::string endpoint_;
  std::string name_;
  std::thread restarter_;
  std::unique_ptr<PsServer> restarted_;
};

TEST_F(PsClientRetryTest, PullWaitsForTheServerToComeBack) {
  auto client = ConnectThenLoseTheServer(30);
  ASSERT_NE(client, nullptr);
  RestartAfter(absl::Seconds(1));
  const std::vector<uint64_t> keys = {1, 2, 3};
  std::vector<float> values(keys.size() * kDim, -1.0f);
  const absl::Time start = absl::Now();
  absl::Status s = client->PullSparse(0, kDim, keys, absl::MakeSpan(values), 1);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  EXPECT_EQ(values, std::vector<float>(keys.size() * kDim, 0.0f));
  restarter_.join();
  // The dense pull goes through the same retries (server is back now).
  const DenseBlocks blocks{MakeModelSpec(config_).dense_size, 8, 1};
  std::vector<float> dense(blocks.size);
  s = client->PullDense(0, blocks, absl::MakeSpan(dense), 1);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(PsClientRetryTest, PushIsResentAndAppliedOnce) {
  auto client = ConnectThenLoseTheServer(30);
  ASSERT_NE(client, nullptr);
  const std::vector<uint64_t> keys = {5, 6};
  const std::vector<float> grads = {1, 2, 3, 4};
  client->PushAsync(0, kDim, keys, grads, 0, DenseBlocks{0, 8, 1}, {}, 1);
  RestartAfter(absl::Seconds(1));
  absl::Status s = client->WaitPushes(0);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(client->InFlightPushes(), 0);
  restarter_.join();
  std::vector<float> values(keys.size() * kDim);
  s = client->PullSparse(0, kDim, keys, absl::MakeSpan(values), 2);
  ASSERT_TRUE(s.ok()) << s;
  // One SGD step of lr 0.5 from zero rows.
  EXPECT_EQ(values, (std::vector<float>{-0.5f, -1.0f, -1.5f, -2.0f}));
}

TEST_F(PsClientRetryTest, GivesUpAfterServerRetrySecNamingTheServer) {
  auto client = ConnectThenLoseTheServer(1);
  ASSERT_NE(client, nullptr);
  const std::vector<uint64_t> keys = {1};
  std::vector<float> values(kDim);
  absl::Time start = absl::Now();
  absl::Status s = client->PullSparse(0, kDim, keys, absl::MakeSpan(values), 1);
  absl::Duration took = absl::Now() - start;
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kUnavailable,
                  HasSubstr("Pull to " + name_ + ": server does not answer")));
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(4));

  client->PushAsync(0, kDim, keys, {1, 1}, 0, DenseBlocks{0, 8, 1}, {}, 1);
  s = client->WaitPushes(0);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kUnavailable,
                  HasSubstr("Push to " + name_ + ": server does not answer")));

  start = absl::Now();
  auto barrier = client->Barrier("b", false);
  EXPECT_THAT(barrier, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("Barrier 'b' to " + name_ +
                                          ": server does not answer")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));

  // Heartbeats are not retried: the caller beats again.
  start = absl::Now();
  EXPECT_THAT(client->Heartbeat(3), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

TEST_F(PsClientRetryTest,
       ACoordinatorCallWaitsForServerZeroAndLearnsItRestarted) {
  auto client = ConnectThenLoseTheServer(30);
  ASSERT_NE(client, nullptr);
  RestartAfter(absl::Seconds(1));
  const absl::Time start = absl::Now();
  auto done = client->Barrier("b", /*has_more=*/false, 4, DataPosition());
  // The retried call reaches the restarted coordinator, which refuses a
  // worker of its previous run: the worker must register again (and the
  // job roll back).
  EXPECT_TRUE(IsRollback(done.status())) << done.status();
  EXPECT_THAT(done.status().message(), HasSubstr("register again"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
}

TEST_F(PsClientRetryTest, OtherErrorsAreNotRetried) {
  auto server = StartOnPort();
  ASSERT_NE(server, nullptr);
  PsClientOptions options = PsClientOptions::FromConfig(config_, 0);
  options.server_retry_sec = 30;
  auto client = PsClient::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<uint64_t> keys = {1};
  std::vector<float> values(kDim);
  const absl::Time start = absl::Now();
  absl::Status s =
      (*client)->PullSparse(7, kDim, keys, absl::MakeSpan(values), 1);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("Pull to " + name_)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

}  // namespace
}  // namespace ps
