// Loading and validation of the job config (proto/config.proto).
//
// A config is refused before anything starts when it has an unknown field, a
// value of the wrong type, a missing required value or an impossible
// combination; the message names the file, the line and the field, e.g.
//   "job.pbtxt:14:3: data.batch_size: must be in [1, 1000000], got 0".
// Relative paths are resolved against the directory of the file, and when
// data.generate is set, data.train_files / eval_files are filled with the
// generated files' paths. Thread-safe (no shared state).
#ifndef PS_COMMON_CONFIG_H_
#define PS_COMMON_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/config.pb.h"

namespace ps {

// Values a cluster manager or the command line sets over the file's.
struct ConfigOverrides {
  // Replaces cluster.servers when not empty.
  std::vector<std::string> servers;
  // Replaces cluster.num_workers when > 0.
  int num_workers = 0;
  // Replaces data.generate.output_dir when not empty (and data.generate set).
  std::string data_dir;
  // Replaces training.metrics_dir when not empty.
  std::string metrics_dir;
};

// Reads and validates `path`. NotFound when the file cannot be read,
// InvalidArgument (with file:line:col) for everything wrong inside it.
absl::StatusOr<JobConfig> LoadJobConfig(const std::string& path,
                                        const ConfigOverrides& overrides = {});

// As LoadJobConfig, for text already in memory. `filename` is used in
// messages; relative paths are resolved against `base_dir` ("" = as is).
absl::StatusOr<JobConfig> ParseJobConfig(absl::string_view text,
                                         absl::string_view filename,
                                         absl::string_view base_dir,
                                         const ConfigOverrides& overrides = {});

// Splits "a:1,b:2" into endpoints (empty parts dropped).
std::vector<std::string> SplitEndpoints(absl::string_view list);

// The generated-data files of a config with data.generate.
std::string GeneratedTrainFile(const GeneratorConfig& gen);
std::string GeneratedEvalFile(const GeneratorConfig& gen);
std::string GeneratedOracleFile(const GeneratorConfig& gen);

}  // namespace ps

#endif  // PS_COMMON_CONFIG_H_
