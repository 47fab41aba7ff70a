// Retrying a parameter server that does not answer (gRPC UNAVAILABLE: the
// process is gone or its port refuses connections), as PsClient does:
//
//  - RetryBackoff: the waits between attempts of one call, 100 ms doubling
//    up to 5 s, for at most a budget (cluster.server_retry_sec) counted from
//    the call's first failure. Thread-compatible: one per failing call.
//  - DelayedRunner: one thread that runs closures when their time comes, so
//    an asynchronous call can be re-sent after its wait without blocking a
//    gRPC callback thread. Thread-safe.
#ifndef PS_WORKER_CLIENT_RETRY_H_
#define PS_WORKER_CLIENT_RETRY_H_

#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ps {

class RetryBackoff {
 public:
  static constexpr absl::Duration kFirstWait = absl::Milliseconds(100);
  static constexpr absl::Duration kMaxWait = absl::Seconds(5);

  // `start`: when the call first failed; `budget`: how long after that
  // attempts may still be made.
  RetryBackoff(absl::Duration budget, absl::Time start)
      : budget_(budget), start_(start) {}

  // After a failed attempt at `now`: how long to wait before the next one
  // (kFirstWait, then doubling up to kMaxWait, shortened so that the last
  // attempt falls at start + budget), or nullopt once `now` is at or past
  // start + budget: give up.
  std::optional<absl::Duration> Next(absl::Time now);

  absl::Duration budget() const { return budget_; }
  absl::Duration Elapsed(absl::Time now) const { return now - start_; }

 private:
  const absl::Duration budget_;
  const absl::Time start_;
  absl::Duration wait_ = kFirstWait;  // the next wait before shortening
};

class DelayedRunner {
 public:
  DelayedRunner();
  // Joins the thread; closures not yet due are destroyed without running.
  ~DelayedRunner();
  DelayedRunner(const DelayedRunner&) = delete;
  DelayedRunner& operator=(const DelayedRunner&) = delete;

  // Runs `fn` on the runner's thread at `when` (at once if it is past);
  // closures run one at a time, in time order. `fn` must not block long:
  // it delays the ones after it.
  void RunAt(absl::Time when, std::function<void()> fn);

 private:
  void Loop();

  absl::Mutex mu_;
  absl::CondVar wake_;
  std::multimap<absl::Time, std::function<void()>> due_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_RETRY_H_
