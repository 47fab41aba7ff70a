#include "server/service/stats_format.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/metrics_http.h"
#include "google/protobuf/util/json_util.h"

namespace ps {

namespace {

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
    sum.set_duplicates(sum.duplicates() + p.duplicates());
  }
  return sum;
}

}  // namespace

std::string FormatStatsTable(const std::vector<ServerStats>& servers) {
  std::string out;
  for (const ServerStats& s : servers) {
    const StatsResponse& st = s.stats;
    absl::StrAppend(&out, "server ", st.server_rank(), " (", s.endpoint, ")\n");
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
      absl::StrAppendFormat(&out, "  %-4d %-16s %12d\n", t.table_id(), t.name(),
                            t.floats_held());
    }
    absl::StrAppendFormat(&out, "  %-8s %12s %12s %12s %12s %12s %12s\n",
                          "worker", "sparse grads", "sparse delta",
                          "dense grads", "dense delta", "repeats", "last step");
    for (const WorkerPushStats& p : st.pushes()) {
      absl::StrAppendFormat(&out, "  %-8d %12d %12d %12d %12d %12d %12d\n",
                            p.worker_rank(), p.sparse_gradients(),
                            p.sparse_deltas(), p.dense_gradients(),
                            p.dense_deltas(), p.duplicates(), p.last_step());
    }
    const WorkerPushStats sum = SumPushes(st);
    absl::StrAppendFormat(&out, "  %-8s %12d %12d %12d %12d %12d\n", "total",
                          sum.sparse_gradients(), sum.sparse_deltas(),
                          sum.dense_gradients(), sum.dense_deltas(),
                          sum.duplicates());
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
    items.push_back(absl::StrCat("{\"endpoint\":", JsonQuote(s.endpoint),
                                 ",\"stats\":", stats, "}"));
  }
  return absl::StrCat("[", absl::StrJoin(items, ",\n "), "]\n");
}

std::string FormatStatsLine(const StatsResponse& stats) {
  std::vector<std::string> parts;
  for (const SparseTableStats& t : stats.sparse_tables()) {
    parts.push_back(absl::StrCat(
        t.name(), " rows=", t.rows(), " (mem ", t.rows_in_memory(), ", disk ",
        t.rows_on_disk(), ") mem=", Bytes(t.memory_bytes()), " hit=", t.hits(),
        " miss=", t.misses(), " evict=", t.evictions(), " wb=", t.write_backs(),
        " pending=", t.pending_admissions(), " shrunk=", t.shrunk()));
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
      new std::set<std::string>{"hits",        "misses",   "evictions",
                                "write_backs", "admitted", "dropped_pushes",
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
      text.Add(
          absl::StrCat("ps_sparse_", field->name(), counter ? "_total" : ""),
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
  const std::pair<const char*, int64_t (WorkerPushStats::*)() const> kinds[] = {
      {"sparse_gradients", &WorkerPushStats::sparse_gradients},
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
  for (const WorkerPushStats& p : stats.pushes()) {
    text.Add("ps_push_repeats_total", "counter",
             "pushes this server acknowledged as repeats without applying "
             "them (retries of lost answers, steps a restarted worker sent "
             "again)",
             {{"server", server}, {"worker", absl::StrCat(p.worker_rank())}},
             static_cast<double>(p.duplicates()));
  }
  return text.text();
}

}  // namespace ps
