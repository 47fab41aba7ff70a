// The job config's checkpoint section (proto/config.proto CheckpointConfig):
// defaults, path resolution and refused values with file:line:col.
#include <string>

#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

constexpr char kJob[] = R"pb(
  cluster { servers: "127.0.0.1:5000" }
  sparse_tables { name: "emb" dim: 8 }
  model { type: DNN sparse_table: "emb" }
  data { train_files: "/t.tsv" }
)pb";

absl::StatusOr<JobConfig> Parse(const std::string& checkpoint) {
  return ParseJobConfig(std::string(kJob) + checkpoint, "job.pbtxt", "/cfg");
}

TEST(CheckpointConfigTest, AbsentMeansNoCheckpoints) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->has_checkpoint());
}

TEST(CheckpointConfigTest, DefaultsAndResolvedDir) {
  auto c = Parse("checkpoint { dir: \"ckpts\" every_steps: 500 }\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->checkpoint().dir(), "/cfg/ckpts");
  EXPECT_EQ(c->checkpoint().every_steps(), 500);
  EXPECT_EQ(c->checkpoint().every_minutes(), 0);
  EXPECT_EQ(c->checkpoint().keep(), 3);
}

TEST(CheckpointConfigTest, BadValuesNameLineAndField) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (const Case& c : {
           Case{"checkpoint { every_steps: 10 }\n",
                "job.pbtxt:6:1: checkpoint.dir: is required"},
           Case{"checkpoint {\n dir: \"d\"\n keep: 0\n}\n",
                "job.pbtxt:8:2: checkpoint.keep: must be in [1, 1000], got 0"},
           Case{"checkpoint {\n dir: \"d\"\n every_steps: -5\n}\n",
                "job.pbtxt:8:2: checkpoint.every_steps: must be in [0, "},
           Case{"checkpoint {\n dir: \"d\"\n every_minutes: -1\n}\n",
                "job.pbtxt:8:2: checkpoint.every_minutes: must be in [0, "},
       }) {
    auto parsed = Parse(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_THAT(parsed,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want)))
        << c.text;
  }
}

}  // namespace
}  // namespace ps
