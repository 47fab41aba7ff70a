// One parameter-server process: the gRPC server with PsService over this
// rank's PsHandler and, on rank 0, the Coordinator. Server 0 shuts the other
// servers down (Shutdown RPC) once every worker has finished, telling them
// the job's outcome (ShutdownRequest.job_error) when a worker failed, so
// every server's job_outcome() is the coordinator's.
//
// Lifecycle: Start() -> WaitForShutdownRequest() (until RequestShutdown, a
// Shutdown RPC or the job's end) -> Shutdown(). Thread-safe.
//
// Destroying a PsServer shuts it down (Shutdown) and then waits for server
// 0's coordinator to finish what it is doing in the background: a checkpoint
// being written is completed and committed, and the job's end (Shutdown RPCs
// to the other servers) runs to its end. Nothing it calls back into is
// destroyed before.
#ifndef PS_SERVER_SERVICE_PS_SERVER_H_
#define PS_SERVER_SERVICE_PS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/rpc_security.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "proto/ps.grpc.pb.h"
#include "proto/ps.pb.h"

namespace grpc {
class Server;
}

namespace ps {

class PsHandler;
class PsServiceImpl;
class CoordinatorImpl;
class PeriodicExporter;

struct PsServerOptions {
  JobConfig config;  // validated
  int rank = 0;
  // Address to bind, e.g. "0.0.0.0:5000" or "127.0.0.1:0" (any free port).
  std::string listen_address;
  // Also listen on the Unix-domain socket LocalSocketPath(dir, rank)
  // (common/local_socket.h) for workers on this host; "" for none. A stale
  // socket file there is replaced; it is removed at shutdown.
  std::string local_socket_dir;
  // Start from the checkpoint LATEST names under config.checkpoint.dir: the
  // tables restored (resharded if it had another server count) and, on
  // server 0, the workers' positions. No checkpoint at all: a warning and a
  // fresh start. A broken LATEST: an error naming the previous complete
  // checkpoint, to pass as resume_from.
  bool resume = false;
  // Start from this checkpoint folder instead (implies resume).
  std::string resume_from;
  // Fault injection (PsServiceImpl::SetDropPushAcks): this share of the
  // applied pushes is answered UNAVAILABLE. Default: 0.
  double drop_push_acks = 0;
  // Listen beyond loopback without TLS and a token (RpcSecurity::
  // CheckExposure): a trusted network only. Default: refused.
  bool insecure = false;
  // Server 0: what checkpoint.every_minutes counts in (tests shorten it).
  absl::Duration checkpoint_minute = absl::Minutes(1);
};

class PsServer {
 public:
  // Binds and starts serving. Unavailable when the address cannot be bound;
  // FailedPrecondition when it is not a loopback address and the job has no
  // TLS and token (unless options.insecure).
  static absl::StatusOr<std::unique_ptr<PsServer>> Start(
      const PsServerOptions& options);
  // Shutdown(), then waits for a checkpoint save in progress and the job's
  // end (see the top comment).
  ~PsServer();

  int port() const { return port_; }
  PsHandler* handler() const { return handler_.get(); }
  // The coordinator (rank 0 only; null elsewhere).
  CoordinatorImpl* coordinator() const { return coordinator_.get(); }

  // Server 0: the endpoints it sends Shutdown to at the job's end (default:
  // config.cluster.servers). For tests that bind port 0.
  void SetServerEndpoints(std::vector<std::string> endpoints);

  // Returns true once a shutdown was requested, false on timeout.
  bool WaitForShutdownRequest(absl::Duration timeout);
  void RequestShutdown(const std::string& reason);
  // OK unless the job ended with a failed worker (server 0: the
  // coordinator's outcome; the others: as told by server 0's Shutdown);
  // then Aborted with the coordinator's text. A stop by signal or ps_ctl
  // stop leaves it OK. Final once WaitForShutdownRequest returned true.
  absl::Status job_outcome() const ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the calls parked at the coordinator (Unavailable; CoordinatorImpl::
  // Stop), stops accepting calls, finishes or cancels in-flight ones (5 s
  // grace).
  void Shutdown();

 private:
  PsServer() = default;
  void OnAllWorkersFinished(const absl::Status& outcome);
  // A Shutdown RPC arrived.
  void OnShutdownRequest(const ShutdownRequest& request);
  // Every server's part of a checkpoint (this one's and, by RPC, the
  // others'), for the coordinator.
  // FailedPrecondition, committing nothing, when a server's incarnation is
  // not the one the workers at the cut reported (`seen`, see
  // CoordinatorOptions::save) or the one the last save or reload saw (it
  // restarted: its rows would be fresh or older than the others').
  absl::StatusOr<std::vector<CheckpointFile>> SaveAllServers(
      const std::string& dir, int64_t step, const std::vector<uint64_t>& seen);
  // A job-wide rollback: every server (this one through its handler)
  // reloads checkpoint folder `dir` ("" : fresh tables).
  absl::Status ReloadAllServers(const std::string& dir);
  // The endpoints of every server (SetServerEndpoints).
  std::vector<std::string> Peers() const;
  // Runs peer(i, endpoint, stub) for every other server i, each on a thread
  // of its own, and self() for this one meanwhile; returns their statuses
  // by rank.
  std::vector<absl::Status> OnEveryServer(
      const std::vector<std::string>& peers,
      const std::function<absl::Status(size_t, const std::string&,
                                       PsService::Stub*)>& peer,
      const std::function<absl::Status()>& self);

  // Destruction (~PsServer) stops and drains everything that calls into
  // this object before any member is destroyed. The declaration order backs
  // it up: each member is declared after everything it uses, so it is
  // destroyed before them (members go in reverse order). The coordinator's
  // tasks and finisher_ use every member above them; the services use
  // handler_ and security_; server_ (declared last, destroyed first) serves
  // the services, which must outlive it.
  int rank_ = 0;
  int port_ = 0;
  std::string local_socket_path_;  // "" when not listening on one
  std::unique_ptr<PsHandler> handler_;
  std::shared_ptr<const RpcSecurity> security_;
  int64_t max_message_bytes_ = 0;
  absl::Notification shutdown_requested_;
  mutable absl::Mutex mu_;
  std::vector<std::string> endpoints_ ABSL_GUARDED_BY(mu_);
  absl::Status job_outcome_ ABSL_GUARDED_BY(mu_);
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  // Server 0: every server's incarnation at the last save or reload (empty
  // before the first).
  std::vector<uint64_t> incarnations_ ABSL_GUARDED_BY(mu_);
  // Joined by ~PsServer after the coordinator is gone (it may start it).
  std::thread finisher_;
  // Server 0 with JobConfig.export; called by the coordinator, so it
  // outlives it.
  std::unique_ptr<PeriodicExporter> exporter_;
  std::unique_ptr<PsServiceImpl> service_;
  std::unique_ptr<CoordinatorImpl> coordinator_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace ps

#endif  // PS_SERVER_SERVICE_PS_SERVER_H_
