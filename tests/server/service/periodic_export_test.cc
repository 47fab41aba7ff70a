// When server 0 exports during training (JobConfig.export): after a
// checkpoint once every_minutes have passed since the last try, always for
// the final checkpoint, never twice for one step; a failed export is
// reported and counted and does not stop the next. (What an export holds,
// and that deltas applied in order give the final model, is checked end to
// end in tests/integration/resume_test.cc.)
#include "server/service/periodic_export.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

TEST(PeriodicExportTest, ExportsWhenDueAndAlwaysTheFinalCheckpoint) {
  testing_util::TempDir out;
  ExportConfig config;
  config.set_dir(out.path());
  config.set_every_minutes(2);
  absl::Time now = absl::FromUnixSeconds(1000);
  PeriodicExporter exporter(config, absl::Minutes(1), [&] { return now; });
  // No checkpoint there: every try fails, naming it, which shows when one
  // was made.
  const std::string missing = out.path() + "/no-such-checkpoint";
  auto first = exporter.OnCheckpoint(missing, 10, /*final=*/false);
  ASSERT_TRUE(first.has_value());  // the first checkpoint: due
  EXPECT_THAT(*first, StatusIs(::testing::_, HasSubstr("no-such-checkpoint")));
  now += absl::Minutes(1);
  EXPECT_FALSE(exporter.OnCheckpoint(missing, 20, false).has_value());
  now += absl::Minutes(1);
  EXPECT_TRUE(exporter.OnCheckpoint(missing, 30, false).has_value());
  now += absl::Seconds(10);
  EXPECT_FALSE(exporter.OnCheckpoint(missing, 40, false).has_value());
  // The final checkpoint is exported whenever it comes.
  EXPECT_TRUE(exporter.OnCheckpoint(missing, 40, /*final=*/true).has_value());
  EXPECT_EQ(exporter.failures(), 3);
  EXPECT_EQ(exporter.exports(), 0);
}

}  // namespace
}  // namespace ps
