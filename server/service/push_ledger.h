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
//  - kConflict: the push carries steps first..step (a worker merges the
//    gradients of several steps into one push when its pushes queue up)
//    that overlap, without matching, the steps of a push applied before:
//    a restarted worker merged its steps differently from its earlier run.
//    Applying it would apply some step twice, refusing it all would lose
//    some: the job must roll back to a checkpoint (PsHandler refuses it with
//    FailedPrecondition "... must roll back").
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
    // The first step whose gradients the push carries; -1: `step` alone.
    int64_t first = -1;
    int64_t first_step() const { return first < 0 ? step : first; }
  };
  // What the applied request held (for the counters).
  struct Kind {
    bool sparse = false;
    bool dense = false;
    bool delta = false;
  };
  enum class Verdict { kApply, kDuplicate, kConflict };

  // See the top comment. A kDuplicate is counted at once. On kConflict,
  // *applied_first and *applied_last (may be null) are the steps of the
  // applied push it overlaps.
  Verdict Claim(const Key& key, int64_t* applied_first = nullptr,
                int64_t* applied_last = nullptr);
  // REQUIRES: Claim(key) returned kApply and Finish(key) was not called.
  void Finish(const Key& key, bool applied, const Kind& kind);

  // The counters of every worker seen, by rank.
  std::map<int, PushCounts> Counts() const;
  // The highest step claimed by `worker` (-1: none yet).
  int64_t MaxStep(int worker) const;

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
    // Within the window: applied (step, part) -> the push's first step.
    std::map<std::pair<int64_t, uint32_t>, int64_t> applied;
    // Within the window: the steps first..last of every applied push, by
    // last step.
    std::map<int64_t, int64_t> ranges;
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
