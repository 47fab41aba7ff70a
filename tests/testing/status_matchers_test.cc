// The test-only Status matchers (tests/testing/status_matchers.h): what they
// accept, what they refuse, and that a refusal fails the test with the
// status it got in the message.
#include "tests/testing/status_matchers.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::IsOk;
using testing_util::StatusIs;

// What `matcher` says about `value` when it fails: its description and its
// explanation, as EXPECT_THAT would print them.
template <typename T, typename M>
std::string Explain(const M& matcher, const T& value) {
  const ::testing::Matcher<const T&> m = matcher;
  ::testing::StringMatchResultListener listener;
  EXPECT_FALSE(m.MatchAndExplain(value, &listener));
  return ::testing::DescribeMatcher<const T&>(m) + " / " + listener.str();
}

TEST(StatusMatchersTest, StatusIsMatchesTheCode) {
  const absl::Status s = absl::NotFoundError("no table 'emb'");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument)));
  EXPECT_THAT(absl::OkStatus(), StatusIs(absl::StatusCode::kOk));
  EXPECT_THAT(absl::OkStatus(), Not(StatusIs(absl::StatusCode::kNotFound)));
  EXPECT_THAT(s, StatusIs(AnyOf(absl::StatusCode::kUnavailable,
                                absl::StatusCode::kNotFound)));
}

TEST(StatusMatchersTest, StatusIsMatchesTheMessage) {
  const absl::Status s = absl::InvalidArgumentError("dim must be 1..4096");
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument, "dim must be 1..4096"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          std::string("dim must be 1..4096")));
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be")));
  // Equality is the whole message, not a part of it.
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument, "dim")));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument,
                              HasSubstr("must not"))));
  // Both must match: the right message under another code is refused.
  EXPECT_THAT(s,
              Not(StatusIs(absl::StatusCode::kNotFound, HasSubstr("must be"))));
}

TEST(StatusMatchersTest, WorksOnStatusOr) {
  absl::StatusOr<int> value = 7;
  absl::StatusOr<int> error = absl::UnavailableError("server 0 is gone");
  EXPECT_THAT(value, IsOk());
  EXPECT_THAT(value, StatusIs(absl::StatusCode::kOk));
  EXPECT_THAT(error, Not(IsOk()));
  EXPECT_THAT(error,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("server 0")));
  EXPECT_THAT(error, Not(StatusIs(absl::StatusCode::kUnavailable, "gone")));
  EXPECT_OK(value);
  ASSERT_OK(absl::OkStatus());
}

TEST(StatusMatchersTest, MismatchFailsAndPrintsTheStatus) {
  const absl::Status s = absl::InvalidArgumentError("bad dim 0");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound)),
                          "INVALID_ARGUMENT: bad dim 0");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(
          s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim 1"))),
      "has substring \"dim 1\"");
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(s), "INVALID_ARGUMENT: bad dim 0");
  const absl::StatusOr<int> error = absl::DataLossError("crc mismatch");
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(error), "DATA_LOSS: crc mismatch");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_THAT(error, StatusIs(absl::StatusCode::kInternal)),
      "DATA_LOSS: crc mismatch");
  EXPECT_FATAL_FAILURE(ASSERT_OK(absl::InternalError("boom")),
                       "INTERNAL: boom");
}

TEST(StatusMatchersTest, DescribesWhatItWantsAndWhatItGot) {
  const std::string explained =
      Explain(StatusIs(absl::StatusCode::kNotFound, HasSubstr("emb")),
              absl::StatusOr<int>(absl::UnavailableError("server 1 is gone")));
  EXPECT_THAT(explained, HasSubstr("is equal to NOT_FOUND"));
  EXPECT_THAT(explained, HasSubstr("has substring \"emb\""));
  EXPECT_THAT(explained,
              HasSubstr("whose status is UNAVAILABLE: server 1 is gone"));
  // Without a message matcher the description speaks of the code only.
  EXPECT_EQ(Explain(StatusIs(absl::StatusCode::kNotFound), absl::OkStatus()),
            "has a status code that is equal to NOT_FOUND / ");
  EXPECT_EQ(Explain(IsOk(), absl::StatusOr<int>(absl::AbortedError("x"))),
            "is OK / whose status is ABORTED: x");
}

}  // namespace
}  // namespace ps
