// AVAZU lines (worker/data/avazu_parser.h): keys per slot, the hour's features,
// the header, malformed lines named by field; and a reader over a file with
// a header and a bad line, and over the real sample when it is present.
#include "worker/data/avazu_parser.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/data_reader.h"
#include "worker/data/parser_util.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::EmptyBatch;
using testing_util::StatusIs;

constexpr char kHeader[] =
    "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,"
    "app_domain,app_category,device_id,device_ip,device_model,device_type,"
    "device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21";
// The sample's first row (2014-10-21 was a Tuesday).
constexpr char kRow[] =
    "1000009418151094273,0,14102100,1005,0,1fbe01fe,f3845767,28905ebd,"
    "ecad2386,7801e8d9,07d7df22,a99f214a,ddd2926e,44956a24,1,2,15706,320,50,"
    "1722,0,35,-1,79";

// kRow with field `f` (0-based) replaced.
std::string WithField(int f, const std::string& value) {
  std::vector<std::string> fields = absl::StrSplit(kRow, ',');
  fields[f] = value;
  return absl::StrJoin(fields, ",");
}

TEST(AvazuParserTest, KeysAreTheHourFeaturesThenEachFieldsText) {
  AvazuParser parser(/*hash_seed=*/5);
  Batch b = EmptyBatch(23, 0);
  ASSERT_TRUE(parser.Append(std::string(kRow) + "\r", &b).ok());
  ASSERT_TRUE(parser.Append(WithField(1, "1"), &b).ok());
  ASSERT_EQ(b.size(), 2);
  EXPECT_EQ(b.labels, (std::vector<float>{0, 1}));
  ASSERT_EQ(b.offsets.size(), 2 * 23 + 1u);
  for (size_t p = 0; p < b.offsets.size(); ++p) EXPECT_EQ(b.offsets[p], p);
  EXPECT_EQ(b.keys[0], FeatureKey(5, 0, 0));  // hour 00
  EXPECT_EQ(b.keys[1], FeatureKey(5, 1, 2));  // Tuesday
  const std::vector<std::string> fields = absl::StrSplit(kRow, ',');
  for (int f = 3; f < 24; ++f) {
    EXPECT_EQ(b.keys[f - 1],
              FeatureKey(5, f - 1, StringFeatureValue(fields[f])))
        << "field " << f;
  }
  // '\r' is not part of the last field.
  EXPECT_EQ(b.keys[22], b.keys[23 + 22]);

  Batch c = EmptyBatch(23, 0);
  ASSERT_TRUE(parser.Append(WithField(2, "14102623"), &c).ok());  // Sunday
  ASSERT_TRUE(parser.Append(WithField(2, "16022917"), &c).ok());  // leap day
  ASSERT_TRUE(parser.Append(WithField(7, ""), &c).ok());          // missing
  EXPECT_EQ(c.keys[0], FeatureKey(5, 0, 23));
  EXPECT_EQ(c.keys[1], FeatureKey(5, 1, 0));
  EXPECT_EQ(c.keys[23], FeatureKey(5, 0, 17));
  EXPECT_EQ(c.keys[24], FeatureKey(5, 1, 1));  // 2016-02-29, a Monday
  EXPECT_EQ(c.keys[2 * 23 + 6], FeatureKey(5, 6, StringFeatureValue("")));
  // Another seed, other keys.
  Batch d = EmptyBatch(23, 0);
  ASSERT_TRUE(AvazuParser(6).Append(kRow, &d).ok());
  EXPECT_NE(d.keys[5], b.keys[5]);
}

TEST(AvazuParserTest, MalformedLinesNameTheFieldAndLeaveTheBatch) {
  AvazuParser parser(0);
  struct Case {
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "expected 24 comma-separated fields, got 1"},
      {std::string(kRow) + ",9", "expected 24 comma-separated fields, got 25"},
      {WithField(0, ""), "field 1 (id): '' is empty"},
      {WithField(1, "2"), "field 2 (click): '2' is not 0 or 1"},
      {WithField(1, ""), "field 2 (click): '' is not 0 or 1"},
      {WithField(2, "1410210"), "field 3 (hour): '1410210' is not YYMMDDHH"},
      {WithField(2, "14102x00"), "field 3 (hour): '14102x00' is not YYMMDDHH"},
      {WithField(2, "14132100"), "is not a valid date and hour"},
      {WithField(2, "15022900"), "is not a valid date and hour"},  // no leap
      {WithField(2, "14102124"), "is not a valid date and hour"},
      {WithField(2, "14100000"), "is not a valid date and hour"},
      {kHeader, "field 2 (click): 'click' is not 0 or 1"},
  };
  for (const Case& c : cases) {
    Batch b = EmptyBatch(23, 0);
    ASSERT_TRUE(parser.Append(kRow, &b).ok());
    const Batch before = b;
    absl::Status s = parser.Append(c.line, &b);
    EXPECT_THAT(
        s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.line;
    EXPECT_EQ(b.keys, before.keys);
    EXPECT_EQ(b.offsets, before.offsets);
    EXPECT_EQ(b.labels, before.labels);
  }
  EXPECT_TRUE(parser.IsHeader(kHeader));
  EXPECT_TRUE(parser.IsHeader(std::string(kHeader) + "\r"));
  EXPECT_TRUE(parser.IsHeader("\xEF\xBB\xBF" + std::string(kHeader)));
  EXPECT_FALSE(parser.IsHeader(kRow));
  EXPECT_FALSE(parser.IsHeader(WithField(1, "x")));
}

class AvazuReaderTest : public testing_util::TempDirTest {};

// A reader skips each header (also one in the middle, as in files joined
// together) without counting it, and counts a bad line.
TEST_F(AvazuReaderTest, HeadersAreSkippedBadLinesCounted) {
  std::string text =
      absl::StrCat(kHeader, "\n", kRow, "\n", WithField(1, "1"), "\n", kHeader,
                   "\r\n", WithField(1, "7"), "\n", kRow, "\n");
  ReaderOptions o;
  o.files = {Write("a.csv", text)};
  o.data.set_format(DataConfig::AVAZU);
  o.max_bad_line_ratio = 0.5;
  o.log_bad_lines = 0;
  for (int workers : {1, 2}) {
    int examples = 0, bad = 0, lines = 0;
    for (int rank = 0; rank < workers; ++rank) {
      o.num_workers = workers;
      o.worker_rank = rank;
      auto reader = testing_util::ReadEachBatch(
          o, [&](const Batch& b, const DataReader&) { examples += b.size(); });
      ASSERT_NE(reader, nullptr);
      bad += reader->bad_lines();
      lines += reader->lines_read();
    }
    EXPECT_EQ(examples, 3) << workers;
    EXPECT_EQ(bad, 1) << workers;
    EXPECT_EQ(lines, 4) << workers;
  }
}

// The real sample in ../shared/data (skipped when absent): every row
// parses, and the click rate is PROVENANCE.md's 0.1706.
TEST_F(AvazuReaderTest, TheRealSampleParsesWhole) {
  const char* src = std::getenv("PS_SOURCE_DIR");
  const std::string path = std::string(src != nullptr ? src : ".") +
                           "/../shared/data/avazu/avazu_train_sample10k.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  ReaderOptions o;
  o.files = {path};
  o.data.set_format(DataConfig::AVAZU);
  o.max_bad_line_ratio = 0;
  o.threads = 2;
  int examples = 0;
  double clicks = 0;
  auto reader =
      testing_util::ReadEachBatch(o, [&](const Batch& b, const DataReader&) {
        examples += b.size();
        for (float l : b.labels) clicks += l;
      });
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(examples, 9999);
  EXPECT_EQ(reader->bad_lines(), 0);
  EXPECT_NEAR(clicks / examples, 0.1706, 0.00005);
}

}  // namespace
}  // namespace ps
