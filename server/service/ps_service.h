// gRPC PsService over a PsHandler (callback API). Handlers run the
// in-memory work inline and finish through the default reactor; all error
// mapping goes through common/grpc_status.h. Thread-safe.
#ifndef PS_SERVER_SERVICE_PS_SERVICE_H_
#define PS_SERVER_SERVICE_PS_SERVICE_H_

#include <atomic>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/rpc_security.h"
#include "common/thread_pool.h"
#include "proto/ps.grpc.pb.h"
#include "server/service/ps_handler.h"

namespace ps {

// handler->Reload from checkpoint folder `dir` ("" : fresh tables); the
// errors name the folder.
absl::Status ReloadFrom(PsHandler* handler, const std::string& dir);

class PsServiceImpl final : public PsService::CallbackService {
 public:
  // `handler` is not owned. `on_shutdown` is called (from a gRPC thread) with
  // the request when a Shutdown request arrives; it must not block. Every call
  // is checked against `security` (its token) first.
  PsServiceImpl(
      PsHandler* handler,
      std::function<void(const ShutdownRequest&)> on_shutdown,
      std::shared_ptr<const RpcSecurity> security = RpcSecurity::None())
      : handler_(handler),
        on_shutdown_(std::move(on_shutdown)),
        security_(std::move(security)) {}

  // Fault injection for tests and scripts/chaos.sh: answers this share
  // (0..1) of the pushes it applied with UNAVAILABLE instead of OK, as if
  // the acknowledgement were lost on the way back (the client re-sends; the
  // server must not apply it twice). 0 (the default): none. Call before
  // serving.
  void SetDropPushAcks(double share, uint64_t seed);
  // Checkpoint saves and reloads run or queued at once; more are refused
  // as RESOURCE_EXHAUSTED (cluster.limits.max_checkpoint_requests). Call
  // before serving. Default: 4.
  void SetMaxCheckpointRequests(int n) { max_checkpoint_requests_ = n; }
  int64_t dropped_push_acks() const { return dropped_acks_.load(); }

  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const PullRequest* request,
                                 PullResponse* response) override;
  // A push whose call the client cancelled (or whose deadline passed)
  // before it was applied is not applied.
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const PushRequest* request,
                                 PushResponse* response) override;
  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* context,
                                     const ShutdownRequest* request,
                                     ShutdownResponse* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const StatsRequest* request,
                                  StatsResponse* response) override;
  grpc::ServerUnaryReactor* Shrink(grpc::CallbackServerContext* context,
                                   const ShrinkRequest* request,
                                   ShrinkResponse* response) override;
  // Administrative calls (Shutdown, Shrink, Reload, SaveCheckpoint) need
  // the operator token when the job has one (RpcSecurity::CheckAdmin).
  // Replaces the tables by a checkpoint's (PsHandler::Reload), on the save
  // thread: it takes seconds.
  grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* context,
                                   const ReloadRequest* request,
                                   ReloadResponse* response) override;
  // Writes the tables on a thread of its own (not gRPC's): it takes seconds.
  grpc::ServerUnaryReactor* SaveCheckpoint(
      grpc::CallbackServerContext* context,
      const SaveCheckpointRequest* request,
      SaveCheckpointResponse* response) override;

 private:
  absl::Status TooManyCheckpointRequests() const;

  PsHandler* const handler_;
  int max_checkpoint_requests_ = 4;
  // SaveCheckpoint calls (waited for at destruction).
  BackgroundTasks saves_;
  const std::function<void(const ShutdownRequest&)> on_shutdown_;
  const std::shared_ptr<const RpcSecurity> security_;
  // The fault of SetDropPushAcks.
  double drop_acks_ = 0;
  absl::Mutex drop_mu_;
  std::mt19937_64 drop_rng_ ABSL_GUARDED_BY(drop_mu_);
  std::atomic<int64_t> dropped_acks_{0};
};

}  // namespace ps

#endif  // PS_SERVER_SERVICE_PS_SERVICE_H_
