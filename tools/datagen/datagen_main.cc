// ps_datagen: writes synthetic Criteo-format train/eval files from a planted
// model (tools/datagen/datagen.h) for a job config with data.generate.
//
//   ps_datagen --config job.pbtxt [--data_dir DIR]
//
// Prints the generator report (the contents of oracle.json) as one JSON line
// on stdout. Exit status 2 for bad usage or a bad config (as ps_server and
// ps_worker), 1 when generating fails; the reason goes to stderr.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "common/cli.h"
#include "common/config.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "tools/datagen/datagen.h"

DEFINE_string(config, "",
              "Job config file (protobuf text) with data.generate.");
DEFINE_string(data_dir, "",
              "Output directory; overrides data.generate.output_dir.");

int main(int argc, char** argv) {
  ps::ParseCommandLine("ps_datagen",
                       "ps_datagen --config FILE [--data_dir DIR]", __FILE__,
                       &argc, &argv);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  // Exit status as ps_server and ps_worker: 2 for bad usage or a bad
  // config, 1 when generating fails.
  if (FLAGS_config.empty()) {
    std::cerr << "ps_datagen: --config is required\n";
    return ps::kExitUsage;
  }

  ps::ConfigOverrides overrides;
  overrides.data_dir = FLAGS_data_dir;
  // LoadJobConfig requires cluster.servers, which data generation never
  // uses: a placeholder keeps configs without servers (the usual case, the
  // launcher passes them) loadable here.
  overrides.servers = {"localhost:1"};
  absl::StatusOr<ps::JobConfig> config =
      ps::LoadJobConfig(FLAGS_config, overrides);
  if (!config.ok()) {
    std::cerr << "ps_datagen: " << config.status().message() << "\n";
    return ps::kExitUsage;
  }
  if (!config->data().has_generate()) {
    std::cerr << "ps_datagen: " << FLAGS_config
              << ": data.generate is not set; nothing to generate\n";
    return ps::kExitUsage;
  }

  const ps::GeneratorConfig& gen = config->data().generate();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ps::GeneratorReport> report = ps::GenerateCriteoData(gen);
  if (!report.ok()) {
    std::cerr << "ps_datagen: " << report.status().message() << "\n";
    return ps::kExitFailure;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  LOG(INFO) << "generated " << report->train_rows + report->eval_rows
            << " rows in " << seconds << " s ("
            << (report->train_rows + report->eval_rows) / seconds << " rows/s)";

  const std::string oracle_path = ps::GeneratedOracleFile(gen);
  std::ifstream oracle(oracle_path);
  std::stringstream json;
  json << oracle.rdbuf();
  if (!oracle || json.str().empty()) {
    std::cerr << "ps_datagen: cannot read back '" << oracle_path << "'\n";
    return ps::kExitFailure;
  }
  std::cout << json.str() << std::flush;
  return ps::kExitOk;
}
