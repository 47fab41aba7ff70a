// ps_ctl [--servers host:port,...] [--json] stats|health|shrink|checkpoint|
// export|stop:
// the operator CLI. `shrink` deletes old and low-score rows (--tables,
// default all) and prints how many each server removed; `checkpoint` takes a
// checkpoint of the whole job now; `export --export_dir D [--checkpoint C]
// [--delta] [--min_score S]` writes the model for serving.
// `stats` prints every server's tables and push counts (a table, or JSON
// with --json); `health` runs gRPC's standard health check on every server;
// `stop` sends Shutdown with --reason to every server. A job with
// cluster.security needs --tls_ca_file (TLS) and the token
// (--auth_token_file or PS_AUTH_TOKEN). Exit
// code: 0 ok, 1 a server failed (the error names it), 2 bad usage
// (common/cli.h). --servers defaults to PS_SERVERS. The logic
// is in tools/ctl/admin_client.h.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/cli.h"
#include "common/cluster_env.h"
#include "gflags/gflags.h"
#include "tools/ctl/admin_client.h"

DEFINE_string(servers, "",
              "comma-separated host:port of the servers (default: "
              "PS_SERVERS)");
DEFINE_bool(json, false, "stats: print JSON instead of a table");
DEFINE_int32(timeout_ms, 5000, "deadline of each RPC");
DEFINE_string(reason, "ps_ctl stop", "stop: the reason the servers log");
DEFINE_string(tables, "", "shrink: comma-separated table names (default all)");
DEFINE_string(checkpoint, "",
              "export: the checkpoint folder (default: take one)");
DEFINE_string(export_dir, "", "export: where the export files go");
DEFINE_bool(delta, false, "export: only rows changed since the exports there");
DEFINE_double(min_score, -1e30, "export: leave out rows scoring below this");
DEFINE_string(tls_ca_file, "",
              "TLS: the CA certificate (PEM) the servers' certificates are "
              "checked against (cluster.security.tls_ca_file)");
DEFINE_string(auth_token_file, "",
              "the job's auth token, first line of this file "
              "(cluster.security.auth_token_file; else PS_AUTH_TOKEN)");
DEFINE_string(admin_token_file, "",
              "the job's operator token, first line of this file, for stop, "
              "checkpoint, shrink and export when the job has one "
              "(cluster.security.admin_token_file; else PS_ADMIN_TOKEN)");

int main(int argc, char** argv) {
  ps::ParseCommandLine("ps_ctl", ps::CtlUsage(), __FILE__, &argc, &argv);
  if (argc != 2) {
    std::cerr << "ps_ctl: expected one command, got " << argc - 1 << "\n"
              << ps::CtlUsage();
    return ps::kExitUsage;
  }
  if (FLAGS_timeout_ms <= 0) {
    std::cerr << "ps_ctl: --timeout_ms must be positive, got "
              << FLAGS_timeout_ms << "\n";
    return ps::kExitUsage;
  }
  ps::AdminOptions options;
  // As for ps_server and ps_worker: the flag, else PS_SERVERS.
  options.servers = absl::StrSplit(
      ps::FlagOrEnv(FLAGS_servers, "PS_SERVERS",
                    [](const char* name) { return std::getenv(name); }),
      ',', absl::SkipWhitespace());
  options.rpc_timeout = absl::Milliseconds(FLAGS_timeout_ms);
  options.json = FLAGS_json;
  options.stop_reason = FLAGS_reason;
  options.tables = absl::StrSplit(FLAGS_tables, ',', absl::SkipWhitespace());
  options.export_checkpoint = FLAGS_checkpoint;
  options.export_dir = FLAGS_export_dir;
  options.export_delta = FLAGS_delta;
  options.export_min_score = static_cast<float>(FLAGS_min_score);
  ps::SecurityConfig security;
  security.set_tls_ca_file(FLAGS_tls_ca_file);
  security.set_auth_token_file(FLAGS_auth_token_file);
  security.set_admin_token_file(FLAGS_admin_token_file);
  auto loaded = ps::RpcSecurity::Load(security, ps::RpcSecurity::Role::kAdmin);
  if (!loaded.ok()) {
    std::cerr << "ps_ctl: " << loaded.status().message() << "\n";
    return ps::kExitUsage;
  }
  options.security = *loaded;
  return ps::RunCtlCommand(options, argv[1], std::cout, std::cerr);
}
