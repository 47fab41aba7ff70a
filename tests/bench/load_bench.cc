// Load benchmark (not a test): --clients honest clients (default 64, each a
// worker with its own rank and channels, tests/bench/load_honest.h) pull and
// push against --servers real PsServers (default 2) in this process for
// --seconds (default 60); then, on fresh servers, the same again with one
// hostile client sending garbage alongside at full speed
// (tests/bench/load_garbage.h). Prints one JSON object on stdout: the
// clean phase's throughput, per-call latency percentiles, error count and
// conservation check at the top, and the same for the garbage phase under
// "garbage_phase", with the garbage client's rate and the honest clients'
// change against the clean phase.
//
// Conservation: the table is SGD with learning rate 1 over zero rows, and
// every gradient is a small multiple of 2^-10, so every sum is exact in
// float. After a phase every row on the servers (PsHandler::DumpSparse)
// must equal -(sum of every gradient the clients pushed for its key and the
// servers acknowledged), bit for bit, and each server's push ledger must
// count exactly the pushes acknowledged to each client.
//
// Exit status 0 when every phase had zero errors and exact conservation.
//
//   load_bench [--seconds 60] [--clients 64] [--servers 2] [--phases both]
//
// Run by scripts/load_bench.sh (which builds it).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "tests/bench/load_check.h"
#include "tests/bench/load_garbage.h"
#include "tests/bench/load_honest.h"
#include "tests/testing/server_test_util.h"

DEFINE_int32(seconds, 60, "length of each phase");
DEFINE_int32(clients, 64, "honest clients (each a worker rank)");
DEFINE_int32(servers, 2, "parameter servers (at least 2)");
DEFINE_int64(keys, 100000, "keys the honest clients draw from");
DEFINE_int32(batch_keys, 128, "distinct keys per step and client");
DEFINE_int32(dim, 8, "row width of the table");
DEFINE_string(key_dist, "zipf", "zipf (Zipf 1.1 over key ranks) or uniform");
DEFINE_string(phases, "both", "clean, garbage or both");
DEFINE_int32(garbage_threads, 4, "calls the garbage client keeps in flight");
DEFINE_bool(garbage_big, true,
            "the garbage client also sends requests of 2^22 + 1 keys");

namespace ps {
namespace load {
namespace {

constexpr float kLearningRate = 1.0f;

struct Phase {
  double seconds = 0;
  std::vector<ClientResult> clients;
  Conservation conservation;
  bool has_garbage = false;
  GarbageResult garbage;
};

absl::StatusOr<Phase> RunPhase(const LoadOptions& load,
                               const KeyUniverse& universe, int num_clients,
                               int seconds, const GarbageOptions* garbage) {
  JobConfig config = SmallJobConfig(load.num_servers, num_clients + 1, load.dim,
                                    /*dense_block_size=*/1024);
  config.mutable_sparse_tables(0)->mutable_optimizer()->set_learning_rate(
      kLearningRate);
  // A real job's message bound (256 MiB), so that the garbage client's
  // oversized requests reach the handlers' own bounds.
  config.mutable_cluster()->clear_max_message_bytes();
  std::vector<std::unique_ptr<PsServer>> servers;
  std::vector<std::string> endpoints;
  for (int r = 0; r < load.num_servers; ++r) {
    PsServerOptions options;
    options.config = config;
    options.rank = r;
    options.listen_address = "127.0.0.1:0";
    ASSIGN_OR_RETURN(std::unique_ptr<PsServer> server,
                     PsServer::Start(options));
    endpoints.push_back(Endpoint(*server));
    servers.push_back(std::move(server));
  }
  std::vector<std::unique_ptr<HonestClient>> clients;
  for (int c = 0; c < num_clients; ++c) {
    clients.push_back(std::make_unique<HonestClient>(load, universe, endpoints,
                                                     c, /*seed=*/1000 + c));
    if (!clients.back()->Connect(absl::Seconds(30))) {
      return absl::UnavailableError(
          absl::StrCat("client ", c, " cannot connect to the servers"));
    }
  }
  std::unique_ptr<GarbageClient> hostile;
  if (garbage != nullptr) {
    hostile =
        std::make_unique<GarbageClient>(load, *garbage, universe, endpoints);
    if (!hostile->Connect(absl::Seconds(30))) {
      return absl::UnavailableError("the garbage client cannot connect");
    }
  }

  Phase phase;
  phase.clients.resize(num_clients);
  std::atomic<bool> stop{false};
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int c = 0; c < num_clients; ++c) {
    threads.emplace_back([&, c] { phase.clients[c] = clients[c]->Run(stop); });
  }
  std::thread hostile_thread;
  if (hostile != nullptr) {
    phase.has_garbage = true;
    hostile_thread = std::thread([&] { phase.garbage = hostile->Run(stop); });
  }
  absl::SleepFor(absl::Seconds(seconds));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  // Every honest call counted has ended.
  phase.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (hostile_thread.joinable()) hostile_thread.join();
  for (const auto& [kind, k] : phase.garbage.by_kind) {
    LOG(WARNING) << "garbage " << kind << ": " << k.requests << " sent, "
                 << k.accepted << " accepted; first refusal: "
                 << (k.first_refusal.empty() ? "none" : k.first_refusal);
  }

  std::vector<PsHandler*> handlers;
  for (const auto& server : servers) handlers.push_back(server->handler());
  phase.conservation = CheckConservation(handlers, universe, load.dim,
                                         kLearningRate, phase.clients);
  clients.clear();
  hostile.reset();
  for (auto& server : servers) server->Shutdown();
  return phase;
}

double Percentile(const std::vector<float>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t i =
      std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()));
  return sorted[i];
}

struct Figures {
  int64_t pulls = 0, pushes = 0, keys = 0, errors = 0;
  double pulls_per_s = 0, pushes_per_s = 0, keys_per_s = 0;
  double pull[3] = {0, 0, 0};  // p50, p99, p999 in ms
  double push[3] = {0, 0, 0};
  std::vector<std::string> first_errors;
};

Figures Summarize(const Phase& phase) {
  Figures f;
  std::vector<float> pull_ms, push_ms;
  for (const ClientResult& c : phase.clients) {
    f.pulls += c.pulls;
    f.pushes += c.pushes;
    f.keys += c.keys_pulled + c.keys_pushed;
    f.errors += c.errors;
    pull_ms.insert(pull_ms.end(), c.pull_ms.begin(), c.pull_ms.end());
    push_ms.insert(push_ms.end(), c.push_ms.begin(), c.push_ms.end());
    for (const std::string& e : c.first_errors) {
      if (f.first_errors.size() < 5) f.first_errors.push_back(e);
    }
  }
  f.pulls_per_s = f.pulls / phase.seconds;
  f.pushes_per_s = f.pushes / phase.seconds;
  f.keys_per_s = f.keys / phase.seconds;
  std::sort(pull_ms.begin(), pull_ms.end());
  std::sort(push_ms.begin(), push_ms.end());
  const double qs[3] = {0.5, 0.99, 0.999};
  for (int i = 0; i < 3; ++i) {
    f.pull[i] = Percentile(pull_ms, qs[i]);
    f.push[i] = Percentile(push_ms, qs[i]);
  }
  return f;
}

std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Latency(const double (&ms)[3]) {
  return absl::StrFormat(R"({"p50": %.3f, "p99": %.3f, "p999": %.3f})", ms[0],
                         ms[1], ms[2]);
}

// The phase's fields of the JSON object, without braces.
std::string PhaseJson(const Phase& phase, const Figures& f) {
  const Conservation& c = phase.conservation;
  std::vector<std::string> errors;
  for (const std::string& e : f.first_errors) errors.push_back(Quoted(e));
  return absl::StrFormat(
      R"("measured_seconds": %.2f, "requests": %d, "errors": %d, )"
      R"("pulls_per_s": %.1f, "pushes_per_s": %.1f, "keys_per_s": %.0f, )"
      R"("pull_ms": %s, "push_ms": %s, "conservation": {"ok": %s, )"
      R"("rows": %d, "keys_pushed": %d, "mismatches": %d, "missing": %d, )"
      R"("misplaced": %d, "other_rows": %d, "exact_sums": %s, )"
      R"("ledger_ok": %s, "first_mismatch": %s}, "first_errors": [%s])",
      phase.seconds, f.pulls + f.pushes, f.errors, f.pulls_per_s,
      f.pushes_per_s, f.keys_per_s, Latency(f.pull), Latency(f.push),
      c.ok() ? "true" : "false", c.rows, c.keys_pushed, c.mismatches, c.missing,
      c.misplaced, c.other_rows, c.exact ? "true" : "false",
      c.ledger_ok ? "true" : "false", Quoted(c.first_mismatch),
      absl::StrJoin(errors, ", "));
}

std::string GarbageJson(const Phase& phase, const GarbageOptions& options) {
  const GarbageResult& g = phase.garbage;
  std::vector<std::string> codes, accepted;
  int64_t accepted_total = 0;
  for (const auto& [code, n] : g.by_code) {
    codes.push_back(absl::StrCat(Quoted(code), ": ", n));
  }
  for (const auto& [kind, k] : g.by_kind) {
    accepted_total += k.accepted;
    if (k.accepted > 0) {
      accepted.push_back(absl::StrCat(Quoted(kind), ": ", k.accepted));
    }
  }
  return absl::StrFormat(
      R"({"threads": %d, "kinds": %d, "requests": %d, "requests_per_s": %.1f, )"
      R"("accepted": %d, "accepted_by_kind": {%s}, "by_code": {%s}})",
      options.threads, g.by_kind.size(), g.requests, g.requests / phase.seconds,
      accepted_total, absl::StrJoin(accepted, ", "),
      absl::StrJoin(codes, ", "));
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

std::string ChangeJson(const Figures& clean, const Figures& dirty) {
  return absl::StrFormat(
      R"({"pulls_per_s": %.3f, "pushes_per_s": %.3f, "pull_p50": %.3f, )"
      R"("pull_p99": %.3f, "push_p50": %.3f, "push_p99": %.3f})",
      Ratio(dirty.pulls_per_s, clean.pulls_per_s),
      Ratio(dirty.pushes_per_s, clean.pushes_per_s),
      Ratio(dirty.pull[0], clean.pull[0]), Ratio(dirty.pull[1], clean.pull[1]),
      Ratio(dirty.push[0], clean.push[0]), Ratio(dirty.push[1], clean.push[1]));
}

int Main() {
  if (FLAGS_servers < 2 || FLAGS_clients < 1 || FLAGS_seconds < 1 ||
      FLAGS_keys < 1000 || FLAGS_batch_keys < 1 || FLAGS_dim < 1 ||
      (FLAGS_key_dist != "zipf" && FLAGS_key_dist != "uniform") ||
      (FLAGS_phases != "clean" && FLAGS_phases != "garbage" &&
       FLAGS_phases != "both")) {
    std::fprintf(stderr,
                 "load_bench: needs --servers >= 2, --clients >= 1, "
                 "--seconds >= 1, --keys >= 1000, --key_dist zipf|uniform, "
                 "--phases clean|garbage|both\n");
    return 2;
  }
  LoadOptions load;
  load.num_servers = FLAGS_servers;
  load.dim = FLAGS_dim;
  load.universe = FLAGS_keys;
  load.batch_keys = FLAGS_batch_keys;
  load.zipf = FLAGS_key_dist == "zipf";
  const KeyUniverse universe(load.universe, load.num_servers);
  GarbageOptions garbage;
  garbage.threads = FLAGS_garbage_threads;
  garbage.rank = FLAGS_clients;
  garbage.honest_clients = FLAGS_clients;
  garbage.big = FLAGS_garbage_big;

  std::string json = absl::StrFormat(
      R"({"clients": %d, "servers": %d, "seconds": %d, "keys": %d, )"
      R"("batch_keys": %d, "dim": %d, "key_dist": %s, "lr": %g)",
      FLAGS_clients, FLAGS_servers, FLAGS_seconds, FLAGS_keys, FLAGS_batch_keys,
      FLAGS_dim,
      Quoted(load.zipf ? bench::KeyDistName(bench::KeyDist::kZipf)
                       : bench::KeyDistName(bench::KeyDist::kUniform)),
      kLearningRate);
  bool ok = true;
  Figures clean;
  const bool run_clean = FLAGS_phases != "garbage";
  if (run_clean) {
    LOG(INFO) << "load_bench: clean phase, " << FLAGS_seconds << " s";
    auto phase =
        RunPhase(load, universe, FLAGS_clients, FLAGS_seconds, nullptr);
    if (!phase.ok()) {
      std::fprintf(stderr, "load_bench: %s\n",
                   phase.status().ToString().c_str());
      return 1;
    }
    clean = Summarize(*phase);
    ok = ok && clean.errors == 0 && phase->conservation.ok();
    absl::StrAppend(&json, ", ", PhaseJson(*phase, clean));
  }
  if (FLAGS_phases != "clean") {
    LOG(INFO) << "load_bench: garbage phase, " << FLAGS_seconds << " s";
    auto phase =
        RunPhase(load, universe, FLAGS_clients, FLAGS_seconds, &garbage);
    if (!phase.ok()) {
      std::fprintf(stderr, "load_bench: %s\n",
                   phase.status().ToString().c_str());
      return 1;
    }
    const Figures dirty = Summarize(*phase);
    ok = ok && dirty.errors == 0 && phase->conservation.ok();
    absl::StrAppend(&json, R"(, "garbage_phase": {)", PhaseJson(*phase, dirty),
                    R"(, "garbage": )", GarbageJson(*phase, garbage));
    if (run_clean) {
      absl::StrAppend(&json, R"(, "change_vs_clean": )",
                      ChangeJson(clean, dirty));
    }
    absl::StrAppend(&json, "}");
  }
  std::printf("%s}\n", json.c_str());
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace load
}  // namespace ps

int main(int argc, char** argv) {
  gflags::SetUsageMessage("load_bench [--seconds N] (see the top comment)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  return ps::load::Main();
}
