// worker/client/retry.h: the backoff's waits and budget, and the
// DelayedRunner's order and timing.
#include "worker/client/retry.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(RetryBackoffTest, DoublesFrom100MsUpTo5Seconds) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  RetryBackoff backoff(absl::Seconds(300), start);
  std::vector<absl::Duration> waits;
  absl::Time now = start;
  for (int i = 0; i < 9; ++i) {
    std::optional<absl::Duration> wait = backoff.Next(now);
    ASSERT_TRUE(wait.has_value()) << i;
    waits.push_back(*wait);
    now += *wait;
  }
  const std::vector<absl::Duration> expected = {
      absl::Milliseconds(100),  absl::Milliseconds(200),
      absl::Milliseconds(400),  absl::Milliseconds(800),
      absl::Milliseconds(1600), absl::Milliseconds(3200),
      absl::Seconds(5),         absl::Seconds(5),
      absl::Seconds(5)};
  EXPECT_EQ(waits, expected);
  EXPECT_EQ(backoff.Elapsed(now), absl::Milliseconds(21300));
}

TEST(RetryBackoffTest, LastWaitEndsAtTheBudgetThenGivesUp) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  RetryBackoff backoff(absl::Seconds(1), start);
  absl::Time now = start;
  std::vector<absl::Duration> waits;
  while (std::optional<absl::Duration> wait = backoff.Next(now)) {
    waits.push_back(*wait);
    now += *wait;
  }
  // 100 + 200 + 400 ms, then 300 ms (not 800) to end at 1 s.
  const std::vector<absl::Duration> expected = {
      absl::Milliseconds(100), absl::Milliseconds(200), absl::Milliseconds(400),
      absl::Milliseconds(300)};
  EXPECT_EQ(waits, expected);
  EXPECT_EQ(now, start + absl::Seconds(1));
}

TEST(RetryBackoffTest, ZeroBudgetNeverRetries) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  RetryBackoff backoff(absl::ZeroDuration(), start);
  EXPECT_FALSE(backoff.Next(start).has_value());
}

TEST(DelayedRunnerTest, RunsInTimeOrderWhenDue) {
  DelayedRunner runner;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification all;
  const absl::Time now = absl::Now();
  auto record = [&](int i) {
    absl::MutexLock lock(&mu);
    order.push_back(i);
    if (order.size() == 3) all.Notify();
  };
  runner.RunAt(now + absl::Milliseconds(300), [&] { record(3); });
  runner.RunAt(now + absl::Milliseconds(100), [&] { record(2); });
  runner.RunAt(now - absl::Seconds(1), [&] { record(1); });  // past: at once
  ASSERT_TRUE(all.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - now, absl::Milliseconds(300));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(DelayedRunnerTest, DestroyingDropsClosuresNotYetDue) {
  std::atomic<int> ran{0};
  {
    DelayedRunner runner;
    runner.RunAt(absl::Now() + absl::Hours(1), [&] { ran++; });
  }
  EXPECT_EQ(ran.load(), 0);
}

}  // namespace
}  // namespace ps
