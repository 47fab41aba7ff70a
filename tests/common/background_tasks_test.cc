// BackgroundTasks (common/thread_pool.h): TryRun bounds how many tasks run
// at once, so a flood of checkpoint requests cannot make a server create
// threads until thread creation fails and terminates it.
#include <atomic>

#include "absl/synchronization/notification.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(BackgroundTasksTest, TryRunRefusesPastTheLimitAndAcceptsAgainAfter) {
  BackgroundTasks tasks;
  absl::Notification release;
  std::atomic<int> ran{0};
  auto blocking = [&] {
    release.WaitForNotification();
    ran.fetch_add(1);
  };
  EXPECT_TRUE(tasks.TryRun(blocking, 2));
  EXPECT_TRUE(tasks.TryRun(blocking, 2));
  // A flood: every further task is refused while two run.
  int refused = 0;
  for (int i = 0; i < 1000; ++i) refused += tasks.TryRun(blocking, 2) ? 0 : 1;
  EXPECT_EQ(refused, 1000);
  release.Notify();
  tasks.WaitAll();
  EXPECT_EQ(ran.load(), 2);
  EXPECT_TRUE(tasks.TryRun([&] { ran.fetch_add(1); }, 2));
  tasks.WaitAll();
  EXPECT_EQ(ran.load(), 3);
}

}  // namespace
}  // namespace ps
