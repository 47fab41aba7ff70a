// What a training worker shows its user (worker/train/progress_reporter.h):
// the progress line's fields and ETA, the "train" lines of the metrics log
// (a real file), a fresh window after every line, the epochs' seconds. The
// clock is the test's, so rates and ETAs are exact.
#include "worker/train/progress_reporter.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics_log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/auc.h"
#include "tests/testing/reader_test_util.h"

namespace ps {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

// `n` positive examples predicted `pos` and `n` negative ones predicted `neg`.
AucAccumulator Predictions(float pos, float neg, int n) {
  AucAccumulator acc;
  for (int i = 0; i < n; ++i) {
    acc.Add(pos, 1);
    acc.Add(neg, 0);
  }
  return acc;
}

// The number after "name": in a JSON line; NaN when absent.
double Field(const std::string& line, const std::string& name) {
  const std::string tag = "\"" + name + "\": ";
  const size_t at = line.find(tag);
  if (at == std::string::npos) return std::numeric_limits<double>::quiet_NaN();
  return std::strtod(line.c_str() + at + tag.size(), nullptr);
}

class ProgressReporterTest : public testing_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    path_ = dir_ + "/metrics/worker_3.jsonl";
    auto log = MetricsLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(log).value();
  }

  // Worker 3, a line every 10 steps, 2 epochs, the test's clock.
  ProgressOptions Options() {
    ProgressOptions o;
    o.rank = 3;
    o.log_every_steps = 10;
    o.epochs = 2;
    o.clock = [this] { return now_; };
    return o;
  }

  std::vector<std::string> MetricsLines() {
    std::ifstream in(path_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  double now_ = 100;
  std::string path_;
  std::unique_ptr<MetricsLog> log_;
};

TEST_F(ProgressReporterTest, LineShowsTheWindowAndTheEta) {
  ProgressReporter reporter(Options(), log_.get());
  reporter.StartEpoch(0);
  reporter.CountStep(160, 12);
  reporter.CountStep(160, 8);
  reporter.AddPullMs(10);  // a dense pull
  reporter.AddPushWaitMs(5);
  reporter.AddMetrics(Predictions(0.8f, 0.2f, 2));
  now_ = 102;
  EXPECT_FALSE(reporter.Due(9));
  EXPECT_TRUE(reporter.Due(10));
  // 320 examples in 2 s; 30 ms of pulls and 5 of push waits over 10 steps;
  // a quarter of the epoch took 2 s: 6 s to its end and 8 s for the next.
  EXPECT_EQ(reporter.Report(10, 320, 0.25),
            "worker 3 step 10 examples 320 loss 0.223144 auc 1 ex/s 160 "
            "pull_ms/step 3 push_wait_ms/step 0.5 epoch 1/2 25% eta 14s");

  const std::vector<std::string> lines = MetricsLines();
  ASSERT_EQ(lines.size(), 1u);
  const std::string& line = lines[0];
  EXPECT_THAT(line, HasSubstr("\"type\": \"train\""));
  EXPECT_EQ(Field(line, "step"), 10);
  EXPECT_EQ(Field(line, "examples"), 320);
  EXPECT_NEAR(Field(line, "loss"), -std::log(0.8), 1e-6);  // of a float
  EXPECT_EQ(Field(line, "auc"), 1);
  EXPECT_EQ(Field(line, "examples_per_sec"), 160);
  EXPECT_EQ(Field(line, "pull_ms_per_step"), 3);
  EXPECT_EQ(Field(line, "push_wait_ms_per_step"), 0.5);
  EXPECT_EQ(Field(line, "epoch_fraction"), 0.25);
  EXPECT_EQ(Field(line, "eta_sec"), 14);
}

TEST_F(ProgressReporterTest, EachLineStartsAFreshWindow) {
  ProgressReporter reporter(Options(), log_.get());
  reporter.StartEpoch(0);
  reporter.CountStep(320, 30);
  reporter.AddPushWaitMs(5);
  reporter.AddMetrics(Predictions(0.8f, 0.2f, 2));
  now_ = 102;
  reporter.Report(10, 320, 0.25);

  // The next window: only its own predictions, examples and latencies.
  reporter.CountStep(64, 0);
  reporter.AddMetrics(Predictions(0.2f, 0.8f, 2));  // all wrong
  now_ = 106;
  EXPECT_EQ(reporter.Report(20, 384, 0.5),
            "worker 3 step 20 examples 384 loss 1.60944 auc 0 ex/s 16 "
            "pull_ms/step 0 push_wait_ms/step 0 epoch 1/2 50% eta 18s");
  // Nothing since.
  now_ = 107;
  EXPECT_THAT(reporter.Report(30, 384, 0.5),
              HasSubstr("loss 0 auc 0.5 ex/s 0 pull_ms/step 0 "
                        "push_wait_ms/step 0 "));
  // The total keeps every prediction.
  EXPECT_EQ(reporter.total().count(), 8);
  EXPECT_DOUBLE_EQ(reporter.total().Auc(), 0.5);

  const std::vector<std::string> lines = MetricsLines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(Field(lines[1], "auc"), 0);
  EXPECT_EQ(Field(lines[1], "examples_per_sec"), 16);
  EXPECT_EQ(Field(lines[1], "pull_ms_per_step"), 0);
  EXPECT_EQ(Field(lines[2], "loss"), 0);
  EXPECT_EQ(Field(lines[2], "examples_per_sec"), 0);
}

TEST_F(ProgressReporterTest, NoEtaWhileTheEpochsSizeIsUnknown) {
  ProgressReporter reporter(Options(), log_.get());
  reporter.StartEpoch(0);
  reporter.CountStep(10, 0);
  now_ = 101;
  const std::string line = reporter.Report(10, 10, -1);
  EXPECT_THAT(line, EndsWith("push_wait_ms/step 0"));
  EXPECT_THAT(line, Not(HasSubstr("epoch")));
  EXPECT_THAT(reporter.Report(20, 10, 0), Not(HasSubstr("eta")));
  const std::vector<std::string> lines = MetricsLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Field(lines[0], "epoch_fraction"), -1);
  EXPECT_EQ(Field(lines[0], "eta_sec"), -1);
  EXPECT_EQ(Field(lines[1], "eta_sec"), -1);
}

TEST_F(ProgressReporterTest, EpochsCountTheirSecondsAndRestartTheEta) {
  ProgressReporter reporter(Options(), /*metrics=*/nullptr);
  reporter.StartEpoch(0);
  reporter.CountStep(1000, 0);
  now_ = 130;
  reporter.EndEpoch(1000, 0);
  EXPECT_EQ(reporter.seconds(), 30);
  now_ = 200;
  reporter.StartEpoch(1);
  reporter.CountStep(100, 0);
  now_ = 210;
  // The last epoch, half done in 10 s. The window runs from the first
  // epoch's start: 1100 examples in 110 s.
  EXPECT_THAT(reporter.Report(20, 1100, 0.5),
              EndsWith("ex/s 10 pull_ms/step 0 push_wait_ms/step 0 "
                       "epoch 2/2 50% eta 10s"));
  now_ = 220;
  reporter.EndEpoch(1100, 0);
  EXPECT_EQ(reporter.seconds(), 50);
}

TEST(ProgressEtaTest, EtaAndDurations) {
  EXPECT_EQ(EtaSeconds(0.25, 10, 0), 30.0);
  EXPECT_EQ(EtaSeconds(0.25, 10, 2), 110.0);  // and two more 40 s epochs
  EXPECT_EQ(EtaSeconds(1.0, 10, 0), 0.0);
  EXPECT_FALSE(EtaSeconds(0, 10, 1).has_value());
  EXPECT_FALSE(EtaSeconds(-1, 10, 1).has_value());
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(187), "3m07s");
  EXPECT_EQ(FormatDuration(7500), "2h05m");
}

}  // namespace
}  // namespace ps
