#include "server/service/ps_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/channel_args.h"
#include "common/checkpoint.h"
#include "common/grpc_status.h"
#include "common/local_socket.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "server/coordinator/coordinator.h"
#include "server/service/periodic_export.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_service.h"
#include "server/storage/record_log.h"

namespace ps {

namespace {

// durability.wal: this server's log, and whether it goes on from its base.
struct WalStart {
  std::unique_ptr<RecordLog> log;  // null without durability.wal
  std::string base_path;
  // The log has a base and no explicit --resume_from overrides it: the
  // tables restore the base (`restore`, unset for the job's start), replay
  // the log, and keep `incarnation`.
  bool continues = false;
  std::optional<RestoreFrom> restore;
  uint64_t incarnation = 0;  // 0: a new one
};

absl::StatusOr<WalStart> OpenWal(const PsServerOptions& options) {
  WalStart out;
  const JobConfig& c = options.config;
  if (!c.durability().wal()) return out;
  const std::string root = c.durability().wal_dir().empty()
                               ? c.checkpoint().dir() + "/wal"
                               : c.durability().wal_dir();
  RecordLogOptions lo;
  lo.dir = absl::StrCat(root, "/server-", options.rank);
  lo.sync_ms = c.durability().wal_sync_ms();
  ASSIGN_OR_RETURN(out.log, RecordLog::Open(lo));
  out.base_path = lo.dir + "/BASE";
  absl::StatusOr<WalBase> base = PsHandler::ReadWalBase(out.base_path);
  if (!base.ok()) {
    if (base.status().code() != absl::StatusCode::kNotFound) {
      return base.status();
    }
    return out;
  }
  if (!options.resume_from.empty()) {
    LOG(WARNING) << "server " << options.rank << ": --resume_from "
                 << options.resume_from << ": the write-ahead log in " << lo.dir
                 << " is dropped";
    return out;
  }
  out.continues = true;
  out.incarnation = base->server_incarnation();
  if (base->has_checkpoint_dir()) {
    out.restore = RestoreFrom{base->checkpoint_dir(), base->manifest()};
  }
  LOG(INFO) << "server " << options.rank << ": write-ahead log " << lo.dir
            << " goes on from "
            << (base->has_checkpoint_dir() ? base->checkpoint_dir()
                                           : std::string("the job's start"))
            << ", incarnation " << absl::StrCat(absl::Hex(out.incarnation));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PsServer>> PsServer::Start(
    const PsServerOptions& options) {
  std::unique_ptr<PsServer> s(new PsServer());
  s->rank_ = options.rank;
  const ClusterConfig& cluster = options.config.cluster();
  s->max_message_bytes_ = cluster.max_message_bytes();
  ASSIGN_OR_RETURN(s->security_, RpcSecurity::Load(cluster.security(),
                                                   RpcSecurity::Role::kServer));
  RETURN_IF_ERROR(
      s->security_->CheckExposure(options.listen_address, options.insecure));
  {
    absl::MutexLock lock(&s->mu_);
    s->endpoints_.assign(cluster.servers().begin(), cluster.servers().end());
  }
  std::optional<RestoreFrom> restore;
  if (options.resume || !options.resume_from.empty()) {
    if (!options.config.has_checkpoint()) {
      return absl::FailedPreconditionError(
          "--resume: the job config has no checkpoint section");
    }
    absl::StatusOr<OpenedCheckpoint> opened =
        options.resume_from.empty()
            ? OpenLatest(options.config.checkpoint().dir())
            : OpenCheckpoint(options.resume_from);
    if (opened.ok()) {
      restore = RestoreFrom{opened->dir, opened->manifest};
      LOG(INFO) << "server " << options.rank << ": resuming from "
                << opened->dir << " (step " << opened->manifest.global_step()
                << ", " << opened->manifest.num_servers() << " servers)";
    } else if (opened.status().code() == absl::StatusCode::kNotFound &&
               options.resume_from.empty()) {
      LOG(WARNING) << "server " << options.rank
                   << ": --resume but no checkpoint yet ("
                   << opened.status().message() << "); starting fresh";
    } else {
      return opened.status();
    }
  }
  ASSIGN_OR_RETURN(WalStart wal, OpenWal(options));
  // The tables start from the log's base when the log goes on; the
  // coordinator (server 0) from the checkpoint asked for.
  const RestoreFrom* tables_from = restore.has_value() ? &*restore : nullptr;
  if (wal.continues) {
    absl::StatusOr<std::unique_ptr<PsHandler>> continued = PsHandler::Create(
        options.config, options.rank, wal.restore ? &*wal.restore : nullptr,
        wal.incarnation);
    if (continued.ok()) {
      s->handler_ = std::move(continued).value();
      tables_from = wal.restore ? &*wal.restore : nullptr;
    } else {
      // The base was this server's part of a checkpoint the coordinator had
      // not committed, and its folder was cleared for a later try of that
      // step (after a rollback). Without it the log cannot go on: start as
      // any restarted server (a new incarnation, so the job rolls back).
      LOG(WARNING) << "server " << options.rank
                   << ": the write-ahead log cannot go on from its base: "
                   << continued.status() << "; starting as a restarted server";
      wal.continues = false;
    }
  }
  if (s->handler_ == nullptr) {
    ASSIGN_OR_RETURN(
        s->handler_,
        PsHandler::Create(options.config, options.rank, tables_from, 0));
  }
  if (wal.log != nullptr) {
    if (!wal.continues) {
      // A new base: the state this server starts from.
      WalBase base;
      base.set_server_incarnation(s->handler_->incarnation());
      if (tables_from != nullptr) {
        base.set_checkpoint_dir(tables_from->dir);
        *base.mutable_manifest() = tables_from->manifest;
      }
      RETURN_IF_ERROR(PsHandler::WriteWalBase(wal.base_path, base));
      RETURN_IF_ERROR(wal.log->Reset());
    }
    RETURN_IF_ERROR(
        s->handler_->AttachWal(std::move(wal.log), std::move(wal.base_path)));
  }
  PsServer* self = s.get();
  s->service_ = std::make_unique<PsServiceImpl>(
      s->handler_.get(),
      [self](const ShutdownRequest& request) {
        self->OnShutdownRequest(request);
      },
      s->security_);
  s->service_->SetMaxCheckpointRequests(
      cluster.limits().max_checkpoint_requests());
  if (options.drop_push_acks > 0) {
    LOG(WARNING) << "server " << options.rank
                 << ": fault injection: " << options.drop_push_acks
                 << " of push acknowledgements dropped";
    s->service_->SetDropPushAcks(options.drop_push_acks,
                                 static_cast<uint64_t>(options.rank) + 1);
  }

  // The standard grpc.health.v1.Health service, for probes (answers without
  // a token): SERVING from the start until Shutdown.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address,
                           s->security_->ServerCredentials(), &s->port_);
  if (!options.local_socket_dir.empty()) {
    RETURN_IF_ERROR(CheckLocalSocketDir(
        "--local_socket_dir", options.local_socket_dir, options.rank + 1));
    const std::string path =
        LocalSocketPath(options.local_socket_dir, options.rank);
    RETURN_IF_ERROR(ClaimLocalSocket(path));
    builder.AddListeningPort(
        LocalSocketAddress(options.local_socket_dir, options.rank),
        s->security_->ServerCredentials());
    s->local_socket_path_ = path;
  }
  // Without this gRPC sets SO_REUSEPORT and a second server on a taken port
  // would start silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Accept the keepalive pings every client channel sends
  // (RpcSecurity::Channel); gRPC's default policy answers them with GOAWAY.
  SetServerKeepalive(KeepaliveOptions(), &builder);
  builder.SetMaxReceiveMessageSize(static_cast<int>(s->max_message_bytes_));
  builder.SetMaxSendMessageSize(static_cast<int>(s->max_message_bytes_));
  // What one peer, authenticated or not, can make this server hold: calls
  // open at once per connection, and the memory of every connection and
  // call together (past it gRPC refuses new calls instead of allocating).
  const LimitsConfig& limits = cluster.limits();
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             limits.max_concurrent_streams());
  const int64_t quota_bytes =
      limits.rpc_memory_bytes() > 0
          ? limits.rpc_memory_bytes()
          : std::max<int64_t>(int64_t{1} << 30, 4 * s->max_message_bytes_);
  grpc::ResourceQuota quota(absl::StrCat("ps_server_", options.rank));
  quota.Resize(static_cast<size_t>(quota_bytes));
  builder.SetResourceQuota(quota);
  builder.RegisterService(s->service_.get());
  if (options.rank == 0) {
    CoordinatorOptions co;
    co.num_workers = cluster.num_workers();
    co.num_servers = cluster.servers_size();
    co.config = options.config;
    co.on_all_finished = [self](const absl::Status& outcome) {
      self->OnAllWorkersFinished(outcome);
    };
    co.minute = options.checkpoint_minute;
    // Above any generation of an earlier run of server 0 (see
    // CoordinatorOptions::first_generation).
    co.first_generation = absl::ToUnixMicros(absl::Now());
    if (options.config.has_checkpoint()) {
      co.save = [self](const std::string& dir, int64_t step,
                       const std::vector<uint64_t>& seen) {
        return self->SaveAllServers(dir, step, seen);
      };
    }
    co.reload = [self](const std::string& dir) {
      return self->ReloadAllServers(dir);
    };
    if (options.config.has_export_()) {
      s->exporter_ = std::make_unique<PeriodicExporter>(
          options.config.export_(), options.checkpoint_minute);
      co.on_committed = [self](const std::string& dir, int64_t step,
                               bool final) {
        self->exporter_->OnCheckpoint(dir, step, final);
      };
    }
    if (restore.has_value()) {
      co.resumed = restore->manifest;
      co.resumed_dir = restore->dir;
    }
    s->coordinator_ =
        std::make_unique<CoordinatorImpl>(std::move(co), s->security_);
    builder.RegisterService(s->coordinator_.get());
  }
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "server ", options.rank, ": cannot listen on ", options.listen_address,
        " (address in use or not local?)"));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  LOG(INFO) << "server " << options.rank << " listening on port " << s->port_
            << (s->local_socket_path_.empty()
                    ? ""
                    : absl::StrCat(" and unix:", s->local_socket_path_))
            << (options.rank == 0 ? " (with coordinator)" : "") << ", "
            << s->security_->Describe();
  return s;
}

PsServer::~PsServer() {
  // The coordinator's background work calls back into this object
  // (SaveAllServers: mu_, endpoints_, security_, handler_;
  // OnAllWorkersFinished: mu_, finisher_), so it must be over before any
  // member goes: first no new work and no more calls (Shutdown: Stop, then
  // the gRPC server drained and destroyed, which the services must outlive),
  // then wait for a save in progress and on_all_finished (~CoordinatorImpl),
  // then for the thread on_all_finished may have started.
  Shutdown();
  coordinator_.reset();
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

void PsServer::OnShutdownRequest(const ShutdownRequest& request) {
  if (!request.job_error().empty()) {
    absl::MutexLock lock(&mu_);
    job_outcome_ = absl::AbortedError(request.job_error());
  }
  RequestShutdown(request.reason());
}

absl::Status PsServer::job_outcome() const {
  absl::MutexLock lock(&mu_);
  return job_outcome_;
}

void PsServer::Shutdown() {
  if (server_ != nullptr) {
    // gRPC's shutdown waits for every call to finish, grace or not: end the
    // calls parked at the coordinator first.
    if (coordinator_ != nullptr) coordinator_->Stop();
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
  }
  if (!local_socket_path_.empty()) {
    ::unlink(local_socket_path_.c_str());
    local_socket_path_.clear();
  }
}

std::vector<std::string> PsServer::Peers() const {
  absl::MutexLock lock(&mu_);
  return endpoints_;
}

std::vector<absl::Status> PsServer::OnEveryServer(
    const std::vector<std::string>& peers,
    const std::function<absl::Status(size_t, const std::string&,
                                     PsService::Stub*)>& peer,
    const std::function<absl::Status()>& self) {
  std::vector<absl::Status> statuses(peers.size());
  std::vector<std::thread> threads;
  for (size_t i = 1; i < peers.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = PsService::NewStub(security_->Channel(peers[i]));
      statuses[i] = peer(i, peers[i], stub.get());
    });
  }
  statuses[0] = self();
  for (std::thread& t : threads) t.join();
  return statuses;
}

absl::StatusOr<std::vector<CheckpointFile>> PsServer::SaveAllServers(
    const std::string& dir, int64_t step, const std::vector<uint64_t>& seen) {
  SaveCheckpointRequest request;
  request.set_dir(dir);
  request.set_step(step);
  // Every server writes at once; this one through its handler.
  const std::vector<std::string> peers = Peers();
  std::vector<SaveCheckpointResponse> responses(peers.size());
  const std::vector<absl::Status> statuses = OnEveryServer(
      peers,
      [&](size_t i, const std::string& endpoint, PsService::Stub* stub) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::hours(1));
        return FromGrpcStatus(
            stub->SaveCheckpoint(&context, request, &responses[i]),
            absl::StrCat("server ", i, " (", endpoint, ")"), "SaveCheckpoint");
      },
      [&] { return handler_->SaveCheckpoint(request, &responses[0]); });
  std::vector<CheckpointFile> files;
  std::vector<uint64_t> incarnations;
  for (size_t i = 0; i < peers.size(); ++i) {
    RETURN_IF_ERROR(statuses[i]);
    files.insert(files.end(), responses[i].files().begin(),
                 responses[i].files().end());
    incarnations.push_back(responses[i].server_incarnation());
  }
  // What the workers at the cut trained against (the first checkpoint has
  // no earlier save to compare with).
  for (size_t i = 0; i < seen.size() && i < incarnations.size(); ++i) {
    if (seen[i] == 0 || seen[i] == incarnations[i]) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("server ", i, " (", peers[i],
                     ") restarted: the workers at the cut "
                     "trained against ",
                     seen[i] == kIncarnationsDisagree
                         ? std::string("two incarnations")
                         : absl::StrCat("incarnation ", absl::Hex(seen[i])),
                     ", it is ", absl::Hex(incarnations[i]),
                     ": checkpoint refused, the job must roll back"));
  }
  absl::MutexLock lock(&mu_);
  if (incarnations_.size() == incarnations.size()) {
    for (size_t i = 0; i < peers.size(); ++i) {
      if (incarnations[i] == incarnations_[i]) continue;
      return absl::FailedPreconditionError(absl::StrCat(
          "server ", i, " (", peers[i],
          ") restarted since the last "
          "checkpoint (incarnation ",
          absl::Hex(incarnations_[i]), ", now ", absl::Hex(incarnations[i]),
          "): checkpoint refused, the job "
          "must roll back"));
    }
  }
  incarnations_ = std::move(incarnations);
  return files;
}

absl::Status PsServer::ReloadAllServers(const std::string& dir) {
  ReloadRequest request;
  request.set_dir(dir);
  const std::vector<std::string> peers = Peers();
  std::vector<ReloadResponse> responses(peers.size());
  const std::vector<absl::Status> statuses = OnEveryServer(
      peers,
      [&](size_t i, const std::string& endpoint, PsService::Stub* stub) {
        // A server that is restarting is waited for (its restart is why the
        // job rolls back).
        absl::Status status;
        for (int attempt = 0;; ++attempt) {
          grpc::ClientContext context;
          context.set_wait_for_ready(true);
          context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::minutes(10));
          grpc::Status rpc = stub->Reload(&context, request, &responses[i]);
          status = FromGrpcStatus(
              rpc, absl::StrCat("server ", i, " (", endpoint, ")"), "Reload");
          if (rpc.error_code() != grpc::StatusCode::UNAVAILABLE ||
              attempt >= 60) {
            return status;
          }
          absl::SleepFor(absl::Seconds(1));
        }
      },
      [&] {
        absl::Status status = ReloadFrom(handler_.get(), dir);
        responses[0].set_server_incarnation(handler_->incarnation());
        return status;
      });
  std::vector<uint64_t> incarnations;
  for (size_t i = 0; i < peers.size(); ++i) {
    RETURN_IF_ERROR(statuses[i]);
    incarnations.push_back(responses[i].server_incarnation());
  }
  absl::MutexLock lock(&mu_);
  incarnations_ = std::move(incarnations);
  return absl::OkStatus();
}

void PsServer::OnAllWorkersFinished(const absl::Status& outcome) {
  std::vector<std::string> peers;
  {
    absl::MutexLock lock(&mu_);
    if (finishing_) return;
    finishing_ = true;
    peers = endpoints_;
    job_outcome_ = outcome;
  }
  const std::string reason = outcome.ok() ? "all workers finished"
                                          : "all workers finished, some failed";
  // Not on the gRPC thread: the Shutdown calls below block.
  finisher_ = std::thread([this, peers, reason, outcome] {
    for (size_t i = 1; i < peers.size(); ++i) {
      auto stub = PsService::NewStub(security_->Channel(peers[i]));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(5));
      ShutdownRequest request;
      request.set_reason(reason);
      if (!outcome.ok()) request.set_job_error(std::string(outcome.message()));
      ShutdownResponse response;
      grpc::Status status = stub->Shutdown(&context, request, &response);
      if (!status.ok()) {
        LOG(WARNING) << "coordinator: could not stop server " << i << " at "
                     << peers[i] << ": " << status.error_message();
      }
    }
    RequestShutdown(reason);
  });
}

}  // namespace ps
