#include "worker/data/criteo_parser.h"

#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using testing_util::StatusIs;

// The key encoding is part of the checkpoint format: these pin it.
constexpr uint64_t kMissingCategorical = ~uint64_t{0};
constexpr uint64_t kMissingInteger = uint64_t{1} << 62;

std::vector<std::string> Ints() {
  return {"1", "-1", "", "3", "100", "0", "2", "", "2000000", "", "", "", "7"};
}
std::vector<std::string> Cats() {
  std::vector<std::string> cats(26, "68fd1e64");
  cats[1] = "";
  cats[5] = "0";
  cats[7] = "0123456789abcdef";
  cats[25] = "";
  return cats;
}

std::string Line(const std::string& label, const std::vector<std::string>& ints,
                 const std::vector<std::string>& cats) {
  return absl::StrCat(label, "\t", absl::StrJoin(ints, "\t"), "\t",
                      absl::StrJoin(cats, "\t"));
}

Batch EmptyBatch(const CriteoOptions& options) {
  Batch batch;
  batch.num_slots = CriteoNumSlots(options);
  batch.num_dense = CriteoNumDense(options);
  return batch;
}

TEST(CriteoParserTest, SlotAndDenseCounts) {
  CriteoOptions log_bucket;
  CriteoOptions normalize;
  normalize.int_features = DataConfig::NORMALIZE;
  EXPECT_EQ(CriteoNumSlots(log_bucket), 39);
  EXPECT_EQ(CriteoNumDense(log_bucket), 0);
  EXPECT_EQ(CriteoNumSlots(normalize), 26);
  EXPECT_EQ(CriteoNumDense(normalize), 13);
}

TEST(CriteoParserTest, LogBucket) {
  EXPECT_EQ(CriteoLogBucket(-5), -5);
  EXPECT_EQ(CriteoLogBucket(0), 0);
  EXPECT_EQ(CriteoLogBucket(2), 2);
  EXPECT_EQ(CriteoLogBucket(3), 1);     // ln(3)^2 = 1.21
  EXPECT_EQ(CriteoLogBucket(100), 21);  // ln(100)^2 = 21.2
  EXPECT_EQ(CriteoLogBucket(2000000), 210);
}

TEST(CriteoParserTest, LogBucketKeysOfEveryField) {
  CriteoOptions options;
  options.hash_seed = 7;
  Batch batch = EmptyBatch(options);
  ASSERT_TRUE(
      AppendCriteoExample(Line("1", Ints(), Cats()), options, &batch).ok());

  ASSERT_EQ(batch.size(), 1);
  EXPECT_EQ(batch.labels[0], 1.0f);
  EXPECT_TRUE(batch.dense.empty());
  std::vector<uint32_t> offsets;
  for (uint32_t i = 0; i <= 39; ++i) offsets.push_back(i);
  EXPECT_EQ(batch.offsets, offsets);

  const int64_t buckets[13] = {1, -1, 0, 1, 21, 0, 2, 0, 210, 0, 0, 0, 3};
  const bool missing[13] = {false, false, true, false, false, false, false,
                            true,  false, true, true,  true,  false};
  std::vector<uint64_t> expected;
  for (int i = 0; i < 13; ++i) {
    expected.push_back(FeatureKey(
        7, i,
        missing[i] ? kMissingInteger : static_cast<uint64_t>(buckets[i])));
  }
  for (int c = 0; c < 26; ++c) {
    uint64_t value = 0x68fd1e64;
    if (c == 1 || c == 25) value = kMissingCategorical;
    if (c == 5) value = 0;
    if (c == 7) value = 0x0123456789abcdefULL;
    expected.push_back(FeatureKey(7, 13 + c, value));
  }
  EXPECT_EQ(batch.keys, expected);
}

TEST(CriteoParserTest, BucketKeysEqualTheFunctionOnBothSidesOfItsTable) {
  // The parser looks small values up in a table and computes large ones:
  // both must give CriteoLogBucket's bucket.
  const int64_t values[] = {0,     1,     3,     7,     100,     4095,
                            65534, 65535, 65536, 65537, 1 << 20, 1LL << 40};
  CriteoOptions options;
  for (int64_t v : values) {
    std::vector<std::string> ints = Ints();
    ints[4] = std::to_string(v);
    Batch batch = EmptyBatch(options);
    ASSERT_TRUE(
        AppendCriteoExample(Line("0", ints, Cats()), options, &batch).ok());
    EXPECT_EQ(batch.keys[4],
              FeatureKey(0, 4, static_cast<uint64_t>(CriteoLogBucket(v))))
        << "I5 = " << v;
  }
}

TEST(CriteoParserTest, SeedSlotAndCaseMatter) {
  CriteoOptions seed0, seed1;
  seed1.hash_seed = 1;
  Batch a = EmptyBatch(seed0), b = EmptyBatch(seed1), upper = EmptyBatch(seed0);
  std::vector<std::string> cats = Cats();
  ASSERT_TRUE(AppendCriteoExample(Line("0", Ints(), cats), seed0, &a).ok());
  ASSERT_TRUE(AppendCriteoExample(Line("0", Ints(), cats), seed1, &b).ok());
  for (auto& c : cats) {
    for (auto& ch : c) ch = static_cast<char>(std::toupper(ch));
  }
  ASSERT_TRUE(AppendCriteoExample(Line("0", Ints(), cats), seed0, &upper).ok());
  EXPECT_EQ(a.labels[0], 0.0f);
  EXPECT_NE(a.keys[13], b.keys[13]);
  EXPECT_NE(a.keys[13], a.keys[14 + 1]);  // same value, C1 vs C3
  EXPECT_EQ(a.keys, upper.keys);          // hex is case-insensitive
}

TEST(CriteoParserTest, MissingIntegerDiffersFromEveryBucket) {
  CriteoOptions options;
  Batch batch = EmptyBatch(options);
  std::vector<std::string> ints(13, "");
  ASSERT_TRUE(
      AppendCriteoExample(Line("0", ints, Cats()), options, &batch).ok());
  for (int64_t bucket = -3; bucket <= 1905; ++bucket) {
    ASSERT_NE(batch.keys[0], FeatureKey(0, 0, static_cast<uint64_t>(bucket)));
  }
}

TEST(CriteoParserTest, NormalizeGivesDenseLogAndCategoricalSlots) {
  CriteoOptions options;
  options.int_features = DataConfig::NORMALIZE;
  Batch batch = EmptyBatch(options);
  ASSERT_TRUE(
      AppendCriteoExample(Line("1", Ints(), Cats()), options, &batch).ok());
  ASSERT_EQ(batch.dense.size(), 13u);
  const double values[13] = {1, 0, 0, 3, 100, 0, 2, 0, 2000000, 0, 0, 0, 7};
  for (int i = 0; i < 13; ++i) {
    EXPECT_FLOAT_EQ(batch.dense[i], static_cast<float>(std::log1p(values[i])))
        << "I" << i + 1;
  }
  ASSERT_EQ(batch.keys.size(), 26u);
  EXPECT_EQ(batch.offsets.size(), 27u);
  EXPECT_EQ(batch.keys[0], FeatureKey(0, 0, 0x68fd1e64));
  EXPECT_EQ(batch.keys[1], FeatureKey(0, 1, kMissingCategorical));
  EXPECT_EQ(batch.keys[7], FeatureKey(0, 7, 0x0123456789abcdefULL));
}

TEST(CriteoParserTest, AppendsAfterExistingExamplesAndIgnoresCarriageReturn) {
  CriteoOptions options;
  Batch batch = EmptyBatch(options);
  const std::string line = Line("1", Ints(), Cats());
  ASSERT_TRUE(AppendCriteoExample(line, options, &batch).ok());
  ASSERT_TRUE(AppendCriteoExample(line + "\r", options, &batch).ok());
  ASSERT_EQ(batch.size(), 2);
  EXPECT_EQ(batch.offsets.size(), 79u);
  EXPECT_EQ(batch.offsets.back(), 78u);
  for (int k = 0; k < 39; ++k) EXPECT_EQ(batch.keys[k], batch.keys[39 + k]);
}

// Parses a line expected to be malformed; checks the message and that the
// batch (holding one good example) is unchanged.
std::string ErrorOf(const std::string& line) {
  CriteoOptions options;
  Batch batch = EmptyBatch(options);
  EXPECT_TRUE(
      AppendCriteoExample(Line("1", Ints(), Cats()), options, &batch).ok());
  absl::Status status = AppendCriteoExample(line, options, &batch);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(batch.size(), 1);
  EXPECT_EQ(batch.keys.size(), 39u);
  EXPECT_EQ(batch.offsets.size(), 40u);
  return std::string(status.message());
}

TEST(CriteoParserTest, WrongFieldCount) {
  std::vector<std::string> cats = Cats();
  cats.pop_back();
  EXPECT_EQ(ErrorOf(Line("1", Ints(), cats)),
            "expected 40 TAB-separated fields, got 39");
  EXPECT_EQ(ErrorOf(Line("1", Ints(), Cats()) + "\t"),
            "expected 40 TAB-separated fields, got 41");
  EXPECT_EQ(ErrorOf(""), "expected 40 TAB-separated fields, got 1");
}

TEST(CriteoParserTest, BadLabel) {
  EXPECT_EQ(ErrorOf(Line("2", Ints(), Cats())),
            "field 1 (label): '2' is not 0 or 1");
  EXPECT_EQ(ErrorOf(Line("", Ints(), Cats())),
            "field 1 (label): '' is not 0 or 1");
  EXPECT_EQ(ErrorOf(Line("1.0", Ints(), Cats())),
            "field 1 (label): '1.0' is not 0 or 1");
}

TEST(CriteoParserTest, BadInteger) {
  std::vector<std::string> ints = Ints();
  ints[4] = "x1";
  EXPECT_EQ(ErrorOf(Line("1", ints, Cats())),
            "field 6 (I5): 'x1' is not an integer");
  ints = Ints();
  ints[0] = "1.5";
  EXPECT_EQ(ErrorOf(Line("1", ints, Cats())),
            "field 2 (I1): '1.5' is not an integer");
  ints[0] = " 3";
  EXPECT_EQ(ErrorOf(Line("1", ints, Cats())),
            "field 2 (I1): ' 3' is not an integer");
  ints = Ints();
  ints[12] = "99999999999999999999";
  EXPECT_EQ(ErrorOf(Line("1", ints, Cats())),
            "field 14 (I13): '99999999999999999999' is out of the 64-bit "
            "integer range");
}

TEST(CriteoParserTest, BadHex) {
  std::vector<std::string> cats = Cats();
  cats[0] = "xyz";
  EXPECT_EQ(ErrorOf(Line("1", Ints(), cats)),
            "field 15 (C1): 'xyz' is not a hex string");
  cats = Cats();
  cats[25] = "0123456789abcdef0";
  EXPECT_EQ(ErrorOf(Line("1", Ints(), cats)),
            "field 40 (C26): '0123456789abcdef0' has more than 16 hex digits");
  cats = Cats();
  cats[2] = "-1";
  EXPECT_EQ(ErrorOf(Line("1", Ints(), cats)),
            "field 17 (C3): '-1' is not a hex string");
}

TEST(CriteoParserTest, MessageEscapesAndCutsTheField) {
  std::vector<std::string> cats = Cats();
  cats[0] = "\x01z";
  EXPECT_EQ(ErrorOf(Line("1", Ints(), cats)),
            "field 15 (C1): '\\x01z' is not a hex string");
  std::vector<std::string> ints = Ints();
  ints[0] = std::string(50, 'q');
  EXPECT_EQ(
      ErrorOf(Line("1", ints, Cats())),
      "field 2 (I1): '" + std::string(40, 'q') + "...' is not an integer");
}

}  // namespace
}  // namespace ps
