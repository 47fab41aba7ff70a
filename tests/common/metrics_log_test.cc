#include "common/metrics_log.h"

#include <fstream>
#include <limits>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_util::TempDir;

TEST(MetricsLogTest, WritesOneJsonObjectPerLineAndCreatesTheFolder) {
  TempDir dir;
  const std::string path = dir.Path("a/b/w.jsonl");
  {
    auto log = MetricsLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Write("train", {{"step", 100}, {"auc", 0.75}});
    (*log)->Write("eval", {{"loss", std::numeric_limits<double>::quiet_NaN()}});
  }
  std::ifstream in(path);
  std::string first, second, third;
  ASSERT_TRUE(std::getline(in, first));
  ASSERT_TRUE(std::getline(in, second));
  EXPECT_FALSE(std::getline(in, third));
  EXPECT_THAT(first, StartsWith("{\"type\": \"train\", \"time\": "));
  EXPECT_THAT(first, HasSubstr("\"step\": 100, \"auc\": 0.75}"));
  // JSON has no NaN.
  EXPECT_THAT(second, HasSubstr("\"loss\": null}"));
}

TEST(MetricsLogTest, NamesAndTypeAreJsonEscaped) {
  TempDir dir;
  const std::string path = dir.Path("w.jsonl");
  {
    auto log = MetricsLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Write("a \"type\"", {{"q\"b\\s\x01\n\t\x7f\xc3\xa9", 1.5}});
  }
  std::ifstream in(path);
  std::string line, more;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_FALSE(std::getline(in, more));  // the '\n' in the name is escaped
  EXPECT_THAT(line, StartsWith("{\"type\": \"a \\\"type\\\"\", \"time\": "));
  // Unescaped, the name's quote ended the string and the line was not JSON.
  EXPECT_THAT(line,
              EndsWith(", \"q\\\"b\\\\s\\u0001\\n\\t\\u007f\xc3\xa9\": 1.5}"));
}

TEST(MetricsLogTest, UnwritablePathIsAnErrorNamingIt) {
  auto log = MetricsLog::Open("/proc/no/such/metrics.jsonl");
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("/proc/no"));
}

}  // namespace
}  // namespace ps
