#include "worker/data/parser_util.h"

#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(ParserUtilTest, QuoteField) {
  EXPECT_EQ(QuoteField("ab"), "'ab'");
  EXPECT_EQ(QuoteField("a\tb\x01"), "'a\\tb\\x01'");
  EXPECT_EQ(QuoteField(std::string(41, 'x')),
            "'" + std::string(40, 'x') + "...'");
}

TEST(ParserUtilTest, Numbers) {
  uint64_t u = 0;
  EXPECT_TRUE(ParseDecimalUint64("18446744073709551615", &u));
  EXPECT_EQ(u, ~uint64_t{0});
  EXPECT_FALSE(ParseDecimalUint64("18446744073709551616", &u));
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x1", "1.0"}) {
    EXPECT_FALSE(ParseDecimalUint64(bad, &u)) << bad;
  }
  int64_t i = 0;
  EXPECT_TRUE(ParseDecimalInt64("-42", &i));
  EXPECT_EQ(i, -42);
  for (const char* bad : {"", "+1", "--1", "1e3", "9223372036854775808"}) {
    EXPECT_FALSE(ParseDecimalInt64(bad, &i)) << bad;
  }
  float f = 0;
  EXPECT_TRUE(ParseFiniteFloat("-1.5e-1", &f));
  EXPECT_FLOAT_EQ(f, -0.15f);
  for (const char* bad : {"", "+1", "inf", "nan", "1e39", "1,5", "0x1p3"}) {
    EXPECT_FALSE(ParseFiniteFloat(bad, &f)) << bad;
  }
}

// Part of the key encoding: pinned (64-bit FNV-1a test vectors).
TEST(ParserUtilTest, StringFeatureValueIsFnv1a) {
  EXPECT_EQ(StringFeatureValue(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(StringFeatureValue("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(StringFeatureValue("foobar"), 0x85944171f73967e8ULL);
}

}  // namespace
}  // namespace ps
