#include "server/coordinator/coordinator.h"

#include <utility>

#include "common/grpc_status.h"

namespace ps {

namespace {

grpc::ServerUnaryReactor* Finished(grpc::CallbackServerContext* context,
                                   const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A parked call's end: finishes its reactor with the core's status.
CoordinatorCore::Done FinishReactor(grpc::ServerUnaryReactor* reactor) {
  return
      [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
}

CoordinatorOptions PlainOptions(
    int num_workers, int num_servers,
    std::function<void(const absl::Status&)> on_all_finished) {
  CoordinatorOptions o;
  o.num_workers = num_workers;
  o.num_servers = num_servers;
  o.on_all_finished = std::move(on_all_finished);
  return o;
}

}  // namespace

CoordinatorImpl::CoordinatorImpl(
    int num_workers, int num_servers,
    std::function<void(const absl::Status&)> on_all_finished)
    : CoordinatorImpl(
          PlainOptions(num_workers, num_servers, std::move(on_all_finished))) {}

CoordinatorImpl::CoordinatorImpl(CoordinatorOptions options,
                                 std::shared_ptr<const RpcSecurity> security)
    : security_(std::move(security)), core_(std::move(options)) {}

grpc::ServerUnaryReactor* CoordinatorImpl::Register(
    grpc::CallbackServerContext* context, const RegisterRequest* request,
    RegisterResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  return Finished(context, core_.Register(*request, response));
}

grpc::ServerUnaryReactor* CoordinatorImpl::Heartbeat(
    grpc::CallbackServerContext* context, const HeartbeatRequest* request,
    HeartbeatResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  return Finished(context, core_.Heartbeat(*request, response));
}

grpc::ServerUnaryReactor* CoordinatorImpl::Finish(
    grpc::CallbackServerContext* context, const FinishRequest* request,
    FinishResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  return Finished(context, core_.Finish(*request, response));
}

grpc::ServerUnaryReactor* CoordinatorImpl::Barrier(
    grpc::CallbackServerContext* context, const BarrierRequest* request,
    BarrierResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_.Barrier(*request, response, FinishReactor(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorImpl::StepGate(
    grpc::CallbackServerContext* context, const StepGateRequest* request,
    StepGateResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_.StepGate(*request, response, FinishReactor(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorImpl::Recover(
    grpc::CallbackServerContext* context, const RecoverRequest* request,
    RecoverResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_.Recover(*request, response, FinishReactor(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorImpl::WaitJobEnd(
    grpc::CallbackServerContext* context, const WaitJobEndRequest* request,
    WaitJobEndResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_.WaitJobEnd(*request, response, FinishReactor(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorImpl::CheckpointArrive(
    grpc::CallbackServerContext* context,
    const CheckpointArriveRequest* request,
    CheckpointArriveResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_.CheckpointArrive(*request, response, FinishReactor(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorImpl::RequestCheckpoint(
    grpc::CallbackServerContext* context,
    const RequestCheckpointRequest* request,
    RequestCheckpointResponse* response) {
  if (auto* refused = security_->RefuseAdmin(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_.RequestCheckpoint(*request, response, FinishReactor(reactor));
  return reactor;
}

}  // namespace ps
