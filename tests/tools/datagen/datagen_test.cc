#include "tools/datagen/datagen.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "worker/data/criteo_parser.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::StatusIs;
using testing_util::TempDir;

class DatagenTest : public ::testing::Test {
 protected:
  GeneratorConfig Small(const std::string& subdir, uint64_t seed = 5) {
    GeneratorConfig g;
    g.set_output_dir(dir_ + "/" + subdir);
    g.set_seed(seed);
    g.set_train_rows(3000);
    g.set_eval_rows(4000);
    g.set_vocab_size(50);
    return g;
  }

  TempDir temp_dir_;
  const std::string dir_ = temp_dir_.path();
};

TEST_F(DatagenTest, SameSeedSameBytesOtherSeedOtherBytes) {
  absl::StatusOr<GeneratorReport> a = GenerateCriteoData(Small("a"));
  absl::StatusOr<GeneratorReport> b = GenerateCriteoData(Small("b"));
  absl::StatusOr<GeneratorReport> c = GenerateCriteoData(Small("c", 6));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(a->train_file, dir_ + "/a/train.tsv");
  EXPECT_EQ(a->eval_file, dir_ + "/a/eval.tsv");
  const std::string train = ReadFile(a->train_file);
  ASSERT_FALSE(train.empty());
  EXPECT_EQ(train, ReadFile(b->train_file));
  EXPECT_EQ(ReadFile(a->eval_file), ReadFile(b->eval_file));
  EXPECT_EQ(a->oracle_auc, b->oracle_auc);
  EXPECT_NE(train, ReadFile(c->train_file));
  EXPECT_NE(ReadFile(a->eval_file), ReadFile(c->eval_file));
}

TEST_F(DatagenTest, EvalFileDoesNotDependOnTrainRows) {
  GeneratorConfig more = Small("more");
  more.set_train_rows(100);
  ASSERT_TRUE(GenerateCriteoData(Small("a")).ok());
  ASSERT_TRUE(GenerateCriteoData(more).ok());
  EXPECT_EQ(ReadFile(dir_ + "/a/eval.tsv"), ReadFile(dir_ + "/more/eval.tsv"));
}

// Parses every line of `path`; returns the number of lines and positives.
void ParseAll(const std::string& path, int64_t* lines, int64_t* positives) {
  const std::string content = ReadFile(path);
  ASSERT_FALSE(content.empty());
  ASSERT_EQ(content.back(), '\n');
  CriteoOptions options;
  Batch batch;
  batch.num_slots = CriteoNumSlots(options);
  for (absl::string_view line : absl::StrSplit(
           absl::string_view(content).substr(0, content.size() - 1), '\n')) {
    absl::Status status = AppendCriteoExample(line, options, &batch);
    ASSERT_TRUE(status.ok()) << status << " in: " << line;
  }
  *lines = batch.size();
  *positives = 0;
  for (float label : batch.labels) *positives += label == 1.0f;
}

TEST_F(DatagenTest, RowsParseAndMatchTheReport) {
  absl::StatusOr<GeneratorReport> r = GenerateCriteoData(Small("a"));
  ASSERT_TRUE(r.ok()) << r.status();
  int64_t lines = 0, positives = 0;
  ParseAll(r->train_file, &lines, &positives);
  EXPECT_EQ(lines, 3000);
  EXPECT_EQ(r->train_rows, 3000);
  EXPECT_DOUBLE_EQ(r->train_positive_rate, positives / 3000.0);
  ParseAll(r->eval_file, &lines, &positives);
  EXPECT_EQ(lines, 4000);
  EXPECT_EQ(r->eval_rows, 4000);
  EXPECT_DOUBLE_EQ(r->eval_positive_rate, positives / 4000.0);

  // The oracle beats a constant predictor clearly.
  const double p = r->eval_positive_rate;
  ASSERT_GT(p, 0.0);
  ASSERT_LT(p, 1.0);
  const double entropy = -p * std::log(p) - (1 - p) * std::log(1 - p);
  EXPECT_GT(r->oracle_auc, 0.6);
  EXPECT_LT(r->oracle_auc, 1.0);
  EXPECT_LT(r->oracle_logloss, entropy - 0.02);
}

TEST_F(DatagenTest, OracleFileHoldsTheReport) {
  absl::StatusOr<GeneratorReport> r = GenerateCriteoData(Small("a"));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string json = ReadFile(dir_ + "/a/oracle.json");
  EXPECT_EQ(json,
            absl::StrFormat(
                "{\"train_file\": \"%s/a/train.tsv\", \"eval_file\": "
                "\"%s/a/eval.tsv\", \"train_rows\": 3000, \"eval_rows\": 4000, "
                "\"train_positive_rate\": %.6f, \"eval_positive_rate\": %.6f, "
                "\"oracle_auc\": %.6f, \"oracle_logloss\": %.6f}\n",
                dir_, dir_, r->train_positive_rate, r->eval_positive_rate,
                r->oracle_auc, r->oracle_logloss));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/a/train.tsv.tmp"));
}

// The defaults of GeneratorConfig are tuned to look like CTR data: a click
// rate of 15-35% and an oracle AUC of 0.75-0.85 (checked on 20000 eval rows).
TEST_F(DatagenTest, DefaultsGiveAPlausibleClickRateAndOracle) {
  GeneratorConfig g;
  g.set_output_dir(dir_ + "/defaults");
  g.set_train_rows(1000);
  g.set_eval_rows(20000);
  absl::StatusOr<GeneratorReport> r = GenerateCriteoData(g);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->eval_positive_rate, 0.15);
  EXPECT_LT(r->eval_positive_rate, 0.35);
  EXPECT_GT(r->oracle_auc, 0.75);
  EXPECT_LT(r->oracle_auc, 0.85);

  // Missing values and negative integers appear as in the real data: C22
  // is mostly empty, C1 never; I2 is sometimes negative.
  int64_t c22_empty = 0, c1_empty = 0, i2_negative = 0;
  const std::string content = ReadFile(r->eval_file);
  for (absl::string_view line :
       absl::StrSplit(content, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
    ASSERT_EQ(f.size(), 40u);
    c22_empty += f[14 + 21].empty();
    c1_empty += f[14].empty();
    i2_negative += !f[2].empty() && f[2][0] == '-';
  }
  EXPECT_GT(c22_empty, 20000 * 0.6);
  EXPECT_LT(c22_empty, 20000 * 0.9);
  EXPECT_EQ(c1_empty, 0);
  EXPECT_GT(i2_negative, 0);
}

TEST_F(DatagenTest, UnwritableOutputDirectory) {
  temp_dir_.Write("file", "x");
  GeneratorConfig g = Small("file/sub");
  absl::StatusOr<GeneratorReport> r = GenerateCriteoData(g);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable,
                          HasSubstr("cannot create output directory '" + dir_ +
                                    "/file/sub': ")));
}

TEST_F(DatagenTest, RejectsEmptyOutputDir) {
  GeneratorConfig g = Small("a");
  g.clear_output_dir();
  absl::StatusOr<GeneratorReport> r = GenerateCriteoData(g);
  EXPECT_THAT(
      r,
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          "generator: needs an output_dir and a vocab_size in [1, 16777216], "
          "got '' and 50"));
}

}  // namespace
}  // namespace ps
