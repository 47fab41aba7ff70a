#include "worker/data/slot_parser.h"

#include <string>
#include <vector>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing_util::EmptyBatch;
using testing_util::SlotKeys;
using testing_util::StatusIs;

SlotParser Parser(int num_slots, int num_dense, uint64_t seed = 0) {
  SlotOptions options;
  options.num_slots = num_slots;
  options.num_dense = num_dense;
  options.hash_seed = seed;
  return SlotParser(options);
}

TEST(SlotParserTest, KeysGroupedBySlotInTokenOrder) {
  const SlotParser parser = Parser(4, 2, /*seed=*/7);
  Batch b = EmptyBatch(4, 2);
  ASSERT_TRUE(
      parser.Append("1 2:5 0:17\t2:9  d1:-0.25 2:5 0:18446744073709551615", &b)
          .ok());
  ASSERT_TRUE(parser.Append("0", &b).ok());
  ASSERT_EQ(b.size(), 2);
  EXPECT_EQ(b.labels, (std::vector<float>{1, 0}));
  EXPECT_THAT(SlotKeys(b, 0, 0), ElementsAre(FeatureKey(7, 0, 17),
                                             FeatureKey(7, 0, ~uint64_t{0})));
  EXPECT_THAT(SlotKeys(b, 0, 1), IsEmpty());
  EXPECT_THAT(SlotKeys(b, 0, 2),
              ElementsAre(FeatureKey(7, 2, 5), FeatureKey(7, 2, 9),
                          FeatureKey(7, 2, 5)));
  EXPECT_THAT(SlotKeys(b, 0, 3), IsEmpty());
  for (int s = 0; s < 4; ++s) EXPECT_THAT(SlotKeys(b, 1, s), IsEmpty());
  EXPECT_EQ(b.dense, (std::vector<float>{0, -0.25f, 0, 0}));
  EXPECT_EQ(b.offsets.size(), 9u);
}

TEST(SlotParserTest, SameKeyInTwoSlotsGivesTwoKeys) {
  const SlotParser parser = Parser(2, 0);
  Batch b = EmptyBatch(2, 0);
  ASSERT_TRUE(parser.Append("0 0:3 1:3\r", &b).ok());
  EXPECT_THAT(b.keys, ElementsAre(FeatureKey(0, 0, 3), FeatureKey(0, 1, 3)));
  EXPECT_NE(b.keys[0], b.keys[1]);
}

TEST(SlotParserTest, MalformedLinesNameTheTokenAndLeaveTheBatch) {
  const SlotParser parser = Parser(3, 2);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty line"},
      {"  \t ", "empty line"},
      {"2 0:1", "label '2' is not 0 or 1"},
      {"1 0:1 oops", "token 3 'oops': is not slot:key or d<index>:value"},
      {"1 3:1", "token 2 '3:1': slot 3 is not in [0, num_slots = 3)"},
      {"1 -1:1", "token 2 '-1:1': slot '-1' is not a decimal integer"},
      {"1 :1", "token 2 ':1': slot '' is not a decimal integer"},
      {"1 1:", "token 2 '1:': key '' is not a decimal integer in [0, 2^64)"},
      {"1 1:-5",
       "token 2 '1:-5': key '-5' is not a decimal integer in [0, 2^64)"},
      {"1 1:18446744073709551616",
       "token 2 '1:18446744073709551616': key '18446744073709551616' is not a "
       "decimal integer in [0, 2^64)"},
      {"1 d2:1", "token 2 'd2:1': dense index 2 is not in [0, num_dense = 2)"},
      {"1 dx:1", "token 2 'dx:1': dense index 'x' is not a decimal integer"},
      {"1 d0:nan", "token 2 'd0:nan': value 'nan' is not a finite number"},
      {"1 d0:1e99", "token 2 'd0:1e99': value '1e99' is not a finite number"},
      {"1 d0:1 0:4 d0:2",
       "token 4 'd0:2': dense index 0 was given before, in token 2"},
  };
  for (const auto& [line, message] : cases) {
    Batch b = EmptyBatch(3, 2);
    absl::Status status = parser.Append(line, &b);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, message))
        << line;
    EXPECT_EQ(b.size(), 0);
    EXPECT_TRUE(b.keys.empty() && b.dense.empty() && b.offsets.size() == 1u);
  }
}

TEST(SlotParserTest, MoreFeaturesThanTheLimitIsMalformed) {
  SlotOptions options;
  options.num_slots = 2;
  options.num_dense = 1;
  options.max_features_per_line = 3;
  const SlotParser parser(options);
  EXPECT_EQ(parser.max_keys_per_example(), 3);
  Batch b = EmptyBatch(2, 1);
  ASSERT_TRUE(parser.Append("1 0:1 1:2 d0:0.5", &b).ok());
  ASSERT_TRUE(parser.Append("0 0:1 0:2 1:3", &b).ok());
  EXPECT_THAT(parser.Append("1 0:1 0:2 1:3 d0:1", &b),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "more than data.max_features_per_line = 3 features "
                       "(token 5 'd0:1')"));
  EXPECT_THAT(parser.Append("1 0:1 0:2 0:3 0:4", &b),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "more than data.max_features_per_line = 3 features "
                       "(token 5 '0:4')"));
  EXPECT_EQ(b.size(), 2);
  EXPECT_EQ(b.keys.size(), 5u);

  // The default: 4096 features pass, 4097 do not.
  const SlotParser defaults = Parser(1, 0);
  std::string line = "1";
  for (int i = 0; i < 4096; ++i) line += " 0:" + std::to_string(i);
  Batch c = EmptyBatch(1, 0);
  EXPECT_TRUE(defaults.Append(line, &c).ok());
  EXPECT_THAT(defaults.Append(line + " 0:1", &c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "more than data.max_features_per_line = 4096 features "
                       "(token 4098 '0:1')"));
  EXPECT_EQ(c.keys.size(), 4096u);
}

TEST(SlotParserTest, NoDenseTokensWithoutDenseFeatures) {
  const SlotParser parser = Parser(1, 0);
  Batch b = EmptyBatch(1, 0);
  EXPECT_EQ(parser.Append("1 d0:1", &b).message(),
            "token 2 'd0:1': dense index 0 is not in [0, num_dense = 0)");
}

}  // namespace
}  // namespace ps
