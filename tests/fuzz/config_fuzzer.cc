// Fuzz target: job configs (common/config.h, common/config_validate.h).
//
// The input is the text of a config file. ParseJobConfig must accept it or
// refuse it with InvalidArgument naming the file. An accepted config must
// give a model shape (MakeModelSpec, InputShapeOf), and the config a
// checkpoint records for it (RecordedJobConfig) must parse and validate
// again: a resume validates the recorded config.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "common/checkpoint.h"
#include "common/config.h"
#include "common/config_validate.h"
#include "common/input_shape.h"
#include "common/model_spec.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"
#include "proto/config.pb.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ps::JobConfig> config =
      ps::ParseJobConfig(text, "fuzz.pbtxt", "/jobs/fuzz");
  if (!config.ok()) {
    CHECK(absl::IsInvalidArgument(config.status())) << config.status();
    CHECK(absl::StartsWith(config.status().message(), "fuzz.pbtxt"))
        << config.status();
    return 0;
  }
  const ps::ModelSpec spec = ps::MakeModelSpec(*config);
  CHECK_GE(spec.dense_size, 0);
  const ps::InputShape shape = ps::InputShapeOf(config->data());
  CHECK_GE(shape.num_slots, 1);
  CHECK_GE(shape.num_dense, 0);

  const std::string recorded = ps::RecordedJobConfig(*config);
  ps::JobConfig again;
  CHECK(google::protobuf::TextFormat::ParseFromString(recorded, &again))
      << recorded;
  const absl::Status valid =
      ps::ValidateJobConfig(again, "recorded.pbtxt", nullptr);
  CHECK(valid.ok()) << "a valid config records one that is not: " << valid
                    << "\n"
                    << recorded;
  CHECK_EQ(ps::MakeModelSpec(again).dense_size, spec.dense_size);
  return 0;
}
