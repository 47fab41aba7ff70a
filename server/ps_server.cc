#include "server/ps_server.h"

#include <chrono>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "server/coordinator.h"
#include "server/ps_handler.h"
#include "server/ps_service.h"

namespace ps {

absl::StatusOr<std::unique_ptr<PsServer>> PsServer::Start(
    const PsServerOptions& options) {
  std::unique_ptr<PsServer> s(new PsServer());
  s->rank_ = options.rank;
  const ClusterConfig& cluster = options.config.cluster();
  s->max_message_bytes_ = cluster.max_message_bytes();
  {
    absl::MutexLock lock(&s->mu_);
    s->endpoints_.assign(cluster.servers().begin(), cluster.servers().end());
  }
  ASSIGN_OR_RETURN(s->handler_, PsHandler::Create(options.config, options.rank));
  PsServer* self = s.get();
  s->service_ = std::make_unique<PsServiceImpl>(
      s->handler_.get(),
      [self](const std::string& reason) { self->RequestShutdown(reason); });

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address,
                           grpc::InsecureServerCredentials(), &s->port_);
  // Without this gRPC sets SO_REUSEPORT and a second server on a taken port
  // would start silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(s->max_message_bytes_));
  builder.SetMaxSendMessageSize(static_cast<int>(s->max_message_bytes_));
  builder.RegisterService(s->service_.get());
  if (options.rank == 0) {
    s->coordinator_ = std::make_unique<CoordinatorImpl>(
        cluster.num_workers(), cluster.servers_size(),
        [self] { self->OnAllWorkersFinished(); });
    builder.RegisterService(s->coordinator_.get());
  }
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "server ", options.rank, ": cannot listen on ", options.listen_address,
        " (address in use or not local?)"));
  }
  LOG(INFO) << "server " << options.rank << " listening on port " << s->port_
            << (options.rank == 0 ? " (with coordinator)" : "");
  return s;
}

PsServer::~PsServer() {
  Shutdown();
  if (finisher_.joinable()) finisher_.join();
}

void PsServer::SetServerEndpoints(std::vector<std::string> endpoints) {
  absl::MutexLock lock(&mu_);
  endpoints_ = std::move(endpoints);
}

bool PsServer::WaitForShutdownRequest(absl::Duration timeout) {
  return shutdown_requested_.WaitForNotificationWithTimeout(timeout);
}

void PsServer::RequestShutdown(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (!shutdown_requested_.HasBeenNotified()) {
    LOG(INFO) << "server " << rank_ << ": shutting down: " << reason;
    shutdown_requested_.Notify();
  }
}

void PsServer::Shutdown() {
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
  }
}

void PsServer::OnAllWorkersFinished() {
  std::vector<std::string> peers;
  {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    peers = endpoints_;
  }
  // Not on the gRPC thread: the Shutdown calls below block.
  finisher_ = std::thread([this, peers] {
    for (size_t i = 1; i < peers.size(); ++i) {
      grpc::ChannelArguments args;
      auto channel = grpc::CreateCustomChannel(
          peers[i], grpc::InsecureChannelCredentials(), args);
      auto stub = PsService::NewStub(channel);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(5));
      ShutdownRequest request;
      request.set_reason("all workers finished");
      ShutdownResponse response;
      grpc::Status status = stub->Shutdown(&context, request, &response);
      if (!status.ok()) {
        LOG(WARNING) << "coordinator: could not stop server " << i << " at "
                     << peers[i] << ": " << status.error_message();
      }
    }
    RequestShutdown("all workers finished");
  });
}

}  // namespace ps
