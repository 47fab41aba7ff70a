// Validation of a parsed job config: every field in range, required values
// present, combinations possible, and the sizes the config implies within
// the limits of common/config_limits.h. Errors are InvalidArgument naming the
// file, the line and column of the offending field (from the parser's location
// tree) and the field's path, e.g.
//   "job.pbtxt:14:3: data.batch_size: must be in [1, 1000000], got 0".
// Thread-safe (no shared state).
#ifndef PS_COMMON_CONFIG_VALIDATE_H_
#define PS_COMMON_CONFIG_VALIDATE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/text_format.h"
#include "proto/config.pb.h"

namespace ps {

// `tree` holds the field locations of the parse that produced `config`
// (may be null: messages then name the file only).
absl::Status ValidateJobConfig(
    const JobConfig& config, absl::string_view filename,
    const google::protobuf::TextFormat::ParseInfoTree* tree);

}  // namespace ps

#endif  // PS_COMMON_CONFIG_VALIDATE_H_
