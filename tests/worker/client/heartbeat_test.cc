// worker/client/heartbeat.h: beats with the current step every interval, hands
// on the answers, and stops cleanly.
#include "worker/client/heartbeat.h"

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_ps_client.h"

namespace ps {
namespace {

using testing_util::FakePsClient;

TEST(HeartbeatThreadTest, BeatsWithTheStepAndHandsOnTheRound) {
  FakePsClient client;
  {
    absl::MutexLock lock(&client.mu);
    client.heartbeat_pending = 3;
  }
  std::atomic<int64_t> step{7};
  std::atomic<int64_t> seen{0};
  std::atomic<int> answers{0};
  const absl::Time start = absl::Now();
  HeartbeatThread heartbeat(
      &client, absl::Milliseconds(20), [&] { return step.load(); },
      [&](int64_t pending, absl::Time asked_at) {
        EXPECT_GE(asked_at, start);
        EXPECT_LE(asked_at, absl::Now());
        seen = pending;
        answers++;
      });
  absl::SleepFor(absl::Milliseconds(200));
  step = 9;
  absl::SleepFor(absl::Milliseconds(200));
  heartbeat.Stop();
  const int after_stop = answers.load();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(answers.load(), after_stop) << "beats after Stop";
  heartbeat.Stop();  // idempotent

  absl::MutexLock lock(&client.mu);
  // About 20 beats in 400 ms; a loaded machine gives fewer.
  EXPECT_GE(client.heartbeat_steps.size(), 5u);
  EXPECT_LE(client.heartbeat_steps.size(), 25u);
  EXPECT_EQ(client.heartbeat_steps.front(), 7);
  EXPECT_EQ(client.heartbeat_steps.back(), 9);
  EXPECT_EQ(seen.load(), 3);
}

TEST(HeartbeatThreadTest, DestructorStops) {
  FakePsClient client;
  {
    HeartbeatThread heartbeat(
        &client, absl::Hours(1), [] { return int64_t{0}; },
        [](int64_t, absl::Time) {});
  }  // does not wait an hour
  absl::MutexLock lock(&client.mu);
  EXPECT_EQ(client.heartbeat_steps.size(), 1u);  // the first beat is at once
}

}  // namespace
}  // namespace ps
