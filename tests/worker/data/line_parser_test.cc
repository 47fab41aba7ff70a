#include "worker/data/line_parser.h"

#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/input_shape.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/data_reader.h"

namespace ps {
namespace {

using testing_util::EmptyBatch;
using testing_util::StatusIs;

class LineParserTest : public testing_util::TempDirTest {};

// Every format: the parser's shape is InputShapeOf's, and a line parses.
TEST_F(LineParserTest, ShapeMatchesInputShapeOf) {
  struct Case {
    DataConfig data;
    std::string line;
  };
  std::vector<Case> cases(7);
  std::string criteo = "1";
  for (int i = 0; i < 13; ++i) absl::StrAppend(&criteo, "\t", i);
  for (int i = 0; i < 26; ++i) absl::StrAppend(&criteo, "\tab12");
  cases[0].data.set_format(DataConfig::CRITEO);
  cases[0].line = criteo;
  cases[1].data.set_format(DataConfig::CRITEO);
  cases[1].data.set_int_features(DataConfig::NORMALIZE);
  cases[1].line = criteo;
  cases[2].data.set_format(DataConfig::SLOT);
  cases[2].data.set_num_slots(5);
  cases[2].data.set_num_dense(2);
  cases[2].line = "0 4:1 d1:2";
  cases[3].data.set_format(DataConfig::MOVIELENS);
  cases[3].line = "1\t2\t3\t4";
  cases[4].data.set_format(DataConfig::MOVIELENS);
  cases[4].data.set_movielens_user_file(Write("u.user", "1|30|F|artist|1\n"));
  cases[4].line = "1\t2\t3\t4";
  cases[5] = cases[4];
  cases[5].data.set_movielens_item_file(
      Write("u.item", "2|T||||0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\n"));
  cases[6].data.set_format(DataConfig::AVAZU);
  cases[6].line =
      "7,1,14102100,1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,"
      "07d7df22,a99f214a,ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79";
  const std::vector<InputShape> want = {{39, 0}, {26, 13}, {5, 2}, {2, 0},
                                        {6, 0},  {8, 0},   {23, 0}};
  for (size_t c = 0; c < cases.size(); ++c) {
    absl::StatusOr<std::unique_ptr<LineParser>> parser =
        LineParser::Create(cases[c].data);
    ASSERT_TRUE(parser.ok()) << c << ": " << parser.status();
    const InputShape shape = InputShapeOf(cases[c].data);
    EXPECT_EQ(shape.num_slots, want[c].num_slots) << c;
    EXPECT_EQ(shape.num_dense, want[c].num_dense) << c;
    EXPECT_EQ((*parser)->num_slots(), shape.num_slots) << c;
    EXPECT_EQ((*parser)->num_dense(), shape.num_dense) << c;
    Batch b = EmptyBatch(shape.num_slots, shape.num_dense);
    absl::Status status = (*parser)->Append(cases[c].line, &b);
    EXPECT_TRUE(status.ok()) << c << ": " << status;
    EXPECT_EQ(b.offsets.size(), shape.num_slots + 1u) << c;
    EXPECT_EQ(b.dense.size(), static_cast<size_t>(shape.num_dense)) << c;
  }
}

TEST_F(LineParserTest, CriteoParserIsTheCriteoFunction) {
  DataConfig data;
  data.set_hash_seed(11);
  auto parser = LineParser::Create(data);
  ASSERT_TRUE(parser.ok());
  Batch b = EmptyBatch(39, 0);
  EXPECT_EQ((*parser)->Append("1\t2", &b).message(),
            "expected 40 TAB-separated fields, got 2");
}

TEST_F(LineParserTest, RefusedConfigs) {
  DataConfig data;
  data.set_format(DataConfig::FORMAT_UNSPECIFIED);
  EXPECT_EQ(LineParser::Create(data).status().message(),
            "no parser for data format FORMAT_UNSPECIFIED");
  data.set_format(DataConfig::SLOT);
  EXPECT_EQ(LineParser::Create(data).status().message(),
            "slot parser: num_slots must be >= 1 and num_dense >= 0, got 0 "
            "and 0");
  data.set_format(DataConfig::MOVIELENS);
  data.set_movielens_user_file("");
  EXPECT_EQ(LineParser::Create(data).status().message(),
            "movielens parser: movielens_user_file and movielens_item_file "
            "must not be set to an empty path");
  data.clear_movielens_user_file();
  data.set_movielens_item_file(Write("u.item", "1|x\n"));
  absl::Status status = LineParser::Create(data).status();
  EXPECT_THAT(
      status,
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat(dir_,
                            "/u.item:1: expected 24 '|'-separated fields "
                            "(id|title|release date|video release date|IMDb "
                            "URL|19 genre flags), got 2")));
}

// The reader is format-agnostic: MovieLens through DataReader, bad lines
// named with file and line, side-file errors from Open.
TEST_F(LineParserTest, MovieLensThroughTheReader) {
  ReaderOptions options;
  options.data.set_format(DataConfig::MOVIELENS);
  options.data.set_movielens_user_file(
      Write("u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n"));
  options.files = {
      Write("u.data", "1\t10\t5\t1\n2\t11\t1\t2\n3\t12\t4\t3\n2\t13\t4\t4\n")};
  options.max_bad_line_ratio = 0.5;
  auto reader = DataReader::Open(options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  Batch b;
  ASSERT_TRUE(*(*reader)->Next(&b));
  EXPECT_EQ(b.num_slots, 6);
  EXPECT_EQ(b.labels, (std::vector<float>{1, 0, 1}));
  EXPECT_EQ(b.keys[6 * 2 + 1], FeatureKey(0, 1, 13));
  EXPECT_FALSE(*(*reader)->Next(&b));
  EXPECT_EQ((*reader)->bad_lines(), 1);

  options.max_bad_line_ratio = 0;
  reader = DataReader::Open(options);
  ASSERT_TRUE(reader.ok());
  // The limit is checked at the end of the data, so the batch may come out
  // before the error does.
  absl::StatusOr<bool> more;
  do {
    more = (*reader)->Next(&b);
  } while (more.ok() && *more);
  EXPECT_EQ(more.status().message(),
            absl::StrCat("too many malformed lines: 1 of 4 (ratio 0.25) "
                         "exceed max_bad_line_ratio 0; first bad line: ",
                         dir_, "/u.data:3: user 3 is not in the user file '",
                         dir_, "/u.user'"));

  options.data.set_movielens_user_file(Write("bad.user", "1|24|M|x|1\nz\n"));
  reader = DataReader::Open(options);
  EXPECT_EQ(reader.status().message(),
            absl::StrCat(dir_,
                         "/bad.user:2: expected 5 '|'-separated fields "
                         "(id|age|gender|occupation|zip), got 1"));
}

}  // namespace
}  // namespace ps
