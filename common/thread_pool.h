// ThreadPool: a fixed set of threads that run the iterations of ParallelFor,
// for splitting one request's work (e.g. a sparse table's sub-shard groups)
// over cores. The calling thread takes part, so a pool of 0 threads runs
// everything inline and a busy pool never deadlocks a caller.
//
// Thread-safe: several threads may call ParallelFor at once; their
// iterations share the pool's threads.
#ifndef PS_COMMON_THREAD_POOL_H_
#define PS_COMMON_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace ps {

class ThreadPool {
 public:
  // `threads` >= 0 worker threads.
  explicit ThreadPool(int threads);
  // Waits for the queued work, then joins the threads.
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(threads_.size()); }

  // Calls fn(i) for every i in [0, n), on the pool's threads and the
  // calling one, and returns when all calls have returned. fn must be safe
  // to call concurrently for different i.
  void ParallelFor(size_t n, absl::FunctionRef<void(size_t)> fn);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Runs long, rare tasks (a checkpoint save) each on a detached thread of its
// own, so the caller does not wait and finished threads do not pile up
// unjoined; the destructor (or WaitAll) waits until every task has
// returned. Thread-safe.
class BackgroundTasks {
 public:
  BackgroundTasks();
  ~BackgroundTasks() { WaitAll(); }

  BackgroundTasks(const BackgroundTasks&) = delete;
  BackgroundTasks& operator=(const BackgroundTasks&) = delete;

  void Run(std::function<void()> task);
  // Runs `task` on a thread of its own unless `max_running` tasks are
  // running already or no thread can be made: then returns false and drops
  // it.
  [[nodiscard]] bool TryRun(std::function<void()> task, int max_running);
  // Returns when no task is running.
  void WaitAll();

 private:
  struct State {
    absl::Mutex mu;
    int running ABSL_GUARDED_BY(mu) = 0;
  };
  // Shared with the threads, so it outlives the last one's final unlock.
  std::shared_ptr<State> state_;
};

}  // namespace ps

#endif  // PS_COMMON_THREAD_POOL_H_
