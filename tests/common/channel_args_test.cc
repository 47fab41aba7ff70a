// gRPC keepalive (common/channel_args.h): a client channel and a server built
// with the helpers keep an idle connection open while the client pings it,
// where a server with gRPC's default policy closes it (GOAWAY
// "too_many_pings"; the control case, which shows the test can fail); and
// the production helpers set the documented arguments.
#include "common/channel_args.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

// Pings as often as gRPC lets a client (about once a second), so that a
// server with the default policy strikes out (3 pings) within seconds.
KeepaliveOptions FastKeepalive() {
  KeepaliveOptions o;
  o.time = absl::Milliseconds(200);
  o.timeout = absl::Seconds(5);
  return o;
}

// A server on a free loopback port, with the helper's keepalive policy or
// with gRPC's default one. It serves nothing (every method is unimplemented):
// the test only watches the connection.
std::unique_ptr<grpc::Server> StartServer(bool with_policy,
                                          grpc::CallbackGenericService* service,
                                          int* port) {
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(service);
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           port);
  if (with_policy) SetServerKeepalive(FastKeepalive(), &builder);
  return builder.BuildAndStart();
}

// How long a connected channel with keepalive stays READY, up to `watch`,
// with no call on it.
absl::Duration ReadyFor(bool server_policy, absl::Duration watch) {
  int port = 0;
  grpc::CallbackGenericService service;
  std::unique_ptr<grpc::Server> server =
      StartServer(server_policy, &service, &port);
  EXPECT_NE(server, nullptr);
  EXPECT_NE(port, 0);
  grpc::ChannelArguments args;
  SetClientKeepalive(FastKeepalive(), &args);
  auto channel =
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                grpc::InsecureChannelCredentials(), args);
  EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(5)));
  const absl::Time start = absl::Now();
  while (absl::Now() - start < watch) {
    if (channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration ready = absl::Now() - start;
  server->Shutdown(std::chrono::system_clock::now());
  return ready;
}

TEST(KeepaliveTest, ServerWithPolicyKeepsAnIdlePingedConnection) {
  const absl::Duration watch = absl::Seconds(5);
  EXPECT_GE(ReadyFor(/*server_policy=*/true, watch), watch);
}

TEST(KeepaliveTest, ServerWithDefaultPolicyClosesIt) {
  // The control: the same client pings trip gRPC's default abuse policy, so
  // the test above would notice a server without SetServerKeepalive.
  EXPECT_LT(ReadyFor(/*server_policy=*/false, absl::Seconds(15)),
            absl::Seconds(15));
}

// The arguments `args` carries, by key (integers only).
std::map<std::string, int> IntArgs(const grpc::ChannelArguments& args) {
  grpc_channel_args c;
  args.SetChannelArgs(&c);
  std::map<std::string, int> out;
  for (size_t i = 0; i < c.num_args; ++i) {
    if (c.args[i].type == GRPC_ARG_INTEGER) {
      out[c.args[i].key] = c.args[i].value.integer;
    }
  }
  return out;
}

TEST(KeepaliveTest, ClientDefaultsAreTenSeconds) {
  grpc::ChannelArguments args;
  SetClientKeepalive(KeepaliveOptions(), &args);
  std::map<std::string, int> got = IntArgs(args);
  EXPECT_EQ(got[GRPC_ARG_KEEPALIVE_TIME_MS], 10000);
  EXPECT_EQ(got[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], 10000);
  EXPECT_EQ(got[GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS], 1);
  EXPECT_EQ(got.count(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA), 1u);
  EXPECT_EQ(got[GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA], 0);
}

}  // namespace
}  // namespace ps
