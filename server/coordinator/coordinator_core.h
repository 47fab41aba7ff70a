// CoordinatorCore: the job coordinator's logic without gRPC. Worker
// registration, liveness (heartbeats), barriers, BOUNDED step gates,
// coordinated checkpoints and the end of the job. CoordinatorImpl
// (coordinator.h) serves it as the gRPC Coordinator service on server 0;
// tests drive it directly, with an injected clock and save function.
//
// Calls that wait (Barrier, StepGate, CheckpointArrive, RequestCheckpoint)
// are parked: they take a `done` callback and return at once. The core calls
// `done` exactly once, never while holding its lock: either before the call
// returns (an error, or nothing to wait for) or later from whichever thread
// lets the call go (another worker's call, the timer, the thread that wrote
// a checkpoint, Stop). The call's `response` must stay valid until then; the
// core fills it in before calling `done` with OK.
//
// Checkpoints (when options.save is set): a round opens on RequestCheckpoint,
// every checkpoint.every_minutes (Tick), or when a worker arrives with id 0
// (its trainer does so after a step that is a multiple of
// checkpoint.every_steps). Workers learn of an open round from Heartbeat or
// StepGate answers and arrive (CheckpointArrive) at their next step boundary
// with every push acknowledged; a worker parked in a Barrier (which reports
// its position), finished, or dead (no Register or Heartbeat within
// cluster.worker_timeout_ms) counts as arrived. Once all have, the round's
// cut is taken: options.save writes every server's tables on a background
// thread, the manifest records each worker's position and step, and
// CommitCheckpoint makes it LATEST. Barrier and gate releases that fall
// while it writes wait until it is done, so no worker pushes past the cut;
// arrivals and requests in that time belong to the next round. Then the
// round's parked calls return with the folder (or the save's error; training
// goes on either way).
//
// The end of the job: when every worker has called Finish, the final
// checkpoint is taken (if the job has checkpoints; it is attempted once and
// a failure is logged), then options.on_all_finished is called once, on a
// background thread, with the job's outcome. A worker that reports a failure
// in Finish (FinishRequest.status other than "ok") still counts as finished,
// so the job ends (and its final checkpoint is taken) as after a success,
// but the outcome is Aborted, naming every failed worker and its error:
// "job failed: worker 1: <error> (1 of 2 workers failed)". A worker that
// registers again (restarted) sheds its earlier failure; its next Finish
// counts.
//
// Thread-safety: every method may be called from any thread.
#ifndef PS_SERVER_COORDINATOR_COORDINATOR_CORE_H_
#define PS_SERVER_COORDINATOR_COORDINATOR_CORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/thread_pool.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "proto/ps.pb.h"
#include "server/coordinator/coordinator_state.h"

namespace ps {

// CoordinatorOptions::save's `seen` for a server two workers saw in two
// incarnations.
inline constexpr uint64_t kIncarnationsDisagree = ~uint64_t{0};

struct CoordinatorOptions {
  // Workers 0 .. num_workers-1 take part. Default: 1.
  int num_workers = 1;
  // Servers of the job (told to workers, recorded in manifests). Default: 1.
  int num_servers = 1;
  // The job: cluster.worker_timeout_ms, the checkpoint section, the config
  // recorded in manifests.
  JobConfig config;
  // Called once when the job is over (see the top comment), on a background
  // thread, with the job's outcome (OK, or Aborted naming the failed
  // workers); never after Stop() has begun. Default: none.
  std::function<void(const absl::Status& outcome)> on_all_finished;
  // Writes every server's part of a checkpoint into folder `dir` at `step`
  // and returns all files written. Called on a background thread without the
  // core's lock, one call at a time. Unset: checkpoints are refused.
  // `seen`: per server, the incarnation the workers that arrived at the cut
  // trained against (0: none reported; kIncarnationsDisagree: two workers
  // reported different ones); the save must refuse a server whose
  // incarnation is not that.
  std::function<absl::StatusOr<std::vector<CheckpointFile>>(
      const std::string& dir, int64_t step, const std::vector<uint64_t>& seen)>
      save;
  // Called once a checkpoint is committed into folder `dir` at `step`, on
  // the save's background thread without the core's lock, before the
  // round's callers are answered; and once more, with `final`, for the
  // job's last checkpoint (its folder may be one committed before), before
  // the job ends. For exports while training. Default: none.
  std::function<void(const std::string& dir, int64_t step, bool final)>
      on_committed;
  // A job-wide rollback: every server reloads checkpoint folder `dir` (""
  // : fresh tables). Called on a background thread without the core's lock.
  // Unset: Recover is refused.
  std::function<absl::Status(const std::string& dir)> reload;
  // The generation a worker registering gets until the first rollback.
  // Workers send it in every call; a call from another generation is
  // refused (Aborted, "job rolled back ..."). Server 0 starts at the time
  // in microseconds, so a restarted coordinator refuses the calls of workers
  // registered with its previous run, and its first Recover from such a
  // worker reloads every server even though the worker's generation is
  // older. Default: 0.
  int64_t first_generation = 0;
  // The checkpoint the servers restored at start (workers resume from it).
  // Default: none.
  std::optional<Manifest> resumed;
  std::string resumed_dir;
  // What checkpoint.every_minutes counts in. Default: a minute (tests
  // shorten it).
  absl::Duration minute = absl::Minutes(1);
  // The time that liveness (worker_timeout_ms) and every_minutes are
  // measured in. Called with the core's lock held, so it must not call the
  // core. Default: absl::Now.
  std::function<absl::Time()> clock = absl::Now;
  // How often a thread of the core calls Tick(). Zero: no such thread; the
  // owner calls Tick() (tests, with a fake clock). Default: 250 ms.
  absl::Duration tick_every = absl::Milliseconds(250);
};

class CoordinatorCore {
 public:
  // The end of a parked call (see the top comment).
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  explicit CoordinatorCore(CoordinatorOptions options);
  // Stop(), then waits for a checkpoint being written and for
  // on_all_finished to return.
  ~CoordinatorCore();

  CoordinatorCore(const CoordinatorCore&) = delete;
  CoordinatorCore& operator=(const CoordinatorCore&) = delete;

  // Every call below fails with InvalidArgument naming the rank when
  // request.worker_rank is not in [0, num_workers), and with Unavailable
  // once Stop() has begun.

  // A worker (re)starts. FailedPrecondition when the worker's config has
  // another worker count; Unavailable (the caller retries) while the job
  // rolls back, and when a SYNC worker registers again before the job's end:
  // that starts a rollback (see Recover), since SYNC workers step together.
  // Fills in the server count and, when the newest checkpoint records this
  // worker, its position, step and folder. A worker that registered before
  // (restarted) leaves every barrier and step gate its earlier run was parked
  // at: those calls end with Aborted ("worker W registered again ..."), and its
  // new calls start clean.
  absl::Status Register(const RegisterRequest& request,
                        RegisterResponse* response) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker is alive. Tells it the open checkpoint round it has not
  // arrived at (checkpoint_pending), if any. A worker declared dead (silent
  // past worker_timeout_ms: stopped, cut off) is fenced instead: this and
  // every later call of it (Heartbeat, Barrier, StepGate, CheckpointArrive,
  // a successful Finish) end Aborted ("... fenced until it registers
  // again") until it registers again, as a restarted worker.
  absl::Status Heartbeat(const HeartbeatRequest& request,
                         HeartbeatResponse* response) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker is done (request.position: where it ended); it no longer
  // holds gates or checkpoint rounds back. The last one ends the job.
  // request.status other than "ok" (or empty, from callers that predate it)
  // records the worker as failed with that error (see outcome()).
  absl::Status Finish(const FinishRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // As above; response->job_ending tells the last one that the job's end
  // has begun.
  absl::Status Finish(const FinishRequest& request, FinishResponse* response)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Returns once every worker has arrived at request.name (all_done: none
  // had more data). Idempotent for retries: when this worker is already
  // parked there (its earlier call was retried after a dropped connection),
  // the new call takes the earlier one's place, its has_more replacing the
  // earlier one's, and the earlier call ends at once with Aborted
  // ("... superseded by the newer arrival of the same worker"); the barrier
  // still waits for every worker once.
  void Barrier(const BarrierRequest& request, BarrierResponse* response,
               Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // BOUNDED: returns once request.step is within request.staleness of the
  // slowest worker that is neither done nor dead, or at once when a
  // checkpoint round is open (checkpoint_pending), or at once for
  // request.done. InvalidArgument for a negative staleness.
  void StepGate(const StepGateRequest& request, StepGateResponse* response,
                Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker stands at a cut; returns when the round's checkpoint is
  // written (its folder and global step) or failed. An id of a round that
  // is over returns the newest checkpoint at once. FailedPrecondition when
  // options.save is unset.
  void CheckpointArrive(const CheckpointArriveRequest& request,
                        CheckpointArriveResponse* response, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens a round (or joins the open one; after the one being written) and
  // returns when its checkpoint is written or failed. FailedPrecondition
  // when options.save is unset.
  void RequestCheckpoint(const RequestCheckpointRequest& request,
                         RequestCheckpointResponse* response, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // A worker found a server restarted: unless the job already rolled back
  // since request.generation (then the answer comes at once), every call
  // parked at a barrier, gate, checkpoint round or WaitJobEnd ends (Aborted
  // "job rolls back ..."; WaitJobEnd answers rolled_back), a checkpoint being
  // written is finished first, then options.reload reloads the newest
  // checkpoint on every server, every worker's registration is forgotten and
  // the generation grows by one. Every worker then registers again and
  // resumes from its position in that checkpoint. Concurrent calls share
  // one rollback. FailedPrecondition when options.reload is unset or the
  // job's end has begun; the reload's error otherwise.
  void Recover(const RecoverRequest& request, RecoverResponse* response,
               Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // Parks until the job has ended (after on_all_finished's outcome is known)
  // or rolled back (rolled_back); at once when request.generation is older.
  void WaitJobEnd(const WaitJobEndRequest& request,
                  WaitJobEndResponse* response, Done done)
      ABSL_LOCKS_EXCLUDED(mu_);
  int64_t generation() const ABSL_LOCKS_EXCLUDED(mu_);

  // Periodic work, done by the core's thread every options.tick_every:
  // opens the every_minutes round when due, lets go gates that only a
  // worker now dead held back, starts a round's save once dead workers were
  // all it waited for.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every parked call with Unavailable ("coordinator stopping: ...")
  // and every later call at once; on_all_finished is not called after it.
  // A checkpoint being written is finished (and recorded) but its callers
  // were already answered. Returns without waiting for that save. Idempotent;
  // the owner calls it before shutting the gRPC server down, so shutdown
  // never waits for a parked call.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The largest lead (step - slowest active worker's step) with which
  // StepGate let a worker go: at most its staleness. For tests and logs.
  int64_t max_granted_lead() const ABSL_LOCKS_EXCLUDED(mu_);
  // Checkpoints written since start.
  int checkpoints_taken() const ABSL_LOCKS_EXCLUDED(mu_);
  // The job's outcome so far: OK unless a worker's latest Finish reported a
  // failure; then Aborted, "job failed: worker R: <error>; ... (F of N
  // workers failed)". What on_all_finished receives.
  absl::Status outcome() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Completions collected under the lock, run after it is released.
  class Outbox;
  // A parked CheckpointArrive or RequestCheckpoint (or the job's end): the
  // round's outcome, its folder and global step.
  using RoundDone =
      absl::AnyInvocable<void(const absl::Status& status,
                              const std::string& dir, int64_t step) &&>;
  struct Arrival {
    int rank = 0;
    int64_t step = 0;
    DataPosition position;
    int64_t id = 0;  // the round arrived at; 0: any (opens one if none)
    std::vector<uint64_t> incarnations;  // per server; 0: unknown
  };
  // A checkpoint round: open (collecting arrivals) until every worker counts
  // as arrived, then saving until the checkpoint is written or failed.
  struct Round {
    int64_t id = 0;
    std::string reason;
    bool saving = false;
    std::set<int> arrived;
    // Per server, the incarnation the arrived workers reported.
    std::vector<uint64_t> seen;
    std::vector<RoundDone> waiters;
  };
  // An arrival (or, without one, a request) that came while a round was
  // saving: it belongs to the next round.
  struct Queued {
    std::optional<Arrival> arrival;
    std::string reason;
    RoundDone done;
  };
  // What a save works from, copied when the cut is taken.
  struct Cut {
    int64_t round_id = 0;
    std::map<int, WorkerStand> stands;
    std::optional<Manifest> previous;
    std::string previous_dir;
    std::vector<uint64_t> seen;  // CoordinatorOptions::save's
  };

  absl::Time Now() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return options_.clock();
  }
  absl::Status CheckRank(int rank) const;
  // InvalidArgument unless 0 <= step < 10^10 (kMaxCheckpointStep): a
  // request's step takes part in the gates' arithmetic and names
  // checkpoint folders.
  absl::Status CheckStep(int64_t step) const;
  // Unavailable once Stop() has begun.
  absl::Status CheckRunning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CheckGeneration, then Aborted ("... fenced until it registers again")
  // when worker `rank` was declared dead (silent past worker_timeout_ms):
  // it stays fenced, whatever it calls, until Register.
  absl::Status CheckCaller(int rank, int64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Aborted ("job rolled back ...") unless `generation` is the job's and no
  // rollback is running.
  absl::Status CheckGeneration(int rank, int64_t generation) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool checkpoints_enabled() const { return static_cast<bool>(options_.save); }

  // The bodies of the public calls, under the lock.
  void RegisterLocked(int rank, RegisterResponse* response, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ParkAtBarrier(const BarrierRequest& request, BarrierResponse* response,
                     Done done, Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ParkAtGate(const StepGateRequest& request, StepGateResponse* response,
                  Done done, Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickLocked(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void SetStand(int rank, int64_t step, const DataPosition& position)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands `released` calls to `out` with OK, or holds them until the save in
  // progress is done.
  void ReleaseOrDefer(std::vector<Resume> released, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lets go the gate calls that may go now (StepGates::Release).
  void ReleaseGates(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Opens a round unless one is open (gates let their calls go so those
  // workers arrive).
  void OpenRound(const std::string& reason, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Arrive(Arrival arrival, RoundDone done, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Request(const std::string& reason, RoundDone done, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When every worker counts as arrived at the open round, marks it saving
  // and starts RunSave on a background thread.
  void MaybeStartSave() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the cut's checkpoint, then EndRound. Without the lock.
  void RunSave(const Cut& cut) ABSL_LOCKS_EXCLUDED(mu_);
  // Records a written checkpoint, answers the round's calls, runs the
  // releases held for it and the arrivals queued behind it.
  void EndRound(const Cut& cut, const Manifest& manifest,
                const absl::Status& status, const std::string& dir)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Starts a rollback unless one runs: AbortForRollback, then RunRecovery
  // on a background thread.
  void StartRollback(const std::string& reason, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends every parked call for a rollback (see Recover).
  void AbortForRollback(const std::string& reason, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reloads the newest checkpoint on every server, then answers the
  // Recover calls. Without the lock, on a background thread.
  void RunRecovery(const std::string& reason) ABSL_LOCKS_EXCLUDED(mu_);
  // No checkpoint is being written (or the core stops): RunRecovery's wait.
  bool NoSaveRunning() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Every worker finished: the final checkpoint (if any), then JobEnded.
  void EndJob(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls on_all_finished with outcome() unless stopping.
  void JobEnded() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OutcomeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const CoordinatorOptions options_;
  const int num_workers_;
  const int num_servers_;

  // Lock invariants, besides those of the pieces (coordinator_state.h):
  //  - round_ is saving iff a RunSave for it is running; at most one is;
  //  - while round_ is saving, every barrier or gate call let go waits in
  //    deferred_ and every arrival or request in queued_; both are empty
  //    otherwise;
  //  - a parked call is in exactly one place (barriers_, gates_,
  //    round_->waiters, deferred_, queued_) or in an Outbox being run;
  //  - once stop_ is set everything above is empty and stays so (a save
  //    already running still records its checkpoint).
  mutable absl::Mutex mu_;
  Membership members_ ABSL_GUARDED_BY(mu_);
  BarrierTable barriers_ ABSL_GUARDED_BY(mu_);
  StepGates gates_ ABSL_GUARDED_BY(mu_);
  std::map<int, WorkerStand> stands_ ABSL_GUARDED_BY(mu_);
  std::optional<Round> round_ ABSL_GUARDED_BY(mu_);
  int64_t next_round_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Resume> deferred_ ABSL_GUARDED_BY(mu_);
  std::vector<Queued> queued_ ABSL_GUARDED_BY(mu_);
  // The newest complete checkpoint (the resumed one at start).
  std::optional<Manifest> last_manifest_ ABSL_GUARDED_BY(mu_);
  std::string last_dir_ ABSL_GUARDED_BY(mu_);
  int checkpoints_taken_ ABSL_GUARDED_BY(mu_) = 0;
  // Workers whose latest Finish reported a failure, and the error; a
  // worker's entry goes when it registers again.
  std::map<int, std::string> failed_ ABSL_GUARDED_BY(mu_);
  absl::Time last_checkpoint_time_ ABSL_GUARDED_BY(mu_);
  // Every worker finished once (the job's end has begun).
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Rollbacks so far; one is running while recovering_.
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool recovering_ ABSL_GUARDED_BY(mu_) = false;
  // A rollback has reloaded the servers since this coordinator started.
  bool reloaded_ ABSL_GUARDED_BY(mu_) = false;
  struct RecoverWaiter {
    RecoverResponse* response;
    Done done;
  };
  std::vector<RecoverWaiter> recover_waiters_ ABSL_GUARDED_BY(mu_);
  struct EndWaiter {
    WaitJobEndResponse* response;
    Done done;
  };
  std::vector<EndWaiter> end_waiters_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  // Workers declared dead that called since: refused until they register.
  std::set<int> fenced_ ABSL_GUARDED_BY(mu_);
  // The final save was refused because a server restarted (its message).
  std::string final_save_refused_ ABSL_GUARDED_BY(mu_);

  // Saves and on_all_finished, off the callers' threads.
  BackgroundTasks tasks_;
  std::thread timer_;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_COORDINATOR_CORE_H_
