// The pieces of the job coordinator's state (CoordinatorCore,
// server/coordinator/coordinator_core.h), each with its invariants:
//
//   Membership   who registered, who finished, who is alive (heartbeats);
//   BarrierTable named barriers and the calls parked at them;
//   StepGates    BOUNDED step gates: each worker's step and the parked calls.
//
// They hold parked calls as `Resume` callbacks and hand them back when the
// calls may go on; they never run one. None of them is thread-safe:
// CoordinatorCore keeps them all under its one mutex and runs what they hand
// back after releasing it. They know nothing of gRPC.
#ifndef PS_SERVER_COORDINATOR_COORDINATOR_STATE_H_
#define PS_SERVER_COORDINATOR_COORDINATOR_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/checkpoint.pb.h"
#include "proto/ps.pb.h"

namespace ps {

// How a parked call goes on: called exactly once, with OK after its response
// was filled in, or with the error that ends the call.
using Resume = absl::AnyInvocable<void(absl::Status) &&>;

// A parked call handed back together with what it waited for ("barrier
// 'epoch 1' (1 of 2 workers arrived)"), for the error that ends it early.
struct ParkedCall {
  std::string what;
  Resume resume;
};

// Where a worker stands for a checkpoint: the steps it has finished and the
// position of its next example, as it last reported them (Register's resume
// record, Barrier, CheckpointArrive, Finish).
struct WorkerStand {
  int64_t step = 0;
  DataPosition position;
};

// Registration and liveness of workers 0 .. num_workers-1.
//
// Invariants: a worker is dead only if it sent a Register or Heartbeat and
// then nothing for longer than `timeout`; a worker never heard from is not
// dead (it may not have started yet), and a finished worker is never dead.
// Register and Heartbeat revive a dead worker. REQUIRES of every method: a
// rank in [0, num_workers).
class Membership {
 public:
  Membership(int num_workers, absl::Duration timeout);

  // Registers `rank` alive at `now` and not finished. Returns true when it
  // had registered before (a restarted worker).
  bool Register(int rank, absl::Time now);

  struct HeartbeatNews {
    bool was_dead = false;     // silent for longer than the timeout
    bool was_unknown = false;  // never registered (coordinator restarted)
  };
  // Records `rank` alive at `now`, registering it if it had not.
  HeartbeatNews Heartbeat(int rank, absl::Time now);

  // Marks `rank` finished.
  void Finish(int rank);
  // Forgets every worker (a job-wide rollback: all register again).
  void Reset() {
    registered_.clear();
    finished_.clear();
    last_seen_.clear();
  }

  bool Dead(int rank, absl::Time now) const;
  // Dead(r, now) for every rank r.
  std::vector<bool> DeadWorkers(absl::Time now) const;
  bool finished(int rank) const { return finished_.count(rank) > 0; }
  bool all_finished() const {
    return static_cast<int>(finished_.size()) == num_workers_;
  }
  int num_finished() const { return static_cast<int>(finished_.size()); }
  int num_registered() const { return static_cast<int>(registered_.size()); }
  bool registered(int rank) const { return registered_.count(rank) > 0; }

 private:
  const int num_workers_;
  const absl::Duration timeout_;
  std::set<int> registered_;
  std::set<int> finished_;
  std::map<int, absl::Time> last_seen_;  // Register or Heartbeat
};

// Named barriers: a barrier is released when all num_workers workers have
// arrived at its name; each waiter learns whether any arrived with has_more.
//
// Invariants: a barrier in the table has between 1 and num_workers - 1
// distinct ranks, exactly one parked call each (a worker's newer arrival
// replaces its earlier one); a released barrier leaves the table, so its
// name can be used again. A worker is Parked while it is in any barrier of
// the table.
class BarrierTable {
 public:
  explicit BarrierTable(int num_workers) : num_workers_(num_workers) {}

  // Parks `resume` (and its `response`) at barrier `name` for `rank`. When
  // `rank` is already there (a retried call), the new call replaces the
  // earlier one, whose has_more no longer counts, and the earlier call is
  // returned for the caller to end; otherwise nullopt. When this arrival
  // completes the barrier, every waiter's response has all_done set and the
  // waiters are appended to `*released`.
  std::optional<Resume> Arrive(const std::string& name, int rank, bool has_more,
                               BarrierResponse* response, Resume resume,
                               std::vector<Resume>* released);

  // Takes `rank` out of every barrier it waits in (a barrier left empty
  // leaves the table) and returns its parked calls, each with "barrier
  // 'NAME'".
  std::vector<ParkedCall> Leave(int rank);

  // Whether `rank` waits in a barrier.
  bool Parked(int rank) const;

  // Empties the table and returns every parked call.
  std::vector<ParkedCall> TakeAll();

 private:
  struct Waiter {
    int rank;
    bool has_more;
    BarrierResponse* response;
    Resume resume;
  };
  struct Pending {
    std::vector<Waiter> waiting;  // one per rank
  };

  const int num_workers_;
  std::map<std::string, Pending> barriers_;
};

// BOUNDED step gates. A worker asks to start step s with staleness k; it may
// go when s - slowest <= k, where slowest is the smallest step of the active
// workers (not done, not dead), counting the asking worker itself, so a
// worker alone (or with every other one done or dead) always goes.
//
// Invariants: steps_ holds each worker's last reported step (0 until it
// reports); every parked call is still held back (s - slowest > k) as of the
// last Release; max_granted_lead is the largest s - slowest of a release
// that was within staleness.
class StepGates {
 public:
  explicit StepGates(int num_workers) : num_workers_(num_workers) {}

  // The worker has finished `step` steps.
  void SetStep(int rank, int64_t step) { steps_[rank] = step; }
  // A done worker (no more data, or finished) holds nobody back.
  void SetDone(int rank, bool done);

  // Parks a call of `rank` asking to start `step`; its response is filled in
  // when Release lets it go.
  void Park(int rank, int64_t step, int32_t staleness,
            StepGateResponse* response, Resume resume);

  // Lets go every parked call now within staleness of the slowest active
  // worker (`dead[r]`: worker r is dead), and, when `open_round` > 0, every
  // other one too, with checkpoint_pending = open_round so it arrives at the
  // round instead of waiting for a worker that may be waiting there. Fills
  // in their responses and returns them.
  std::vector<Resume> Release(const std::vector<bool>& dead,
                              int64_t open_round);

  // Takes the parked calls of `rank` out and returns them, each with "step
  // gate of worker R at step S".
  std::vector<ParkedCall> Leave(int rank);

  // Empties the parked calls and returns them.
  std::vector<ParkedCall> TakeAll();
  // Forgets every worker's step and done (a job-wide rollback).
  // REQUIRES: no parked call (TakeAll first).
  void ResetSteps() {
    steps_.clear();
    done_.clear();
  }

  int64_t max_granted_lead() const { return max_granted_lead_; }

 private:
  struct Waiter {
    int rank;
    int64_t step;
    int32_t staleness;
    StepGateResponse* response;
    Resume resume;
  };
  // The smallest step of the active workers; `fallback` when none is.
  int64_t SlowestActive(const std::vector<bool>& dead, int64_t fallback) const;

  const int num_workers_;
  std::map<int, int64_t> steps_;
  std::set<int> done_;
  std::vector<Waiter> waiters_;
  int64_t max_granted_lead_ = 0;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_COORDINATOR_STATE_H_
