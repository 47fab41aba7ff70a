// The job Coordinator, served by server 0: worker registration, heartbeats,
// barriers, BOUNDED step gates, coordinated checkpoints and the end of the
// job. Calls that wait (Barrier, StepGate, CheckpointArrive,
// RequestCheckpoint) are parked: their reactors are kept and nothing blocks
// a gRPC thread. When every worker has called Finish (and the final
// checkpoint, if the job has checkpoints, is written), `on_all_finished` is
// called once. Thread-safe.
//
// Checkpoints (when options.save is set): a round opens on ps_ctl's
// RequestCheckpoint, every checkpoint.every_minutes, or when a worker
// arrives for a step multiple of checkpoint.every_steps. Workers learn of an
// open round from Heartbeat or StepGate answers and arrive (CheckpointArrive)
// at their next step boundary with every push acknowledged; a worker parked
// in a Barrier (which reports its position), finished, or dead (no heartbeat
// within cluster.worker_timeout_ms) counts as arrived. Once all have, the
// round's cut is taken: every server writes its tables (options.save), the
// manifest records each worker's position and step, and CommitCheckpoint
// makes it LATEST; barrier and gate releases wait until then, so no worker
// pushes past the cut while servers write. Arrived calls then return.
#ifndef PS_SERVER_COORDINATOR_COORDINATOR_H_
#define PS_SERVER_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/rpc_security.h"
#include "common/thread_pool.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "proto/ps.grpc.pb.h"

namespace ps {

struct CoordinatorOptions {
  int num_workers = 1;
  int num_servers = 1;
  // The job (checkpoint settings, the config recorded in manifests).
  JobConfig config;
  std::function<void()> on_all_finished;
  // Writes every server's part of a checkpoint into folder `dir` at `step`
  // and returns all files written. Unset: checkpoints are refused.
  std::function<absl::StatusOr<std::vector<CheckpointFile>>(
      const std::string& dir, int64_t step)>
      save;
  // The checkpoint the servers restored at start (workers resume from it).
  std::optional<Manifest> resumed;
  std::string resumed_dir;
  // What checkpoint.every_minutes counts in. Default: a minute (tests
  // shorten it).
  absl::Duration minute = absl::Minutes(1);
  // Every call is checked against it (its token) first. Default: none.
  std::shared_ptr<const RpcSecurity> security = RpcSecurity::None();
};

class CoordinatorImpl final : public Coordinator::CallbackService {
 public:
  explicit CoordinatorImpl(CoordinatorOptions options);
  // Convenience for jobs without checkpoints.
  CoordinatorImpl(int num_workers, int num_servers,
                  std::function<void()> on_all_finished);
  ~CoordinatorImpl() override;

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const RegisterRequest* request,
                                     RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Barrier(grpc::CallbackServerContext* context,
                                    const BarrierRequest* request,
                                    BarrierResponse* response) override;
  grpc::ServerUnaryReactor* StepGate(grpc::CallbackServerContext* context,
                                     const StepGateRequest* request,
                                     StepGateResponse* response) override;
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                   const FinishRequest* request,
                                   FinishResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const HeartbeatRequest* request,
                                      HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* CheckpointArrive(
      grpc::CallbackServerContext* context,
      const CheckpointArriveRequest* request,
      CheckpointArriveResponse* response) override;
  grpc::ServerUnaryReactor* RequestCheckpoint(
      grpc::CallbackServerContext* context,
      const RequestCheckpointRequest* request,
      RequestCheckpointResponse* response) override;

  // The largest lead (step - slowest active worker's step) with which
  // StepGate let a worker go: at most its staleness. For tests and logs.
  int64_t max_granted_lead() const;
  // Checkpoints completed since start (tests).
  int checkpoints_taken() const;

 private:
  struct Waiting {
    grpc::ServerUnaryReactor* reactor;
    BarrierResponse* response;
  };
  struct PendingBarrier {
    std::set<int> ranks;
    std::vector<Waiting> waiting;
    bool any_has_more = false;
  };
  struct GateWaiter {
    int rank;
    int64_t step;
    int32_t staleness;
    grpc::ServerUnaryReactor* reactor;
    StepGateResponse* response;
  };
  // Where a worker stands for a checkpoint.
  struct Stand {
    int64_t step = 0;
    DataPosition position;
    bool known = false;  // position reported (else: from the last checkpoint)
  };
  // A checkpoint round: open (collecting arrivals) until every worker
  // stands still, then saving.
  using RoundDone = std::function<void(const absl::Status& status,
                                       const std::string& dir, int64_t step)>;
  struct Round {
    int64_t id = 0;
    std::string reason;
    bool saving = false;
    std::set<int> arrived;
    // Called (without the lock) when the round's checkpoint is complete or
    // failed: the parked CheckpointArrive and RequestCheckpoint calls.
    std::vector<RoundDone> done;
  };

  absl::Status CheckRank(int rank) const;
  int64_t SlowestActive(int64_t fallback) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CollectReleasable(std::vector<GateWaiter>* release)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Dead(int rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool checkpoints_enabled() const { return static_cast<bool>(options_.save); }

  // Opens a round unless one is open; returns its id.
  int64_t OpenRound(const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When the open round is complete, marks it saving and starts the save on
  // a thread.
  void MaybeStartSave() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the round's checkpoint, answers its callers, runs deferred
  // releases. On its own thread.
  void RunSave(std::map<int, Stand> stands);
  // CheckpointArrive / RequestCheckpoint under the lock (re-run after a save
  // in progress when one is).
  void Arrive(int rank, int64_t step, const DataPosition& position, int64_t id,
              RoundDone done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Request(const std::string& reason, RoundDone done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After the save in progress: takes the lock, runs `locked` and then what
  // it left in deferred_now_.
  void RerunAfterSave(std::function<void()> locked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `release` now, or after the save in progress.
  void ReleaseOrDefer(std::function<void()> release)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the final checkpoint (if enabled), then on_all_finished.
  void FinishJob();
  void TimerLoop();

  const CoordinatorOptions options_;
  const int num_workers_;
  const int num_servers_;

  mutable absl::Mutex mu_;
  std::set<int> registered_ ABSL_GUARDED_BY(mu_);
  std::set<int> finished_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PendingBarrier> barriers_ ABSL_GUARDED_BY(mu_);
  // Workers parked in a barrier.
  std::set<int> in_barrier_ ABSL_GUARDED_BY(mu_);
  // StepGate: each worker's reported step (0 until it reports), who is done,
  // and the parked calls.
  std::map<int, int64_t> progress_ ABSL_GUARDED_BY(mu_);
  std::set<int> done_ ABSL_GUARDED_BY(mu_);
  std::vector<GateWaiter> gate_waiters_ ABSL_GUARDED_BY(mu_);
  int64_t max_granted_lead_ ABSL_GUARDED_BY(mu_) = 0;

  // Heartbeats and checkpoints.
  std::map<int, absl::Time> last_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::map<int, Stand> stands_ ABSL_GUARDED_BY(mu_);
  std::optional<Round> round_ ABSL_GUARDED_BY(mu_);
  int64_t next_round_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Releases held until the save in progress is written, and those to run
  // as soon as the lock is let go.
  std::vector<std::function<void()>> deferred_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> deferred_now_ ABSL_GUARDED_BY(mu_);
  // The newest complete checkpoint (the resumed one at start).
  std::optional<Manifest> last_manifest_ ABSL_GUARDED_BY(mu_);
  std::string last_dir_ ABSL_GUARDED_BY(mu_);
  int checkpoints_taken_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_checkpoint_time_ ABSL_GUARDED_BY(mu_);
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Saves and the end of the job, off the gRPC threads.
  BackgroundTasks tasks_;
  std::thread timer_;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_COORDINATOR_H_
