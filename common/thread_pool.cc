#include "common/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <system_error>
#include <utility>

namespace ps {

ThreadPool::ThreadPool(int threads) {
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stop_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stop_ and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(size_t n, absl::FunctionRef<void(size_t)> fn) {
  if (n == 0) return;
  if (n == 1 || threads_.empty()) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Iterations are claimed from a shared counter by the caller and by up
  // to min(threads, n - 1) helpers; the caller waits until every claimed
  // iteration has finished.
  struct Shared {
    std::atomic<size_t> next{0};
    absl::Mutex mu;
    size_t done ABSL_GUARDED_BY(mu) = 0;
  };
  auto shared = std::make_shared<Shared>();
  auto run = [shared, n, &fn] {
    size_t finished = 0;
    for (size_t i; (i = shared->next.fetch_add(1)) < n;) {
      fn(i);
      ++finished;
    }
    if (finished > 0) {
      absl::MutexLock lock(&shared->mu);
      shared->done += finished;
    }
  };
  const size_t helpers = std::min(threads_.size(), n - 1);
  {
    absl::MutexLock lock(&mu_);
    for (size_t h = 0; h < helpers; ++h) queue_.emplace_back(run);
  }
  run();
  // A helper that starts after every iteration was claimed finds none and
  // touches only `shared`, which it co-owns; fn's captures stay valid
  // because no iteration runs after done reaches n.
  std::pair<Shared*, size_t> wait(shared.get(), n);
  absl::MutexLock lock(&shared->mu);
  shared->mu.Await(absl::Condition(
      +[](std::pair<Shared*, size_t>* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return w->first->done >= w->second;
      },
      &wait));
}

BackgroundTasks::BackgroundTasks() : state_(std::make_shared<State>()) {}

void BackgroundTasks::Run(std::function<void()> task) {
  {
    absl::MutexLock lock(&state_->mu);
    ++state_->running;
  }
  std::thread([state = state_, task = std::move(task)] {
    task();
    absl::MutexLock lock(&state->mu);
    --state->running;
  }).detach();
}

bool BackgroundTasks::TryRun(std::function<void()> task, int max_running) {
  {
    absl::MutexLock lock(&state_->mu);
    if (state_->running >= max_running) return false;
    ++state_->running;
  }
  try {
    std::thread([state = state_, task = std::move(task)] {
      task();
      absl::MutexLock lock(&state->mu);
      --state->running;
    }).detach();
  } catch (const std::system_error&) {
    // No thread could be made (a process limit): refused, not fatal.
    absl::MutexLock lock(&state_->mu);
    --state_->running;
    return false;
  }
  return true;
}

void BackgroundTasks::WaitAll() {
  absl::MutexLock lock(&state_->mu);
  state_->mu.Await(absl::Condition(
      +[](State* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->running == 0; },
      state_.get()));
}

}  // namespace ps
