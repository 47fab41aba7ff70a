#include "server/service/ps_service.h"

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                               const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      // The caller's mistake (or its choice), answered with the reason.
      LOG_EVERY_N(WARNING, 100) << "refused request: " << status;
      break;
    default:
      // This server failed (e.g. a disk tier read or write): always logged.
      LOG(ERROR) << "request failed: " << status;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* PsServiceImpl::Pull(
    grpc::CallbackServerContext* context, const PullRequest* request,
    PullResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  return Done(context, handler_->Pull(*request, response));
}

grpc::ServerUnaryReactor* PsServiceImpl::Push(
    grpc::CallbackServerContext* context, const PushRequest* request,
    PushResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  absl::Status status = handler_->Push(
      *request, response, [context] { return context->IsCancelled(); });
  if (status.ok() && !response->duplicate() && drop_acks_ > 0) {
    bool drop = false;
    {
      absl::MutexLock lock(&drop_mu_);
      drop =
          std::uniform_real_distribution<double>(0, 1)(drop_rng_) < drop_acks_;
    }
    if (drop) {
      dropped_acks_.fetch_add(1);
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      reactor->Finish(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          "fault injected: acknowledgement of an applied push dropped"));
      return reactor;
    }
  }
  return Done(context, status);
}

void PsServiceImpl::SetDropPushAcks(double share, uint64_t seed) {
  absl::MutexLock lock(&drop_mu_);
  drop_acks_ = share;
  drop_rng_.seed(seed);
}

grpc::ServerUnaryReactor* PsServiceImpl::Shutdown(
    grpc::CallbackServerContext* context, const ShutdownRequest* request,
    ShutdownResponse*) {
  if (auto* refused = security_->RefuseAdmin(context)) return refused;
  LOG(INFO) << "server " << handler_->rank()
            << ": shutdown requested: " << request->reason()
            << (request->job_error().empty()
                    ? ""
                    : absl::StrCat(" (", request->job_error(), ")"));
  on_shutdown_(*request);
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* PsServiceImpl::Stats(
    grpc::CallbackServerContext* context, const StatsRequest*,
    StatsResponse* response) {
  if (auto* refused = security_->Refuse(context)) return refused;
  handler_->Stats(response);
  return Done(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* PsServiceImpl::SaveCheckpoint(
    grpc::CallbackServerContext* context, const SaveCheckpointRequest* request,
    SaveCheckpointResponse* response) {
  if (auto* refused = security_->RefuseAdmin(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  PsHandler* handler = handler_;
  if (!saves_.TryRun(
          [handler, reactor, request, response] {
            reactor->Finish(
                ToGrpcStatus(handler->SaveCheckpoint(*request, response)));
          },
          max_checkpoint_requests_)) {
    return Done(context, TooManyCheckpointRequests());
  }
  return reactor;
}

grpc::ServerUnaryReactor* PsServiceImpl::Reload(
    grpc::CallbackServerContext* context, const ReloadRequest* request,
    ReloadResponse* response) {
  if (auto* refused = security_->RefuseAdmin(context)) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  PsHandler* handler = handler_;
  if (!saves_.TryRun(
          [handler, reactor, request, response] {
            absl::Status status = ReloadFrom(handler, request->dir());
            response->set_server_incarnation(handler->incarnation());
            reactor->Finish(ToGrpcStatus(status));
          },
          max_checkpoint_requests_)) {
    return Done(context, TooManyCheckpointRequests());
  }
  return reactor;
}

absl::Status PsServiceImpl::TooManyCheckpointRequests() const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "server ", handler_->rank(), ": ", max_checkpoint_requests_,
      " checkpoint saves or reloads are in progress already "
      "(cluster.limits.max_checkpoint_requests); try again later"));
}

absl::Status ReloadFrom(PsHandler* handler, const std::string& dir) {
  if (dir.empty()) return handler->Reload(nullptr);
  ASSIGN_OR_RETURN(const std::string folder, handler->ReloadFolder(dir));
  ASSIGN_OR_RETURN(OpenedCheckpoint opened, OpenCheckpoint(folder));
  RestoreFrom restore{opened.dir, opened.manifest};
  return handler->Reload(&restore);
}

grpc::ServerUnaryReactor* PsServiceImpl::Shrink(
    grpc::CallbackServerContext* context, const ShrinkRequest* request,
    ShrinkResponse* response) {
  if (auto* refused = security_->RefuseAdmin(context)) return refused;
  return Done(context, handler_->Shrink(*request, response));
}

}  // namespace ps
