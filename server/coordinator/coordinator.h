// CoordinatorImpl: the job Coordinator gRPC service, served by server 0. A
// thin wrapper over CoordinatorCore (coordinator_core.h), which holds every
// rule and all the state: each handler checks the call's token
// (RpcSecurity), takes the call's default reactor, hands the request to the
// core and finishes the reactor when the core answers. Calls that wait
// (Barrier, StepGate, CheckpointArrive, RequestCheckpoint) leave their
// reactor parked in the core; nothing blocks a gRPC thread.
//
// Shutdown: the owner calls Stop() before shutting the gRPC server down, so
// that parked calls end (Unavailable; workers retry) instead of holding the
// server's shutdown forever. Thread-safe.
#ifndef PS_SERVER_COORDINATOR_COORDINATOR_H_
#define PS_SERVER_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "common/rpc_security.h"
#include "proto/ps.grpc.pb.h"
#include "server/coordinator/coordinator_core.h"

namespace ps {

class CoordinatorImpl final : public Coordinator::CallbackService {
 public:
  // Every call is checked against `security` (its token) first.
  explicit CoordinatorImpl(
      CoordinatorOptions options,
      std::shared_ptr<const RpcSecurity> security = RpcSecurity::None());
  // Convenience for jobs without checkpoints.
  CoordinatorImpl(
      int num_workers, int num_servers,
      std::function<void(const absl::Status& outcome)> on_all_finished);

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const RegisterRequest* request,
                                     RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Barrier(grpc::CallbackServerContext* context,
                                    const BarrierRequest* request,
                                    BarrierResponse* response) override;
  grpc::ServerUnaryReactor* StepGate(grpc::CallbackServerContext* context,
                                     const StepGateRequest* request,
                                     StepGateResponse* response) override;
  grpc::ServerUnaryReactor* Recover(grpc::CallbackServerContext* context,
                                    const RecoverRequest* request,
                                    RecoverResponse* response) override;
  grpc::ServerUnaryReactor* WaitJobEnd(grpc::CallbackServerContext* context,
                                       const WaitJobEndRequest* request,
                                       WaitJobEndResponse* response) override;
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                   const FinishRequest* request,
                                   FinishResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const HeartbeatRequest* request,
                                      HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* CheckpointArrive(
      grpc::CallbackServerContext* context,
      const CheckpointArriveRequest* request,
      CheckpointArriveResponse* response) override;
  grpc::ServerUnaryReactor* RequestCheckpoint(
      grpc::CallbackServerContext* context,
      const RequestCheckpointRequest* request,
      RequestCheckpointResponse* response) override;

  // CoordinatorCore::Stop: ends every parked call with Unavailable.
  void Stop() { core_.Stop(); }
  // See CoordinatorCore.
  int64_t max_granted_lead() const { return core_.max_granted_lead(); }
  int checkpoints_taken() const { return core_.checkpoints_taken(); }
  absl::Status outcome() const { return core_.outcome(); }

 private:
  const std::shared_ptr<const RpcSecurity> security_;
  CoordinatorCore core_;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_COORDINATOR_H_
