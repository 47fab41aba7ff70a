#include "tools/ctl/admin_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/cli.h"
#include "common/grpc_status.h"
#include "common/metrics_http.h"
#include "google/protobuf/util/json_util.h"
#include "proto/health.grpc.pb.h"
#include "proto/ps.grpc.pb.h"
#include "server/service/checkpoint_export.h"
#include "server/service/stats_format.h"

namespace ps {

namespace {

std::string ServerName(const AdminOptions& options, size_t i) {
  return absl::StrCat("server ", i, " (", options.servers[i], ")");
}

std::unique_ptr<PsService::Stub> StubFor(const AdminOptions& options,
                                         const std::string& endpoint) {
  return PsService::NewStub(options.security->Channel(endpoint));
}

void SetDeadline(const AdminOptions& options, grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(options.rpc_timeout));
}

// The first error's code with every error's message, or OK.
absl::Status Combined(const std::vector<absl::Status>& errors) {
  if (errors.empty()) return absl::OkStatus();
  std::vector<std::string> messages;
  for (const absl::Status& e : errors) messages.emplace_back(e.message());
  return absl::Status(errors[0].code(), absl::StrJoin(messages, "; "));
}

}  // namespace

absl::StatusOr<std::vector<ServerStats>> CollectStats(
    const AdminOptions& options) {
  std::vector<ServerStats> result;
  std::vector<absl::Status> errors;
  for (size_t i = 0; i < options.servers.size(); ++i) {
    ServerStats one;
    one.endpoint = options.servers[i];
    grpc::ClientContext context;
    SetDeadline(options, &context);
    grpc::Status status = StubFor(options, one.endpoint)
                              ->Stats(&context, StatsRequest(), &one.stats);
    if (!status.ok()) {
      errors.push_back(FromGrpcStatus(status, ServerName(options, i), "Stats"));
      continue;
    }
    result.push_back(std::move(one));
  }
  if (!errors.empty()) return Combined(errors);
  return result;
}

absl::StatusOr<std::string> CheckHealth(const AdminOptions& options,
                                        size_t server) {
  auto stub = grpc::health::v1::Health::NewStub(
      options.security->Channel(options.servers[server]));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status =
      stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, ServerName(options, server), "Health.Check");
  }
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
      response.status());
}

absl::Status StopServers(const AdminOptions& options) {
  std::vector<absl::Status> errors;
  for (size_t i = 0; i < options.servers.size(); ++i) {
    grpc::ClientContext context;
    SetDeadline(options, &context);
    ShutdownRequest request;
    request.set_reason(options.stop_reason);
    ShutdownResponse response;
    grpc::Status status = StubFor(options, options.servers[i])
                              ->Shutdown(&context, request, &response);
    if (!status.ok()) {
      errors.push_back(
          FromGrpcStatus(status, ServerName(options, i), "Shutdown"));
    }
  }
  return Combined(errors);
}

absl::StatusOr<std::vector<ShrinkResponse>> ShrinkServers(
    const AdminOptions& options) {
  std::vector<ShrinkResponse> result;
  std::vector<absl::Status> errors;
  ShrinkRequest request;
  for (const std::string& t : options.tables) request.add_tables(t);
  for (size_t i = 0; i < options.servers.size(); ++i) {
    grpc::ClientContext context;
    SetDeadline(options, &context);
    ShrinkResponse response;
    grpc::Status status = StubFor(options, options.servers[i])
                              ->Shrink(&context, request, &response);
    if (!status.ok()) {
      errors.push_back(
          FromGrpcStatus(status, ServerName(options, i), "Shrink"));
      continue;
    }
    result.push_back(std::move(response));
  }
  if (!errors.empty()) return Combined(errors);
  return result;
}

absl::StatusOr<RequestCheckpointResponse> RequestCheckpoint(
    const AdminOptions& options) {
  auto stub =
      Coordinator::NewStub(options.security->Channel(options.servers[0]));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options.checkpoint_timeout));
  RequestCheckpointRequest request;
  request.set_reason("ps_ctl checkpoint");
  RequestCheckpointResponse response;
  grpc::Status status = stub->RequestCheckpoint(&context, request, &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, ServerName(options, 0), "RequestCheckpoint");
  }
  return response;
}

std::string CtlUsage() {
  return "usage: ps_ctl --servers host:port[,host:port...] [--json] "
         "[--timeout_ms N] [--reason TEXT] [--tls_ca_file PEM] "
         "[--auth_token_file F] [--admin_token_file F] COMMAND\n"
         "(a job with cluster.security: --tls_ca_file for TLS, the token "
         "from --auth_token_file or PS_AUTH_TOKEN; with an operator token, "
         "stop, shrink, checkpoint and export need it: --admin_token_file "
         "or PS_ADMIN_TOKEN)\n"
         "commands:\n"
         "  stats   print every server's tables and push counts\n"
         "  health  the standard gRPC health check of every server (exit 0 "
         "when all are SERVING)\n"
         "  shrink  delete old and low-score rows now (--tables a,b; "
         "default every table)\n"
         "  checkpoint  take a checkpoint of the whole job now (asks server "
         "0's coordinator; waits until it is complete)\n"
         "  export  write the model for serving (ps_worker --predict) into "
         "--export_dir, from --checkpoint DIR or a checkpoint taken now; "
         "--delta: only rows changed since the exports there; --min_score\n"
         "  stop    send Shutdown (with --reason) to every server\n";
}

int RunCtlCommand(const AdminOptions& options, const std::string& command,
                  std::ostream& out, std::ostream& err) {
  if (command != "stats" && command != "health" && command != "stop" &&
      command != "shrink" && command != "checkpoint" && command != "export") {
    err << "ps_ctl: unknown command '" << command << "'\n" << CtlUsage();
    return kExitUsage;
  }
  if (command == "export") {
    if (options.export_dir.empty()) {
      err << "ps_ctl: export needs --export_dir\n" << CtlUsage();
      return kExitUsage;
    }
    CheckpointExportOptions e;
    e.checkpoint_dir = options.export_checkpoint;
    e.out_dir = options.export_dir;
    e.min_score = options.export_min_score;
    if (options.export_delta) e.base_dir = options.export_dir;
    if (e.checkpoint_dir.empty()) {
      if (options.servers.empty()) {
        err << "ps_ctl: export needs --checkpoint or --servers (or "
               "PS_SERVERS)\n"
            << CtlUsage();
        return kExitUsage;
      }
      auto taken = RequestCheckpoint(options);
      if (!taken.ok()) {
        err << "ps_ctl: " << taken.status().message() << "\n";
        return kExitFailure;
      }
      e.checkpoint_dir = taken->dir();
    }
    auto exported = ExportCheckpoint(e);
    if (!exported.ok()) {
      err << "ps_ctl: export: " << exported.status().message() << "\n";
      return kExitFailure;
    }
    out << "exported " << exported->path << " (step " << exported->step << ", "
        << exported->rows_written << " rows"
        << (options.export_delta
                ? absl::StrCat(", ", exported->rows_deleted, " deleted")
                : "")
        << ", " << exported->bytes << " bytes) from " << e.checkpoint_dir
        << "\n";
    return kExitOk;
  }
  if (options.servers.empty()) {
    err << "ps_ctl: --servers (or PS_SERVERS) is required\n" << CtlUsage();
    return kExitUsage;
  }
  if (command == "health") {
    int failed = 0;
    for (size_t i = 0; i < options.servers.size(); ++i) {
      auto health = CheckHealth(options, i);
      const bool serving = health.ok() && *health == "SERVING";
      failed += serving ? 0 : 1;
      (serving ? out : err)
          << "server " << i << " (" << options.servers[i] << "): "
          << (health.ok() ? *health : std::string(health.status().message()))
          << "\n";
    }
    return failed == 0 ? 0 : 1;
  }
  if (command == "stop") {
    absl::Status stopped = StopServers(options);
    if (!stopped.ok()) {
      err << "ps_ctl: " << stopped.message() << "\n";
      return kExitFailure;
    }
    out << "sent Shutdown to " << options.servers.size() << " server(s)\n";
    return kExitOk;
  }
  if (command == "checkpoint") {
    auto done = RequestCheckpoint(options);
    if (!done.ok()) {
      err << "ps_ctl: " << done.status().message() << "\n";
      return kExitFailure;
    }
    out << "checkpoint " << done->dir() << " at step " << done->global_step()
        << "\n";
    return kExitOk;
  }
  if (command == "shrink") {
    auto shrunk = ShrinkServers(options);
    if (!shrunk.ok()) {
      err << "ps_ctl: " << shrunk.status().message() << "\n";
      return kExitFailure;
    }
    int64_t removed = 0, left = 0;
    for (const ShrinkResponse& r : *shrunk) {
      for (const ShrinkResult& t : r.tables()) {
        out << "server " << r.server_rank() << " table '" << t.table()
            << "' at step " << t.step() << ": removed " << t.removed()
            << " rows, " << t.rows_left() << " left\n";
        removed += t.removed();
        left += t.rows_left();
      }
    }
    out << "shrink: removed " << removed << " rows in all, " << left
        << " left\n";
    return kExitOk;
  }
  auto stats = CollectStats(options);
  if (!stats.ok()) {
    err << "ps_ctl: " << stats.status().message() << "\n";
    return kExitFailure;
  }
  out << (options.json ? FormatStatsJson(*stats) : FormatStatsTable(*stats));
  return kExitOk;
}

}  // namespace ps
