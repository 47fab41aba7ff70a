// PsServer's destruction while server 0's coordinator still has work in
// flight that calls back into the server (SaveAllServers for a checkpoint,
// OnAllWorkersFinished at the job's end): the destructor waits for it, the
// checkpoint is committed, and nothing crashes. A fake peer answers
// SaveCheckpoint slowly so that the save is certainly in progress when the
// server is destroyed.
//
// Without a sanitizer these tests cannot see the use of already destroyed
// members by itself (the old member order); they pin down the observable
// contract of ~PsServer.
#include "server/service/ps_server.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using testing_util::TempDir;

constexpr absl::Duration kPeerSaveTime = absl::Milliseconds(1500);

// Server 1 of the job: answers SaveCheckpoint after kPeerSaveTime, writing
// no files.
class SlowSavePeer final : public PsService::CallbackService {
 public:
  grpc::ServerUnaryReactor* SaveCheckpoint(grpc::CallbackServerContext* context,
                                           const SaveCheckpointRequest*,
                                           SaveCheckpointResponse*) override {
    started_.Notify();
    // Blocks a gRPC thread: acceptable for a fake with one call.
    absl::SleepFor(kPeerSaveTime);
    answered_ = true;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  absl::Notification started_;
  std::atomic<bool> answered_{false};
};

struct Peer {
  SlowSavePeer service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

std::unique_ptr<Peer> StartPeer() {
  auto peer = std::make_unique<Peer>();
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &peer->port);
  builder.RegisterService(&peer->service);
  peer->server = builder.BuildAndStart();
  EXPECT_NE(peer->server, nullptr);
  return peer;
}

JobConfig Config(const std::string& root) {
  JobConfig c = SmallJobConfig(/*num_servers=*/2, /*num_workers=*/1,
                               /*dim=*/4, /*dense_block_size=*/8);
  c.mutable_checkpoint()->set_dir(root + "/ckpt");
  return c;
}

std::unique_ptr<Coordinator::Stub> CoordinatorStub(const PsServer& server) {
  return Coordinator::NewStub(grpc::CreateChannel(
      Endpoint(server), grpc::InsecureChannelCredentials()));
}

// Destroys `s0` once the peer has the save, and checks that the destructor
// waited for the save and that the checkpoint was committed.
void DestroyDuringSave(std::unique_ptr<PsServer> s0, Peer* peer,
                       const JobConfig& c) {
  ASSERT_TRUE(
      peer->service.started_.WaitForNotificationWithTimeout(absl::Seconds(30)));
  s0.reset();
  EXPECT_TRUE(peer->service.answered_)
      << "~PsServer returned before its checkpoint save did";
  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->manifest.num_servers(), 2);
}

TEST(PsServerTest, DestroyedDuringACheckpointSaveWaitsAndCommitsIt) {
  TempDir dir;
  const JobConfig c = Config(dir.path());
  std::unique_ptr<Peer> peer = StartPeer();
  std::unique_ptr<PsServer> s0 = StartServer(c, 0);
  ASSERT_NE(s0, nullptr);
  s0->SetServerEndpoints(
      {Endpoint(*s0), absl::StrCat("127.0.0.1:", peer->port)});
  auto stub = CoordinatorStub(*s0);
  grpc::Status request_status;
  std::thread request([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    RequestCheckpointRequest req;
    req.set_reason("test");
    RequestCheckpointResponse resp;
    request_status = stub->RequestCheckpoint(&context, req, &resp);
  });
  DestroyDuringSave(std::move(s0), peer.get(), c);
  request.join();
  // Stop() ended the parked request before the save was done.
  EXPECT_EQ(request_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << request_status.error_message();
}

TEST(PsServerTest, DestroyedDuringTheFinalCheckpointWaitsAndCommitsIt) {
  TempDir dir;
  const JobConfig c = Config(dir.path());
  std::unique_ptr<Peer> peer = StartPeer();
  std::unique_ptr<PsServer> s0 = StartServer(c, 0);
  ASSERT_NE(s0, nullptr);
  s0->SetServerEndpoints(
      {Endpoint(*s0), absl::StrCat("127.0.0.1:", peer->port)});
  auto stub = CoordinatorStub(*s0);
  int64_t generation = 0;
  {
    grpc::ClientContext context;
    RegisterRequest req;
    req.set_worker_rank(0);
    req.set_num_workers(1);
    RegisterResponse resp;
    ASSERT_TRUE(stub->Register(&context, req, &resp).ok());
    generation = resp.generation();
  }
  {
    grpc::ClientContext context;
    FinishRequest req;
    req.set_worker_rank(0);
    req.set_generation(generation);
    req.set_status("ok");
    req.set_step(7);
    FinishResponse resp;
    ASSERT_TRUE(stub->Finish(&context, req, &resp).ok());
  }
  DestroyDuringSave(std::move(s0), peer.get(), c);
}

}  // namespace
}  // namespace ps
