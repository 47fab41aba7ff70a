#include "server/admin_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/metrics_http.h"
#include "google/protobuf/util/json_util.h"
#include "proto/health.grpc.pb.h"
#include "proto/ps.grpc.pb.h"
#include "server/checkpoint_export.h"

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

std::string Bytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, "B");
  if (bytes < (int64_t{1} << 20)) {
    return absl::StrFormat("%.1fKiB", bytes / 1024.0);
  }
  if (bytes < (int64_t{1} << 30)) {
    return absl::StrFormat("%.1fMiB", bytes / (1024.0 * 1024.0));
  }
  return absl::StrFormat("%.2fGiB", bytes / (1024.0 * 1024.0 * 1024.0));
}

// `text` as a JSON string literal.
std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", static_cast<int>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Push counts summed over workers.
WorkerPushStats SumPushes(const StatsResponse& stats) {
  WorkerPushStats sum;
  for (const WorkerPushStats& p : stats.pushes()) {
    sum.set_sparse_gradients(sum.sparse_gradients() + p.sparse_gradients());
    sum.set_sparse_deltas(sum.sparse_deltas() + p.sparse_deltas());
    sum.set_dense_gradients(sum.dense_gradients() + p.dense_gradients());
    sum.set_dense_deltas(sum.dense_deltas() + p.dense_deltas());
  }
  return sum;
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
    grpc::Status status =
        StubFor(options, one.endpoint)->Stats(&context, StatsRequest(), &one.stats);
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
  grpc::Status status = stub->Check(
      &context, grpc::health::v1::HealthCheckRequest(), &response);
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
    grpc::Status status =
        StubFor(options, options.servers[i])->Shutdown(&context, request, &response);
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
    grpc::Status status =
        StubFor(options, options.servers[i])->Shrink(&context, request, &response);
    if (!status.ok()) {
      errors.push_back(FromGrpcStatus(status, ServerName(options, i), "Shrink"));
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

std::string FormatStatsTable(const std::vector<ServerStats>& servers) {
  std::string out;
  for (const ServerStats& s : servers) {
    const StatsResponse& st = s.stats;
    absl::StrAppend(&out, "server ", st.server_rank(), " (", s.endpoint,
                    ")\n");
    absl::StrAppendFormat(&out,
                          "  %-4s %-16s %5s %12s %12s %12s %10s %12s %12s "
                          "%10s %10s %10s %10s %10s %10s %10s\n",
                          "id", "sparse table", "dim", "rows", "rows in mem",
                          "rows on disk", "memory", "hits", "misses",
                          "evictions", "writebacks", "step", "pending",
                          "admitted", "dropped", "shrunk");
    for (const SparseTableStats& t : st.sparse_tables()) {
      absl::StrAppendFormat(
          &out,
          "  %-4d %-16s %5d %12d %12d %12d %10s %12d %12d %10d %10d %10d "
          "%10d %10d %10d %10d\n",
          t.table_id(), t.name(), t.dim(), t.rows(), t.rows_in_memory(),
          t.rows_on_disk(), Bytes(t.memory_bytes()), t.hits(), t.misses(),
          t.evictions(), t.write_backs(), t.step(), t.pending_admissions(),
          t.admitted(), t.dropped_pushes(), t.shrunk());
    }
    absl::StrAppendFormat(&out, "  %-4s %-16s %12s\n", "id", "dense table",
                          "floats held");
    for (const DenseTableStats& t : st.dense_tables()) {
      absl::StrAppendFormat(&out, "  %-4d %-16s %12d\n", t.table_id(),
                            t.name(), t.floats_held());
    }
    absl::StrAppendFormat(&out, "  %-8s %12s %12s %12s %12s\n", "worker",
                          "sparse grads", "sparse delta", "dense grads",
                          "dense delta");
    for (const WorkerPushStats& p : st.pushes()) {
      absl::StrAppendFormat(&out, "  %-8d %12d %12d %12d %12d\n",
                            p.worker_rank(), p.sparse_gradients(),
                            p.sparse_deltas(), p.dense_gradients(),
                            p.dense_deltas());
    }
    const WorkerPushStats sum = SumPushes(st);
    absl::StrAppendFormat(&out, "  %-8s %12d %12d %12d %12d\n", "total",
                          sum.sparse_gradients(), sum.sparse_deltas(),
                          sum.dense_gradients(), sum.dense_deltas());
  }
  return out;
}

std::string FormatStatsJson(const std::vector<ServerStats>& servers) {
  google::protobuf::util::JsonPrintOptions json;
  json.always_print_primitive_fields = true;
  json.preserve_proto_field_names = true;
  std::vector<std::string> items;
  for (const ServerStats& s : servers) {
    std::string stats;
    // Printing a message we built cannot fail; an error would be our bug.
    if (!google::protobuf::util::MessageToJsonString(s.stats, &stats, json)
             .ok()) {
      stats = "null";
    }
    items.push_back(
        absl::StrCat("{\"endpoint\":", JsonQuote(s.endpoint),
                     ",\"stats\":", stats, "}"));
  }
  return absl::StrCat("[", absl::StrJoin(items, ",\n "), "]\n");
}

std::string FormatStatsLine(const StatsResponse& stats) {
  std::vector<std::string> parts;
  for (const SparseTableStats& t : stats.sparse_tables()) {
    parts.push_back(absl::StrCat(
        t.name(), " rows=", t.rows(), " (mem ",
        t.rows_in_memory(), ", disk ", t.rows_on_disk(),
        ") mem=", Bytes(t.memory_bytes()), " hit=", t.hits(),
        " miss=", t.misses(), " evict=", t.evictions(),
        " wb=", t.write_backs(), " pending=", t.pending_admissions(),
        " shrunk=", t.shrunk()));
  }
  for (const DenseTableStats& t : stats.dense_tables()) {
    parts.push_back(
        absl::StrCat("dense ", t.name(), " ", t.floats_held(), " floats"));
  }
  const WorkerPushStats sum = SumPushes(stats);
  parts.push_back(absl::StrCat(
      "pushes sparse=", sum.sparse_gradients() + sum.sparse_deltas(),
      " dense=", sum.dense_gradients() + sum.dense_deltas(),
      " workers=", stats.pushes_size()));
  return absl::StrCat("server ", stats.server_rank(), ": ",
                      absl::StrJoin(parts, "; "));
}

std::string FormatStatsPrometheus(const StatsResponse& stats) {
  static const std::set<std::string>* const kCounters =
      new std::set<std::string>{"hits",    "misses",         "evictions",
                                "write_backs", "admitted",   "dropped_pushes",
                                "shrunk"};
  PrometheusText text;
  const std::string server = absl::StrCat(stats.server_rank());
  // One group per metric (the text format wants every line of a metric
  // together): fields outside, tables inside.
  const google::protobuf::Descriptor* d = SparseTableStats::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = d->field(i);
    const auto type = field->cpp_type();
    if (field->name() == "table_id" ||
        (type != google::protobuf::FieldDescriptor::CPPTYPE_INT64 &&
         type != google::protobuf::FieldDescriptor::CPPTYPE_UINT32)) {
      continue;  // the id and the name are labels
    }
    const bool counter = kCounters->count(field->name()) > 0;
    for (const SparseTableStats& t : stats.sparse_tables()) {
      const google::protobuf::Reflection* r = t.GetReflection();
      const double value =
          type == google::protobuf::FieldDescriptor::CPPTYPE_INT64
              ? static_cast<double>(r->GetInt64(t, field))
              : r->GetUInt32(t, field);
      text.Add(absl::StrCat("ps_sparse_", field->name(),
                            counter ? "_total" : ""),
               counter ? "counter" : "gauge",
               absl::StrCat("SparseTableStats.", field->name(),
                            " of this server's shard"),
               {{"server", server}, {"table", t.name()}}, value);
    }
  }
  for (const DenseTableStats& t : stats.dense_tables()) {
    text.Add("ps_dense_floats_held", "gauge",
             "floats of the dense table this server holds",
             {{"server", server}, {"table", t.name()}},
             static_cast<double>(t.floats_held()));
  }
  const std::pair<const char*, int64_t (WorkerPushStats::*)() const> kinds[] =
      {{"sparse_gradients", &WorkerPushStats::sparse_gradients},
       {"sparse_deltas", &WorkerPushStats::sparse_deltas},
       {"dense_gradients", &WorkerPushStats::dense_gradients},
       {"dense_deltas", &WorkerPushStats::dense_deltas}};
  for (const auto& [kind, count] : kinds) {
    for (const WorkerPushStats& p : stats.pushes()) {
      text.Add("ps_pushes_total", "counter",
               "push requests this server accepted, by worker and kind",
               {{"server", server},
                {"worker", absl::StrCat(p.worker_rank())},
                {"kind", kind}},
               static_cast<double>((p.*count)()));
    }
  }
  return text.text();
}

std::string CtlUsage() {
  return "usage: ps_ctl --servers host:port[,host:port...] [--json] "
         "[--timeout_ms N] [--reason TEXT] [--tls_ca_file PEM] "
         "[--auth_token_file F] COMMAND\n"
         "(a job with cluster.security: --tls_ca_file for TLS, the token "
         "from --auth_token_file or PS_AUTH_TOKEN)\n"
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
    return 2;
  }
  if (command == "export") {
    if (options.export_dir.empty()) {
      err << "ps_ctl: export needs --export_dir\n" << CtlUsage();
      return 2;
    }
    CheckpointExportOptions e;
    e.checkpoint_dir = options.export_checkpoint;
    e.out_dir = options.export_dir;
    e.min_score = options.export_min_score;
    if (options.export_delta) e.base_dir = options.export_dir;
    if (e.checkpoint_dir.empty()) {
      if (options.servers.empty()) {
        err << "ps_ctl: export needs --checkpoint or --servers\n" << CtlUsage();
        return 2;
      }
      auto taken = RequestCheckpoint(options);
      if (!taken.ok()) {
        err << "ps_ctl: " << taken.status().message() << "\n";
        return 1;
      }
      e.checkpoint_dir = taken->dir();
    }
    auto exported = ExportCheckpoint(e);
    if (!exported.ok()) {
      err << "ps_ctl: export: " << exported.status().message() << "\n";
      return 1;
    }
    out << "exported " << exported->path << " (step " << exported->step
        << ", " << exported->rows_written << " rows"
        << (options.export_delta
                ? absl::StrCat(", ", exported->rows_deleted, " deleted")
                : "")
        << ", " << exported->bytes << " bytes) from " << e.checkpoint_dir
        << "\n";
    return 0;
  }
  if (options.servers.empty()) {
    err << "ps_ctl: --servers is required\n" << CtlUsage();
    return 2;
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
      return 1;
    }
    out << "sent Shutdown to " << options.servers.size() << " server(s)\n";
    return 0;
  }
  if (command == "checkpoint") {
    auto done = RequestCheckpoint(options);
    if (!done.ok()) {
      err << "ps_ctl: " << done.status().message() << "\n";
      return 1;
    }
    out << "checkpoint " << done->dir() << " at step " << done->global_step()
        << "\n";
    return 0;
  }
  if (command == "shrink") {
    auto shrunk = ShrinkServers(options);
    if (!shrunk.ok()) {
      err << "ps_ctl: " << shrunk.status().message() << "\n";
      return 1;
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
    return 0;
  }
  auto stats = CollectStats(options);
  if (!stats.ok()) {
    err << "ps_ctl: " << stats.status().message() << "\n";
    return 1;
  }
  out << (options.json ? FormatStatsJson(*stats) : FormatStatsTable(*stats));
  return 0;
}

}  // namespace ps
