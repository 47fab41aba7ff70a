// Which pushes one server applied, per worker: the exactly-once guarantee
// of PushRequest (proto/ps.proto).
//
// A push request is named by (worker rank, step, part). Claim decides what
// the server does with it:
//  - kApply: first sight. The caller applies the push, then calls Finish
//    (applied = false releases the claim when the push was refused or
//    cancelled, so a retry may apply it).
//  - kDuplicate: applied before; acknowledged without applying. A step at
//    or below the worker's highest applied step minus kWindowSteps counts
//    as applied: a worker keeps fewer than kWindowSteps steps of pushes in
//    flight (PsHandler checks the config), so it sends step s + kWindowSteps
//    only after every server acknowledged its pushes of step s.
//  - A claim of a request still being applied waits for that application
//    to finish and then decides, so a retry neither applies it twice nor
//    acknowledges it before it is applied.
//
// The ledger also counts, per worker, the requests applied and repeated.
// Snapshot and Restore carry all of it through a checkpoint, so a resumed
// job keeps the guarantee and its counters roll back with the rows.
//
// Thread-safe.
#ifndef PS_SERVER_SERVICE_PUSH_LEDGER_H_
#define PS_SERVER_SERVICE_PUSH_LEDGER_H_

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "proto/checkpoint.pb.h"

namespace ps {

// Push requests a server applied from one worker, by kind, and the repeats
// it acknowledged without applying.
struct PushCounts {
  int64_t sparse_gradients = 0;
  int64_t sparse_deltas = 0;
  int64_t dense_gradients = 0;
  int64_t dense_deltas = 0;
  int64_t duplicates = 0;
  int64_t applied = 0;     // requests applied (any kind)
  int64_t last_step = -1;  // highest step applied; -1: none
};

class PushLedger {
 public:
  static constexpr int64_t kWindowSteps = 4096;

  struct Key {
    int worker = 0;
    int64_t step = 0;
    uint32_t part = 0;
  };
  // What the applied request held (for the counters).
  struct Kind {
    bool sparse = false;
    bool dense = false;
    bool delta = false;
  };
  enum class Verdict { kApply, kDuplicate };

  // See the top comment. A kDuplicate is counted at once.
  Verdict Claim(const Key& key);
  // REQUIRES: Claim(key) returned kApply and Finish(key) was not called.
  void Finish(const Key& key, bool applied, const Kind& kind);

  // The counters of every worker seen, by rank.
  std::map<int, PushCounts> Counts() const;

  // Everything, for a checkpoint. REQUIRES: no claim in progress (the caller
  // holds its apply lock exclusively).
  PushLedgerSnapshot Snapshot() const;
  // Adds the workers of `snapshot` (a checkpoint of this or, resharded,
  // another server): union of applied pushes, highest step, summed
  // counters. InvalidArgument for a malformed snapshot (steps and parts of
  // different lengths, another window).
  absl::Status Merge(const PushLedgerSnapshot& snapshot);

 private:
  struct Worker {
    int64_t max_step = -1;
    std::set<std::pair<int64_t, uint32_t>> applied;      // within the window
    std::set<std::pair<int64_t, uint32_t>> in_progress;  // claimed
    PushCounts counts;
  };
  static void Prune(Worker* w);

  mutable absl::Mutex mu_;
  absl::CondVar finished_;  // signalled by every Finish
  std::map<int, Worker> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SERVICE_PUSH_LEDGER_H_
