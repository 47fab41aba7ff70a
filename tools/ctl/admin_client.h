// The logic of ps_ctl, the operator CLI (tools/ctl/ps_ctl_main.cc): asks every
// parameter server for its Stats or sends it Shutdown, and formats stats as a
// readable table, as JSON, or as the one-line summary servers log.
//
// Servers are named in errors as "server i (host:port)", i being the
// position in the list. Calls block (one RPC per server, in turn, each with
// its own deadline); the functions keep no state and are thread-safe.
#ifndef PS_TOOLS_CTL_ADMIN_CLIENT_H_
#define PS_TOOLS_CTL_ADMIN_CLIENT_H_

#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc_security.h"
#include "proto/ps.pb.h"
#include "server/service/stats_format.h"

namespace ps {

struct AdminOptions {
  // host:port of every server, in rank order.
  std::vector<std::string> servers;
  // Deadline of each RPC. Default: 5 s.
  absl::Duration rpc_timeout = absl::Seconds(5);
  // `stats`: print JSON instead of a table. Default: false.
  bool json = false;
  // `stop`: the reason the servers log. Default: "ps_ctl stop".
  std::string stop_reason = "ps_ctl stop";
  // `shrink`: tables to shrink by name; empty: every table.
  std::vector<std::string> tables;
  // `checkpoint`: how long to wait for the workers to reach the cut and the
  // servers to write. Default: 10 min.
  absl::Duration checkpoint_timeout = absl::Minutes(10);
  // `export`: the checkpoint folder to export; empty: take one now (needs
  // servers). The export goes to export_dir (required); export_delta makes
  // a DELTA against the exports already there; rows scoring below
  // export_min_score are left out.
  std::string export_checkpoint;
  std::string export_dir;
  bool export_delta = false;
  float export_min_score = -std::numeric_limits<float>::infinity();
  // TLS and the auth token of the job (RpcSecurity, loaded as a client).
  // Default: plaintext, no token.
  std::shared_ptr<const RpcSecurity> security = RpcSecurity::None();
};

// Stats of every server, in list order. When any server does not answer,
// the error of the first that failed (code as gRPC gave it), naming every
// failed server: "Stats to server 1 (127.0.0.1:1): ...".
absl::StatusOr<std::vector<ServerStats>> CollectStats(
    const AdminOptions& options);

// Sends Shutdown with options.stop_reason to every server, even after one
// failed; the error names every server that did not take it.
absl::Status StopServers(const AdminOptions& options);

// Sends Shrink (options.tables) to every server, even after one failed.
// Returns each server's answer in list order; the error names every server
// that failed (e.g. an unknown table).
absl::StatusOr<std::vector<ShrinkResponse>> ShrinkServers(
    const AdminOptions& options);

// Asks the coordinator (server 0) for a checkpoint now and waits until it
// is complete (up to options.checkpoint_timeout). Returns the response (the
// checkpoint folder and its global step).
absl::StatusOr<RequestCheckpointResponse> RequestCheckpoint(
    const AdminOptions& options);

// The standard health check (grpc.health.v1.Health/Check) of one server:
// "SERVING", "NOT_SERVING", ..., or the error of a server that does not
// answer.
absl::StatusOr<std::string> CheckHealth(const AdminOptions& options,
                                        size_t server);

// Runs ps_ctl's `command` ("stats", "health", "shrink", "checkpoint",
// "export" or "stop"), printing results to `out` and errors to `err`.
// Returns the exit code: 0 on success, 1 when a server failed (health: did
// not answer SERVING), 2 for an unknown command or no servers (usage printed
// to `err`).
int RunCtlCommand(const AdminOptions& options, const std::string& command,
                  std::ostream& out, std::ostream& err);

// ps_ctl's usage text.
std::string CtlUsage();

}  // namespace ps

#endif  // PS_TOOLS_CTL_ADMIN_CLIENT_H_
