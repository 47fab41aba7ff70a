#include "worker/client/retry.h"

#include <algorithm>
#include <utility>

namespace ps {

std::optional<absl::Duration> RetryBackoff::Next(absl::Time now) {
  const absl::Time give_up = start_ + budget_;
  if (now >= give_up) return std::nullopt;
  const absl::Duration wait = std::min(wait_, give_up - now);
  wait_ = std::min(wait_ * 2, kMaxWait);
  return wait;
}

DelayedRunner::DelayedRunner() : thread_([this] { Loop(); }) {}

DelayedRunner::~DelayedRunner() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.Signal();
  }
  thread_.join();
}

void DelayedRunner::RunAt(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  due_.emplace(when, std::move(fn));
  wake_.Signal();
}

void DelayedRunner::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (due_.empty() || due_.begin()->first > absl::Now()) {
      // Woken by RunAt (the new closure may be due sooner) and by stopping.
      wake_.WaitWithDeadline(
          &mu_, due_.empty() ? absl::InfiniteFuture() : due_.begin()->first);
      continue;
    }
    std::function<void()> fn = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    mu_.Unlock();
    fn();
    fn = nullptr;  // its captures go before the lock is taken again
    mu_.Lock();
  }
}

}  // namespace ps
