#include "tools/datagen/datagen.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tools/datagen/planted_model.h"
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
                "\"oracle_auc\": %.6f, \"oracle_logloss\": %.6f, "
                "\"train_distinct_keys\": %d}\n",
                dir_, dir_, r->train_positive_rate, r->eval_positive_rate,
                r->oracle_auc, r->oracle_logloss, r->train_distinct_keys));
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

// The exact number of distinct features of the 39 feature fields of a
// Criteo file (integers by log bucket): the keys a job's tables would see.
int64_t ExactDistinctFeatures(const std::string& path) {
  const std::string content = ReadFile(path);
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view line :
       absl::StrSplit(content, '\n', absl::SkipEmpty())) {
    int field = 0;
    for (absl::string_view f : absl::StrSplit(line, '\t')) {
      if (field >= 1 && field <= 13 && !f.empty()) {
        // Integers become their log bucket (worker/data/criteo_parser.h).
        int64_t v = 0;
        EXPECT_TRUE(absl::SimpleAtoi(f, &v)) << f;
        seen.insert(absl::StrCat(field, ":b", CriteoLogBucket(v)));
      } else if (field > 0) {
        seen.insert(absl::StrCat(field, ":", f));
      }
      ++field;
    }
  }
  return static_cast<int64_t>(seen.size());
}

TEST_F(DatagenTest, ReportsDistinctKeysWithinTwoPercent) {
  for (int vocab : {50, 5000}) {
    GeneratorConfig g = Small(absl::StrCat("v", vocab));
    g.set_vocab_size(vocab);
    g.set_train_rows(20000);
    absl::StatusOr<GeneratorReport> r = GenerateCriteoData(g);
    ASSERT_TRUE(r.ok()) << r.status();
    const int64_t exact = ExactDistinctFeatures(r->train_file);
    EXPECT_NEAR(static_cast<double>(r->train_distinct_keys),
                static_cast<double>(exact), 0.02 * exact)
        << "vocab " << vocab;
  }
}

// Above PlantedModel::kMaxTableVocab nothing is stored per value: the data
// is still deterministic, parses, looks like CTR data, and keeps bringing
// new values (most eval values of a long tail were never in train).
TEST_F(DatagenTest, HugeVocabularyIsHashedAndLongTailed) {
  GeneratorConfig g = Small("huge");
  g.set_vocab_size(1 << 28);
  g.set_train_rows(20000);
  g.set_eval_rows(20000);
  absl::StatusOr<GeneratorReport> a = GenerateCriteoData(g);
  ASSERT_TRUE(a.ok()) << a.status();
  g.set_output_dir(dir_ + "/huge2");
  absl::StatusOr<GeneratorReport> b = GenerateCriteoData(g);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(ReadFile(a->train_file), ReadFile(b->train_file));
  int64_t lines = 0, positives = 0;
  ParseAll(a->train_file, &lines, &positives);
  EXPECT_EQ(lines, 20000);
  EXPECT_GT(a->eval_positive_rate, 0.15);
  EXPECT_LT(a->eval_positive_rate, 0.35);
  EXPECT_GT(a->oracle_auc, 0.75);
  EXPECT_LT(a->oracle_auc, 0.85);
  // C1 (field 14): distinct values in train, and eval values never seen.
  auto column = [](const std::string& path, int field) {
    std::vector<std::string> out;
    const std::string content = ReadFile(path);
    for (absl::string_view line :
         absl::StrSplit(content, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, '\t');
      out.emplace_back(f[field]);
    }
    return out;
  };
  const std::vector<std::string> train = column(a->train_file, 14);
  const absl::flat_hash_set<std::string> seen(train.begin(), train.end());
  EXPECT_GT(seen.size(), 5000u);
  EXPECT_LT(seen.size(), 15000u);  // a head of popular values repeats
  int64_t unseen = 0;
  for (const std::string& v : column(a->eval_file, 14))
    unseen += !seen.contains(v);
  EXPECT_GT(unseen, 20000 / 5);
  EXPECT_NEAR(static_cast<double>(a->train_distinct_keys),
              static_cast<double>(ExactDistinctFeatures(a->train_file)),
              0.02 * ExactDistinctFeatures(a->train_file));
}

TEST(ZipfSamplerTest, MatchesTheZipfLaw) {
  constexpr int kN = 10;
  constexpr int kDraws = 400000;
  ZipfSampler zipf(kN, 1.1);
  std::mt19937_64 rng(3);
  std::vector<int64_t> count(kN + 1);
  for (int i = 0; i < kDraws; ++i) {
    const int64_t k = zipf.Sample(
        [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; });
    ASSERT_GE(k, 1);
    ASSERT_LE(k, kN);
    ++count[k];
  }
  double total = 0;
  for (int k = 1; k <= kN; ++k) total += std::pow(k, -1.1);
  for (int k = 1; k <= kN; ++k) {
    const double p = std::pow(k, -1.1) / total;
    const double sd = std::sqrt(kDraws * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(count[k]), kDraws * p, 5 * sd)
        << "rank " << k;
  }
  // A vocabulary of 2^30 needs no memory and still gives rank 1 most often.
  ZipfSampler huge(int64_t{1} << 30, 1.1);
  int64_t ones = 0, beyond = 0;
  for (int i = 0; i < 100000; ++i) {
    const int64_t k = huge.Sample(
        [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; });
    ones += k == 1;
    beyond += k > (int64_t{1} << 24);
  }
  EXPECT_GT(ones, 5000);    // P(1) = 1 / H(2^30, 1.1), about 0.1
  EXPECT_GT(beyond, 1000);  // a long tail past 2^24: about 0.07 of draws
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
          "generator: needs an output_dir and a vocab_size in [1, 1073741824], "
          "got '' and 50"));
}

}  // namespace
}  // namespace ps
