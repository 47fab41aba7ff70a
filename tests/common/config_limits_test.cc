// Config bounds (issue 15): liveness timing, input limits, and the sizes a
// config makes the processes allocate (common/config_limits.h) are refused
// as config errors naming the field and the limit.
#include "common/config_limits.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

// {cluster}, {data} and {model} are replaced by the test's fields.
constexpr char kJob[] = R"pb(
cluster {
  servers: "127.0.0.1:5000"
  {cluster}
}
sparse_tables { name: "emb" dim: 8 }
model {
  type: DNN
  sparse_table: "emb"
  {model}
}
data {
  train_files: "train.tsv"
  {data}
}
)pb";

std::string Job(const std::string& cluster, const std::string& model = "",
                const std::string& data = "") {
  std::string text = kJob;
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"{cluster}", cluster},
        {"{model}", model},
        {"{data}", data}}) {
    text.replace(text.find(key), key.size(), value);
  }
  return text;
}

absl::StatusOr<JobConfig> Parse(const std::string& text) {
  return ParseJobConfig(text, "job.pbtxt", "/cfg", ConfigOverrides());
}

// The message of a refused config ("" when it was accepted).
std::string Error(const std::string& text) {
  absl::StatusOr<JobConfig> c = Parse(text);
  EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument));
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ConfigLimitsTest, LivenessTimesArePositiveAndTheTimeoutSpansHeartbeats) {
  EXPECT_TRUE(Parse(Job("")).ok());  // defaults: 1000 ms, 10000 ms, 300 s
  EXPECT_EQ(Error(Job("heartbeat_ms: 0")),
            "job.pbtxt:4:3: cluster.heartbeat_ms: must be in [1, 3600000], "
            "got 0");
  EXPECT_EQ(Error(Job("worker_timeout_ms: -5")),
            "job.pbtxt:4:3: cluster.worker_timeout_ms: must be in [1, "
            "86400000], got -5");
  // A timeout within two heartbeats declares live workers dead.
  EXPECT_EQ(Error(Job("heartbeat_ms: 1000 worker_timeout_ms: 2000")),
            "job.pbtxt:4:22: cluster.worker_timeout_ms: must be more than 2 "
            "* cluster.heartbeat_ms (1000 ms), or live workers are declared "
            "dead; got 2000");
  EXPECT_THAT(Error(Job("worker_timeout_ms: 500")),
              HasSubstr("cluster.worker_timeout_ms: must be more than 2 * "
                        "cluster.heartbeat_ms (1000 ms)"));
  EXPECT_TRUE(Parse(Job("heartbeat_ms: 1000 worker_timeout_ms: 2001")).ok());
  EXPECT_TRUE(Parse(Job("heartbeat_ms: 200 worker_timeout_ms: 1500")).ok());
  EXPECT_EQ(Error(Job("server_retry_sec: 0")),
            "job.pbtxt:4:3: cluster.server_retry_sec: must be in [1, 604800], "
            "got 0");
  EXPECT_THAT(Error(Job("server_retry_sec: -1")),
              HasSubstr("cluster.server_retry_sec: must be in [1, 604800]"));
}

TEST(ConfigLimitsTest, InputLimitsAreInRange) {
  auto c = Parse(Job(""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().max_line_bytes(), 1 << 20);
  EXPECT_EQ(c->data().max_features_per_line(), 4096);
  EXPECT_EQ(c->data().gzip_max_decompressed_bytes(), int64_t{1} << 40);
  EXPECT_EQ(c->data().gzip_max_ratio(), 1000);

  EXPECT_THAT(Error(Job("", "", "max_line_bytes: 10")),
              HasSubstr("data.max_line_bytes: must be in [64, 1073741824], "
                        "got 10"));
  EXPECT_THAT(Error(Job("", "", "gzip_max_decompressed_bytes: -1")),
              HasSubstr("data.gzip_max_decompressed_bytes: must be in [0, "));
  EXPECT_THAT(Error(Job("", "", "gzip_max_ratio: -1")),
              HasSubstr("data.gzip_max_ratio: must be in [0, 1000000], got "
                        "-1"));
  EXPECT_TRUE(Parse(Job("", "",
                        "gzip_max_decompressed_bytes: 0 gzip_max_ratio: 0 "
                        "max_line_bytes: 64"))
                  .ok());
}

TEST(ConfigLimitsTest, FeaturesPerLineAreSlotOnlyAndFitABatch) {
  EXPECT_THAT(Error(Job("", "", "max_features_per_line: 10")),
              HasSubstr("data.max_features_per_line: only applies to format "
                        "SLOT"));
  const std::string slot = "format: SLOT num_slots: 4 ";
  EXPECT_THAT(Error(Job("", "", slot + "max_features_per_line: 0")),
              HasSubstr("data.max_features_per_line: must be in [1, 1048576], "
                        "got 0"));
  EXPECT_TRUE(Parse(Job("", "",
                        slot + "batch_size: 1000000 max_features_per_line: "
                               "4294"))
                  .ok());
  // 1000000 * 4295 keys overflow a batch's 32-bit offsets.
  EXPECT_THAT(Error(Job("", "",
                        slot + "batch_size: 1000000 max_features_per_line: "
                               "4295")),
              HasSubstr("data.max_features_per_line: times data.batch_size "
                        "(1000000) must be at most 4294967295, the keys a "
                        "batch holds (32-bit offsets); got 4295"));
}

TEST(ConfigLimitsTest, LayerCountIsBounded) {
  std::string layers;
  for (int i = 0; i < kMaxHiddenLayers; ++i) layers += "hidden_units: 4 ";
  EXPECT_TRUE(Parse(Job("", layers)).ok());
  EXPECT_THAT(Error(Job("", layers + "hidden_units: 4")),
              HasSubstr("model.hidden_units: has 65 layers, more than the "
                        "limit of 64"));
}

TEST(ConfigLimitsTest, DenseParametersAreBounded) {
  // 39 Criteo slots of dim 8: 312 inputs. 312 -> 65536 -> 16384 -> 1 is
  // about 2^30 floats; 312 -> 65536 -> 65536 -> 1 about 2^32.
  absl::StatusOr<JobConfig> c =
      Parse(Job("", "hidden_units: 65536 hidden_units: 16384"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(MakeModelSpec(*c).dense_size, 1094287361);
  EXPECT_EQ(Error(Job("", "hidden_units: 65536 hidden_units: 65536")),
            "job.pbtxt:10:3: model.hidden_units: the model has 4315611137 "
            "dense parameters (input width 312), more than the limit of "
            "2147483648 (8 GiB of floats): use fewer or narrower layers, "
            "slots or a smaller sparse table dim");
}

TEST(ConfigLimitsTest, BatchActivationMemoryIsBounded) {
  // 39 slots of dim 8: pooled rows and gradients, 4, x0 and its gradient,
  // the hidden layer's activations and gradients.
  absl::StatusOr<JobConfig> c = Parse(Job("", "hidden_units: 16384"));
  ASSERT_TRUE(c.ok()) << c.status();
  const int64_t per_example = ActivationFloatsPerExample(MakeModelSpec(*c));
  EXPECT_EQ(per_example, 2 * 312 + 4 + 2 * 312 + 2 * 16384);
  EXPECT_TRUE(Parse(Job("", "hidden_units: 16384", "batch_size: 100000")).ok());
  EXPECT_THAT(Error(Job("", "hidden_units: 16384", "batch_size: 1000000")),
              HasSubstr(absl::StrCat(
                  "data.batch_size: 1000000 examples of ", per_example,
                  " activation floats each need about 129776 MiB "
                  "per batch, more than the limit of 32 GiB")));
}

}  // namespace
}  // namespace ps
