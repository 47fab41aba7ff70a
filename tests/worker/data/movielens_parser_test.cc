#include "worker/data/movielens_parser.h"

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/parser_util.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing_util::EmptyBatch;
using testing_util::SlotKeys;
using testing_util::StatusIs;

constexpr char kUsers[] =
    "1|24|M|technician|85711\n"
    "2|53|F|other|94043\n"
    "3|17|M|student|T8H1N\n";
// Title in ISO-8859-1 ("\xe9" is e-acute); item 267 has no release date.
constexpr char kItems[] =
    "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|"
    "0|0|0\n"
    "267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "5|Caf\xe9 (1989)|01-Jan-1989||http://y|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|"
    "0|0\n";

class MovieLensParserTest : public testing_util::TempDirTest {
 protected:
  absl::StatusOr<std::unique_ptr<MovieLensParser>> Create(bool users,
                                                          bool items,
                                                          uint64_t seed = 0) {
    MovieLensOptions options;
    options.hash_seed = seed;
    if (users) options.user_file = Write("u.user", kUsers);
    if (items) options.item_file = Write("u.item", kItems);
    return MovieLensParser::Create(options);
  }
};

TEST_F(MovieLensParserTest, Buckets) {
  EXPECT_EQ(MovieLensParser::AgeGroup(7), 1);
  EXPECT_EQ(MovieLensParser::AgeGroup(17), 1);
  EXPECT_EQ(MovieLensParser::AgeGroup(18), 18);
  EXPECT_EQ(MovieLensParser::AgeGroup(24), 18);
  EXPECT_EQ(MovieLensParser::AgeGroup(34), 25);
  EXPECT_EQ(MovieLensParser::AgeGroup(49), 45);
  EXPECT_EQ(MovieLensParser::AgeGroup(55), 50);
  EXPECT_EQ(MovieLensParser::AgeGroup(73), 56);
  EXPECT_EQ(MovieLensParser::YearBucket(1995), 1995);
  EXPECT_EQ(MovieLensParser::YearBucket(1999), 1995);
  EXPECT_EQ(MovieLensParser::YearBucket(1922), 1920);
}

TEST_F(MovieLensParserTest, IdsOnly) {
  auto parser = Create(false, false, /*seed=*/3);
  ASSERT_TRUE(parser.ok()) << parser.status();
  EXPECT_EQ((*parser)->num_slots(), 2);
  EXPECT_EQ((*parser)->num_dense(), 0);
  Batch b = EmptyBatch(2, 0);
  ASSERT_TRUE((*parser)->Append("196\t242\t3\t881250949", &b).ok());
  ASSERT_TRUE((*parser)->Append("186\t302\t4\t891717742\r", &b).ok());
  ASSERT_TRUE((*parser)->Append("22\t377\t5\t878887116", &b).ok());
  EXPECT_EQ(b.labels, (std::vector<float>{0, 1, 1}));
  EXPECT_THAT(b.keys, ElementsAre(FeatureKey(3, 0, 196), FeatureKey(3, 1, 242),
                                  FeatureKey(3, 0, 186), FeatureKey(3, 1, 302),
                                  FeatureKey(3, 0, 22), FeatureKey(3, 1, 377)));
  EXPECT_EQ(b.offsets, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST_F(MovieLensParserTest, SideFeatures) {
  auto parser = Create(true, true);
  ASSERT_TRUE(parser.ok()) << parser.status();
  ASSERT_EQ((*parser)->num_slots(), 8);
  Batch b = EmptyBatch(8, 0);
  ASSERT_TRUE((*parser)->Append("1\t1\t5\t874965758", &b).ok());
  ASSERT_TRUE((*parser)->Append("3\t267\t1\t874965758", &b).ok());
  ASSERT_TRUE((*parser)->Append("2\t5\t4\t874965758", &b).ok());
  EXPECT_EQ(b.labels, (std::vector<float>{1, 0, 1}));
  // User 1: age 24, M, technician, zip 857..; item 1: genres 3, 4, 5, 1995.
  EXPECT_THAT(SlotKeys(b, 0, 2), ElementsAre(FeatureKey(0, 2, 18)));
  EXPECT_THAT(SlotKeys(b, 0, 3), ElementsAre(FeatureKey(0, 3, 0)));
  EXPECT_THAT(SlotKeys(b, 0, 4),
              ElementsAre(FeatureKey(0, 4, StringFeatureValue("technician"))));
  EXPECT_THAT(SlotKeys(b, 0, 5),
              ElementsAre(FeatureKey(0, 5, StringFeatureValue("857"))));
  EXPECT_THAT(SlotKeys(b, 0, 6),
              ElementsAre(FeatureKey(0, 6, 3), FeatureKey(0, 6, 4),
                          FeatureKey(0, 6, 5)));
  EXPECT_THAT(SlotKeys(b, 0, 7), ElementsAre(FeatureKey(0, 7, 1995)));
  // User 3: under 18, Canadian zip; item 267: genre 0 only, no date.
  EXPECT_THAT(SlotKeys(b, 1, 2), ElementsAre(FeatureKey(0, 2, 1)));
  EXPECT_THAT(SlotKeys(b, 1, 5),
              ElementsAre(FeatureKey(0, 5, StringFeatureValue("T8H"))));
  EXPECT_THAT(SlotKeys(b, 1, 6), ElementsAre(FeatureKey(0, 6, 0)));
  EXPECT_THAT(SlotKeys(b, 1, 7), ElementsAre(FeatureKey(0, 7, 0)));
  // User 2: F; item 5: no genre at all, 1989 -> 1985.
  EXPECT_THAT(SlotKeys(b, 2, 3), ElementsAre(FeatureKey(0, 3, 1)));
  EXPECT_THAT(SlotKeys(b, 2, 6), IsEmpty());
  EXPECT_THAT(SlotKeys(b, 2, 7), ElementsAre(FeatureKey(0, 7, 1985)));
}

TEST_F(MovieLensParserTest, ItemFileAloneTakesSlotsTwoAndThree) {
  auto parser = Create(false, true);
  ASSERT_TRUE(parser.ok()) << parser.status();
  ASSERT_EQ((*parser)->num_slots(), 4);
  Batch b = EmptyBatch(4, 0);
  ASSERT_TRUE((*parser)->Append("9\t1\t2\t0", &b).ok());
  EXPECT_THAT(SlotKeys(b, 0, 2),
              ElementsAre(FeatureKey(0, 2, 3), FeatureKey(0, 2, 4),
                          FeatureKey(0, 2, 5)));
  EXPECT_THAT(SlotKeys(b, 0, 3), ElementsAre(FeatureKey(0, 3, 1995)));
}

TEST_F(MovieLensParserTest, MalformedRatingLines) {
  auto parser = Create(true, true);
  ASSERT_TRUE(parser.ok()) << parser.status();
  const std::string users = dir_ + "/u.user";
  const std::string items = dir_ + "/u.item";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1 1 5 874965758",
       "expected 4 TAB-separated fields (user_id, item_id, rating, "
       "timestamp), got 1"},
      {"1\t1\t5\t8\t9",
       "expected 4 TAB-separated fields (user_id, item_id, rating, "
       "timestamp), got 5"},
      {"x\t1\t5\t8", "field 1 (user_id): 'x' is not a decimal integer"},
      {"1\t-1\t5\t8", "field 2 (item_id): '-1' is not a decimal integer"},
      {"1\t1\t6\t8", "field 3 (rating): '6' is not an integer in [1, 5]"},
      {"1\t1\t4.5\t8", "field 3 (rating): '4.5' is not an integer in [1, 5]"},
      {"1\t1\t4\t", "field 4 (timestamp): '' is not an integer"},
      {"4\t1\t4\t8",
       absl::StrCat("user 4 is not in the user file '", users, "'")},
      {"1\t2\t4\t8",
       absl::StrCat("item 2 is not in the item file '", items, "'")},
  };
  for (const auto& [line, message] : cases) {
    Batch b = EmptyBatch(8, 0);
    absl::Status status = (*parser)->Append(line, &b);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, message))
        << line;
    EXPECT_EQ(b.size(), 0);
    EXPECT_TRUE(b.keys.empty() && b.offsets.size() == 1u);
  }
}

// Each case: the side file's content and the message after "path:".
struct SideCase {
  bool user;
  std::string content;
  std::string message;
};

TEST_F(MovieLensParserTest, BadSideFileLinesNameFileAndLine) {
  const std::string good_item =
      "1|T|01-Jan-1995||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
  const std::vector<SideCase> cases = {
      {true, "1|24|M|technician|85711\n2|53|F|other\n",
       "2: expected 5 '|'-separated fields (id|age|gender|occupation|zip), "
       "got 4"},
      {true, "1|24|M|technician|85711\n\n",
       "2: expected 5 '|'-separated fields (id|age|gender|occupation|zip), "
       "got 1"},
      {true, "u1|24|M|x|1\n",
       "1: field 1 (user id): 'u1' is not a decimal integer"},
      {true, "1|old|M|x|1\n",
       "1: field 2 (age): 'old' is not an integer in [0, 150]"},
      {true, "1|200|M|x|1\n",
       "1: field 2 (age): '200' is not an integer in [0, 150]"},
      {true, "1|20|m|x|1\n", "1: field 3 (gender): 'm' is not M or F"},
      {true, "1|20|M||1\n", "1: field 4 (occupation): '' is empty"},
      {true, "1|20|M|x|\n", "1: field 5 (zip code): '' is empty"},
      {true, "1|20|M|x|1\n2|20|M|x|1\n1|21|F|y|2\n",
       "3: user 1 is listed again (first on line 1)"},
      {false, good_item + "2|T|1995||u|0|0|0\n",
       "2: expected 24 '|'-separated fields (id|title|release date|video "
       "release date|IMDb URL|19 genre flags), got 8"},
      {false, "1|T|01-Jan-95||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
       "1: field 3 (release date): '01-Jan-95' does not end in a 4-digit "
       "year"},
      {false, "1|T|1995||u|0|0|0|0|0|0|0|0|2|0|0|0|0|0|0|0|0|0|0\n",
       "1: field 14 (genre 8): '2' is not 0 or 1"},
      {false, good_item + good_item,
       "2: item 1 is listed again (first on line 1)"},
  };
  for (const SideCase& c : cases) {
    MovieLensOptions options;
    const std::string path = Write(c.user ? "u.user" : "u.item", c.content);
    (c.user ? options.user_file : options.item_file) = path;
    auto parser = MovieLensParser::Create(options);
    EXPECT_THAT(parser, StatusIs(absl::StatusCode::kInvalidArgument,
                                 absl::StrCat(path, ":", c.message)))
        << c.content;
  }
}

TEST_F(MovieLensParserTest, MissingOrEmptySideFile) {
  MovieLensOptions options;
  options.user_file = dir_ + "/absent.user";
  auto parser = MovieLensParser::Create(options);
  EXPECT_THAT(
      parser,
      StatusIs(absl::StatusCode::kNotFound,
               absl::StrCat("cannot open input file '", dir_,
                            "/absent.user': No such file or directory")));
  options.user_file = Write("empty.user", "");
  parser = MovieLensParser::Create(options);
  EXPECT_THAT(parser, StatusIs(absl::StatusCode::kInvalidArgument,
                               absl::StrCat("movielens user file '", dir_,
                                            "/empty.user' has no lines")));
}

// The real ml-100k files, when the shared data folder is there.
TEST_F(MovieLensParserTest, RealMovieLens100k) {
  const char* src = std::getenv("PS_SOURCE_DIR");
  const std::string root = std::string(src != nullptr ? src : ".") +
                           "/../shared/data/movielens/ml-100k";
  struct stat st;
  if (stat((root + "/u1.base").c_str(), &st) != 0) {
    GTEST_SKIP() << "no " << root;
  }
  MovieLensOptions options;
  options.user_file = root + "/u.user";
  options.item_file = root + "/u.item";
  auto parser = MovieLensParser::Create(options);
  ASSERT_TRUE(parser.ok()) << parser.status();
  std::ifstream in(root + "/u1.base");
  std::string line;
  Batch b = EmptyBatch(8, 0);
  // The first lines: "1\t1\t5\t874965758", "1\t2\t3\t876893171", ...
  for (int i = 0; i < 3 && std::getline(in, line); ++i) {
    ASSERT_TRUE((*parser)->Append(line, &b).ok()) << line;
  }
  EXPECT_EQ(b.labels, (std::vector<float>{1, 0, 1}));
  // User 1 is "1|24|M|technician|85711"; item 1 is Toy Story (1995),
  // genres Animation, Children's, Comedy (3, 4, 5); item 2 GoldenEye (1995),
  // Action, Adventure, Thriller (1, 2, 16).
  EXPECT_THAT(SlotKeys(b, 0, 0), ElementsAre(FeatureKey(0, 0, 1)));
  EXPECT_THAT(SlotKeys(b, 0, 2), ElementsAre(FeatureKey(0, 2, 18)));
  EXPECT_THAT(SlotKeys(b, 0, 4),
              ElementsAre(FeatureKey(0, 4, StringFeatureValue("technician"))));
  EXPECT_THAT(SlotKeys(b, 0, 6),
              ElementsAre(FeatureKey(0, 6, 3), FeatureKey(0, 6, 4),
                          FeatureKey(0, 6, 5)));
  EXPECT_THAT(SlotKeys(b, 1, 1), ElementsAre(FeatureKey(0, 1, 2)));
  EXPECT_THAT(SlotKeys(b, 1, 6),
              ElementsAre(FeatureKey(0, 6, 1), FeatureKey(0, 6, 2),
                          FeatureKey(0, 6, 16)));
  EXPECT_THAT(SlotKeys(b, 1, 7), ElementsAre(FeatureKey(0, 7, 1995)));
  // Every rating of the split parses: all users and items are known.
  int lines = 3;
  while (std::getline(in, line)) {
    b.Clear();
    absl::Status status = (*parser)->Append(line, &b);
    ASSERT_TRUE(status.ok()) << "line " << lines + 1 << ": " << status;
    ++lines;
  }
  EXPECT_EQ(lines, 80000);
}

}  // namespace
}  // namespace ps
