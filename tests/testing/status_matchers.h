// gmock matchers for absl::Status and absl::StatusOr<T>, standing in for
// absl/status/status_matchers.h, which Debian 12's Abseil lacks:
//
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
//                           HasSubstr("dim must be")));
//   EXPECT_THAT(reader, IsOk());           // reader: a StatusOr
//   EXPECT_THAT(ReadAll(), IsOkAndHolds(ElementsAre(1, 2)));
//   ASSERT_OK(table->Push(keys, grads));   // EXPECT_OK likewise
//
// Each matcher takes a Status or any StatusOr<T> and, on a mismatch, prints
// the status it got (code and message). StatusIs's code may be a matcher too
// (AnyOf(kUnavailable, kDeadlineExceeded)), its message a string (equality)
// or any matcher of a std::string. A matcher is immutable once made.
#ifndef PS_TESTS_TESTING_STATUS_MATCHERS_H_
#define PS_TESTS_TESTING_STATUS_MATCHERS_H_

#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace ps {
namespace testing_util {
namespace internal_status {

// The status of a Status or StatusOr, and whether a failure message should
// print it: gtest prints an absl::Status itself, a StatusOr only as bytes.
inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
inline constexpr bool PrintsItself(const absl::Status&) { return true; }

template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
template <typename T>
constexpr bool PrintsItself(const absl::StatusOr<T>&) {
  return false;
}

// Appends `part` to a matcher's explanation, after a comma when it is not
// the first.
inline void Explain(const std::string& part, bool* first,
                    ::testing::MatchResultListener* listener) {
  if (part.empty()) return;
  if (!*first) *listener << ", ";
  *listener << part;
  *first = false;
}

// The polymorphic implementation behind StatusIs (see
// ::testing::MakePolymorphicMatcher).
class StatusIsMatcher {
 public:
  // A null `message` matches any message.
  StatusIsMatcher(::testing::Matcher<absl::StatusCode> code,
                  std::optional<::testing::Matcher<const std::string&>> message)
      : code_(std::move(code)), message_(std::move(message)) {}

  template <typename StatusType>
  bool MatchAndExplain(const StatusType& actual,
                       ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(actual);
    bool first = true;
    if (!PrintsItself(actual)) {
      Explain("whose status is " + status.ToString(), &first, listener);
    }
    ::testing::StringMatchResultListener code_listener;
    if (!code_.MatchAndExplain(status.code(), &code_listener)) {
      if (!code_listener.str().empty()) {
        Explain("whose code " + code_listener.str(), &first, listener);
      }
      return false;
    }
    ::testing::StringMatchResultListener message_listener;
    if (message_.has_value() &&
        !message_->MatchAndExplain(std::string(status.message()),
                                   &message_listener)) {
      if (!message_listener.str().empty()) {
        Explain("whose message " + message_listener.str(), &first, listener);
      }
      return false;
    }
    return true;
  }

  void DescribeTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_.DescribeTo(os);
    if (message_.has_value()) {
      *os << " and a message that ";
      message_->DescribeTo(os);
    }
  }

  void DescribeNegationTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_.DescribeNegationTo(os);
    if (message_.has_value()) {
      *os << " or a message that ";
      message_->DescribeNegationTo(os);
    }
  }

 private:
  const ::testing::Matcher<absl::StatusCode> code_;
  const std::optional<::testing::Matcher<const std::string&>> message_;
};

// The polymorphic implementation behind IsOk.
class IsOkMatcher {
 public:
  template <typename StatusType>
  bool MatchAndExplain(const StatusType& actual,
                       ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(actual);
    if (!PrintsItself(actual)) {
      *listener << "whose status is " << status.ToString();
    }
    return status.ok();
  }

  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

}  // namespace internal_status

// Matches a Status or StatusOr whose code matches `code` (a StatusCode or a
// matcher of one) and whose message matches `message` (a string, compared
// for equality, or a matcher such as HasSubstr("...")).
inline ::testing::PolymorphicMatcher<internal_status::StatusIsMatcher> StatusIs(
    ::testing::Matcher<absl::StatusCode> code,
    ::testing::Matcher<const std::string&> message) {
  return ::testing::MakePolymorphicMatcher(
      internal_status::StatusIsMatcher(std::move(code), std::move(message)));
}

// Matches a Status or StatusOr whose code matches `code`, any message.
inline ::testing::PolymorphicMatcher<internal_status::StatusIsMatcher> StatusIs(
    ::testing::Matcher<absl::StatusCode> code) {
  return ::testing::MakePolymorphicMatcher(
      internal_status::StatusIsMatcher(std::move(code), std::nullopt));
}

// Matches an OK Status, or a StatusOr that holds a value.
inline ::testing::PolymorphicMatcher<internal_status::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(internal_status::IsOkMatcher());
}

// Matches a StatusOr that holds a value matching `inner` (a value, compared
// for equality, or a matcher); a failure prints the status or the value.
MATCHER_P(IsOkAndHolds, inner, "is OK and holds a value that matches") {
  if (!arg.ok()) {
    *result_listener << "whose status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(inner, *arg, result_listener);
}

}  // namespace testing_util
}  // namespace ps

// EXPECT_OK(expr) / ASSERT_OK(expr): `expr` (a Status or StatusOr) is OK;
// the failure prints the status.
#define EXPECT_OK(expr) EXPECT_THAT(expr, ::ps::testing_util::IsOk())
#define ASSERT_OK(expr) ASSERT_THAT(expr, ::ps::testing_util::IsOk())

#endif  // PS_TESTS_TESTING_STATUS_MATCHERS_H_
