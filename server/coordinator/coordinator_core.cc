#include "server/coordinator/coordinator_core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "server/coordinator/checkpoint_cut.h"

namespace ps {

// Completions collected under the lock and run, in order, after it is
// released (the core never runs a caller's callback while holding it).
class CoordinatorCore::Outbox {
 public:
  Outbox() = default;
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  ~Outbox() { DCHECK(tasks_.empty()) << "an Outbox was not run"; }

  void Finish(Resume resume, absl::Status status) {
    tasks_.push_back([resume = std::move(resume), status]() mutable {
      std::move(resume)(status);
    });
  }
  void FinishAll(std::vector<Resume> resumes, const absl::Status& status) {
    for (Resume& r : resumes) Finish(std::move(r), status);
  }
  void Answer(RoundDone done, absl::Status status, std::string dir,
              int64_t step) {
    tasks_.push_back([done = std::move(done), status, dir = std::move(dir),
                      step]() mutable { std::move(done)(status, dir, step); });
  }
  void Run() {
    std::vector<absl::AnyInvocable<void()&&>> tasks = std::move(tasks_);
    tasks_.clear();
    for (auto& task : tasks) std::move(task)();
  }

 private:
  std::vector<absl::AnyInvocable<void() &&>> tasks_;
};

namespace {

// Whether a Finish reports a failure: its status is neither "ok" nor empty
// (callers that predate the field).
bool FinishFailed(const FinishRequest& request) {
  return !request.status().empty() && request.status() != "ok";
}

absl::Status Stopping(absl::string_view waited_for) {
  return absl::UnavailableError(absl::StrCat(
      "coordinator stopping (server 0 shuts down) while the call waited for ",
      waited_for));
}

// Answers a parked CheckpointArrive or RequestCheckpoint: both responses
// carry the folder and the global step.
template <typename Response>
auto AnswerRound(Response* response, CoordinatorCore::Done done) {
  return [response, done = std::move(done)](const absl::Status& status,
                                            const std::string& dir,
                                            int64_t step) mutable {
    response->set_dir(dir);
    response->set_global_step(step);
    std::move(done)(status);
  };
}

}  // namespace

CoordinatorCore::CoordinatorCore(CoordinatorOptions options)
    : options_(std::move(options)),
      num_workers_(options_.num_workers),
      num_servers_(options_.num_servers),
      members_(
          num_workers_,
          absl::Milliseconds(options_.config.cluster().worker_timeout_ms())),
      barriers_(num_workers_),
      gates_(num_workers_) {
  CHECK(options_.clock) << "CoordinatorOptions::clock is unset";
  absl::MutexLock lock(&mu_);
  generation_ = options_.first_generation;
  last_checkpoint_time_ = Now();
  if (options_.resumed.has_value()) {
    last_manifest_ = options_.resumed;
    last_dir_ = options_.resumed_dir;
  }
  if (options_.tick_every > absl::ZeroDuration()) {
    timer_ = std::thread([this] { TimerLoop(); });
  }
}

CoordinatorCore::~CoordinatorCore() {
  Stop();
  tasks_.WaitAll();
}

absl::Status CoordinatorCore::CheckRank(int rank) const {
  if (rank < 0 || rank >= num_workers_) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker rank ", rank, " is out of range: the job has ",
                     num_workers_, " workers"));
  }
  return absl::OkStatus();
}

absl::Status CoordinatorCore::CheckStep(int64_t step) const {
  if (step < 0 || step >= kMaxCheckpointStep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step ", step, " is out of range: steps are in [0, 10^10)"));
  }
  return absl::OkStatus();
}

absl::Status CoordinatorCore::CheckGeneration(int rank,
                                              int64_t generation) const {
  if (generation == generation_ && !recovering_) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      "job rolled back: worker ", rank, " registered in generation ",
      generation, ", the job is in generation ", generation_,
      recovering_ ? " and rolling back now" : "", "; register again"));
}

absl::Status CoordinatorCore::CheckCaller(int rank, int64_t generation) {
  RETURN_IF_ERROR(CheckGeneration(rank, generation));
  if (fenced_.count(rank) == 0 && !members_.Dead(rank, Now())) {
    return absl::OkStatus();
  }
  if (fenced_.insert(rank).second) {
    LOG(WARNING) << "coordinator: worker " << rank
                 << " is back after being declared dead: fenced until it "
                    "registers again";
  }
  return absl::AbortedError(
      absl::StrCat("worker ", rank,
                   " was declared dead (no heartbeat for more than "
                   "cluster.worker_timeout_ms ",
                   options_.config.cluster().worker_timeout_ms(),
                   " ms): fenced until it registers again"));
}

absl::Status CoordinatorCore::CheckRunning() const {
  if (stop_) {
    return absl::UnavailableError(
        "coordinator stopping (server 0 shuts down): it takes no more calls");
  }
  return absl::OkStatus();
}

absl::Status CoordinatorCore::Register(const RegisterRequest& request,
                                       RegisterResponse* response) {
  const int rank = request.worker_rank();
  RETURN_IF_ERROR(CheckRank(rank));
  if (request.num_workers() != num_workers_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", rank, " was configured for ", request.num_workers(),
        " workers, the coordinator for ", num_workers_));
  }
  bool rolling_back = false;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckRunning());
    if (recovering_) {
      return absl::UnavailableError(
          "the job is rolling back: register again shortly");
    }
    // SYNC workers step together: one restarted alone would meet the others
    // at other barriers, so everyone rewinds to the checkpoint with it.
    if (members_.registered(rank) && !finishing_ && options_.reload &&
        options_.config.training().mode() == TrainingConfig::SYNC) {
      StartRollback(absl::StrCat("worker ", rank,
                                 " restarted; SYNC workers rewind together"),
                    &out);
      rolling_back = true;
    } else {
      RegisterLocked(rank, response, &out);
    }
  }
  out.Run();
  if (rolling_back) {
    return absl::UnavailableError(
        "the job is rolling back: register again shortly");
  }
  return absl::OkStatus();
}

void CoordinatorCore::RegisterLocked(int rank, RegisterResponse* response,
                                     Outbox* out) {
  const bool again = members_.Register(rank, Now());
  if (again) {
    // A restarted worker: the calls its earlier run left parked have no
    // caller any more, and its new calls start clean (a barrier it waited
    // at would otherwise count it as arrived).
    std::vector<ParkedCall> left = barriers_.Leave(rank);
    for (ParkedCall& call : gates_.Leave(rank)) left.push_back(std::move(call));
    for (ParkedCall& call : left) {
      out->Finish(std::move(call.resume),
                  absl::AbortedError(absl::StrCat(
                      "worker ", rank,
                      " registered again (restarted) while this call waited "
                      "at ",
                      call.what)));
    }
  }
  failed_.erase(rank);
  fenced_.erase(rank);
  gates_.SetDone(rank, false);
  response->set_num_servers(num_servers_);
  response->set_generation(generation_);
  // A worker (re)starting continues from the newest checkpoint's record of
  // it, if there is one.
  WorkerStand stand;
  if (last_manifest_.has_value() && FindWorker(*last_manifest_, rank, &stand)) {
    *response->mutable_resume_position() = stand.position;
    response->set_resume_step(stand.step);
    response->set_resumed_from(last_dir_);
    gates_.SetStep(rank, stand.step);
    stands_[rank] = stand;
  }
  LOG(INFO) << "coordinator: worker " << rank
            << (again ? " registered again (restarted)" : " registered") << " ("
            << members_.num_registered() << "/" << num_workers_ << ")"
            << (response->resumed_from().empty()
                    ? ""
                    : absl::StrCat(", resumes from ", response->resumed_from(),
                                   " at step ", response->resume_step()));
}

absl::Status CoordinatorCore::Heartbeat(const HeartbeatRequest& request,
                                        HeartbeatResponse* response) {
  const int rank = request.worker_rank();
  RETURN_IF_ERROR(CheckRank(rank));
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(CheckRunning());
  RETURN_IF_ERROR(CheckCaller(rank, request.generation()));
  const Membership::HeartbeatNews news = members_.Heartbeat(rank, Now());
  if (news.was_dead) {
    LOG(WARNING) << "coordinator: worker " << rank
                 << " is back after missing its heartbeats";
  }
  // A worker that registered with an earlier coordinator (server 0 was
  // restarted) is alive and training: checkpoint rounds must wait for it.
  if (news.was_unknown) {
    LOG(WARNING) << "coordinator: worker " << rank
                 << " sends heartbeats without having registered here "
                    "(coordinator restarted?); counting it as registered";
  }
  if (round_.has_value() && !round_->saving &&
      round_->arrived.count(rank) == 0) {
    response->set_checkpoint_pending(round_->id);
  }
  MaybeStartSave();
  return absl::OkStatus();
}

absl::Status CoordinatorCore::Finish(const FinishRequest& request) {
  FinishResponse response;
  return Finish(request, &response);
}

absl::Status CoordinatorCore::Finish(const FinishRequest& request,
                                     FinishResponse* response) {
  const int rank = request.worker_rank();
  RETURN_IF_ERROR(CheckRank(rank));
  RETURN_IF_ERROR(CheckStep(request.step()));
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckRunning());
    // A failure is recorded whatever the generation: the job must not wait
    // for a worker that stopped.
    if (!FinishFailed(request)) {
      RETURN_IF_ERROR(CheckCaller(rank, request.generation()));
    }
    members_.Finish(rank);
    gates_.SetDone(rank, true);
    if (request.has_position()) {
      SetStand(rank, request.step(), request.position());
    }
    ReleaseGates(&out);
    if (FinishFailed(request)) {
      failed_[rank] = request.status();
      LOG(ERROR) << "coordinator: worker " << rank
                 << " failed: " << request.status() << " ("
                 << request.examples() << " examples); "
                 << members_.num_finished() << "/" << num_workers_ << " done";
    } else {
      failed_.erase(rank);
      LOG(INFO) << "coordinator: worker " << rank << " finished ("
                << request.examples() << " examples); "
                << members_.num_finished() << "/" << num_workers_ << " done";
    }
    if (members_.all_finished() && !finishing_) {
      finishing_ = true;
      response->set_job_ending(true);
      EndJob(&out);
    }
    MaybeStartSave();
  }
  out.Run();
  return absl::OkStatus();
}

void CoordinatorCore::Barrier(const BarrierRequest& request,
                              BarrierResponse* response, Done done) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    ParkAtBarrier(request, response, std::move(done), &out);
  }
  out.Run();
}

void CoordinatorCore::ParkAtBarrier(const BarrierRequest& request,
                                    BarrierResponse* response, Done done,
                                    Outbox* out) {
  const int rank = request.worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok()) status = CheckStep(request.step());
  if (status.ok()) status = CheckRunning();
  if (status.ok()) status = CheckCaller(rank, request.generation());
  if (!status.ok()) {
    out->Finish(std::move(done), status);
    return;
  }
  std::vector<Resume> released;
  std::optional<Resume> superseded =
      barriers_.Arrive(request.name(), rank, request.has_more(), response,
                       std::move(done), &released);
  if (superseded.has_value()) {
    // A retry after a dropped connection: the earlier call's caller has gone.
    out->Finish(std::move(*superseded),
                absl::AbortedError(absl::StrCat(
                    "worker ", rank, " arrived at barrier '", request.name(),
                    "' again: this call was superseded by the newer arrival "
                    "of the same worker")));
  }
  if (request.has_position()) {
    SetStand(rank, request.step(), request.position());
  }
  ReleaseOrDefer(std::move(released), out);
  MaybeStartSave();
}

void CoordinatorCore::StepGate(const StepGateRequest& request,
                               StepGateResponse* response, Done done) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    ParkAtGate(request, response, std::move(done), &out);
  }
  out.Run();
}

void CoordinatorCore::ParkAtGate(const StepGateRequest& request,
                                 StepGateResponse* response, Done done,
                                 Outbox* out) {
  const int rank = request.worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok()) status = CheckStep(request.step());
  if (status.ok() && request.staleness() < 0) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "StepGate: staleness must be >= 0, got ", request.staleness()));
  }
  if (status.ok()) status = CheckRunning();
  if (status.ok()) status = CheckCaller(rank, request.generation());
  if (!status.ok()) {
    out->Finish(std::move(done), status);
    return;
  }
  if (request.done()) {
    gates_.SetDone(rank, true);
    out->Finish(std::move(done), absl::OkStatus());
  } else {
    gates_.SetStep(rank, request.step());
    gates_.Park(rank, request.step(), request.staleness(), response,
                std::move(done));
  }
  ReleaseGates(out);
}

void CoordinatorCore::CheckpointArrive(const CheckpointArriveRequest& request,
                                       CheckpointArriveResponse* response,
                                       Done done) {
  const int rank = request.worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok()) status = CheckStep(request.step());
  if (status.ok() && !checkpoints_enabled()) {
    status = absl::FailedPreconditionError(
        "CheckpointArrive: the job has no checkpoint section in its config");
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) status = CheckRunning();
    if (status.ok()) status = CheckCaller(rank, request.generation());
    if (status.ok()) {
      Arrival arrival{rank,
                      request.step(),
                      request.position(),
                      request.checkpoint_id(),
                      {request.server_incarnations().begin(),
                       request.server_incarnations().end()}};
      arrival.position.set_worker_rank(rank);
      Arrive(std::move(arrival), AnswerRound(response, std::move(done)), &out);
    } else {
      out.Finish(std::move(done), status);
    }
  }
  out.Run();
}

void CoordinatorCore::RequestCheckpoint(const RequestCheckpointRequest& request,
                                        RequestCheckpointResponse* response,
                                        Done done) {
  absl::Status status;
  if (!checkpoints_enabled()) {
    status = absl::FailedPreconditionError(
        "checkpoint refused: the job has no checkpoint section in its config "
        "(checkpoint { dir: ... })");
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) status = CheckRunning();
    if (status.ok()) {
      Request(request.reason().empty() ? "requested" : request.reason(),
              AnswerRound(response, std::move(done)), &out);
    } else {
      out.Finish(std::move(done), status);
    }
  }
  out.Run();
}

void CoordinatorCore::Tick() {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    TickLocked(&out);
  }
  out.Run();
}

void CoordinatorCore::TickLocked(Outbox* out) {
  if (stop_) return;
  const int every_minutes = options_.config.checkpoint().every_minutes();
  if (checkpoints_enabled() && every_minutes > 0 && !finishing_ &&
      members_.num_registered() > 0 && !round_.has_value() &&
      Now() - last_checkpoint_time_ >= options_.minute * every_minutes) {
    OpenRound(absl::StrCat("every ", every_minutes, " minutes"), out);
  }
  // A worker that died may have been what a gate or a round waited for.
  ReleaseGates(out);
  MaybeStartSave();
}

void CoordinatorCore::Stop() {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    int ended = 0;
    for (ParkedCall& call : barriers_.TakeAll()) {
      out.Finish(std::move(call.resume), Stopping(call.what));
      ++ended;
    }
    for (ParkedCall& call : gates_.TakeAll()) {
      out.Finish(std::move(call.resume), Stopping(call.what));
      ++ended;
    }
    for (Resume& r : std::exchange(deferred_, {})) {
      out.Finish(std::move(r), Stopping("a checkpoint being written"));
      ++ended;
    }
    if (round_.has_value()) {
      const std::string what = absl::StrCat("checkpoint round ", round_->id,
                                            " (", round_->reason, ")");
      for (RoundDone& d : round_->waiters) {
        out.Answer(std::move(d), Stopping(what), "", 0);
        ++ended;
      }
      round_.reset();
    }
    for (Queued& q : std::exchange(queued_, {})) {
      out.Answer(std::move(q.done), Stopping("a checkpoint being written"), "",
                 0);
      ++ended;
    }
    for (RecoverWaiter& w : std::exchange(recover_waiters_, {})) {
      out.Finish(std::move(w.done), Stopping("a rollback"));
      ++ended;
    }
    for (EndWaiter& w : std::exchange(end_waiters_, {})) {
      out.Finish(std::move(w.done), Stopping("the job's end"));
      ++ended;
    }
    LOG(INFO) << "coordinator: stopping; " << ended << " parked calls ended";
  }
  out.Run();
  if (timer_.joinable()) timer_.join();
}

void CoordinatorCore::Recover(const RecoverRequest& request,
                              RecoverResponse* response, Done done) {
  absl::Status bad = CheckRank(request.worker_rank());
  if (!bad.ok()) {
    std::move(done)(bad);
    return;
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    absl::Status refused = CheckRunning();
    if (refused.ok() && !options_.reload) {
      refused = absl::FailedPreconditionError(
          "this coordinator cannot roll the job back (no reload)");
    }
    if (refused.ok() && finishing_) {
      refused =
          absl::FailedPreconditionError("the job's end has begun: no rollback");
    }
    if (!refused.ok()) {
      out.Finish(std::move(done), refused);
    } else if (request.generation() < generation_ && !recovering_ &&
               reloaded_) {
      response->set_generation(generation_);
      response->set_checkpoint_dir(last_dir_);
      out.Finish(std::move(done), absl::OkStatus());
    } else {
      recover_waiters_.push_back({response, std::move(done)});
      StartRollback(absl::StrCat("worker ", request.worker_rank(), ": ",
                                 request.reason()),
                    &out);
    }
  }
  out.Run();
}

void CoordinatorCore::StartRollback(const std::string& reason, Outbox* out) {
  if (recovering_) return;
  recovering_ = true;
  LOG(WARNING) << "coordinator: the job rolls back to "
               << (last_dir_.empty() ? std::string("its start") : last_dir_)
               << " (" << reason << ")";
  AbortForRollback(reason, out);
  tasks_.Run([this, reason] { RunRecovery(reason); });
}

void CoordinatorCore::AbortForRollback(const std::string& reason, Outbox* out) {
  auto aborted = [&](absl::string_view what) {
    return absl::AbortedError(absl::StrCat(
        "job rolls back (", reason, ") while this call waited for ", what));
  };
  for (ParkedCall& call : barriers_.TakeAll()) {
    out->Finish(std::move(call.resume), aborted(call.what));
  }
  for (ParkedCall& call : gates_.TakeAll()) {
    out->Finish(std::move(call.resume), aborted(call.what));
  }
  if (round_.has_value() && !round_->saving) {
    for (RoundDone& d : round_->waiters) {
      out->Answer(std::move(d), aborted("a checkpoint round"), "", 0);
    }
    round_.reset();
  }
  // A round being written ends by itself (RunRecovery waits for it).
  for (EndWaiter& w : std::exchange(end_waiters_, {})) {
    w.response->set_rolled_back(true);
    w.response->set_generation(generation_ + 1);
    out->Finish(std::move(w.done), absl::OkStatus());
  }
}

bool CoordinatorCore::NoSaveRunning() const {
  return !round_.has_value() || !round_->saving || stop_;
}

void CoordinatorCore::RunRecovery(const std::string& reason) {
  // A checkpoint being written is finished first: its cut predates the
  // restart (or its save fails, finding the restarted server).
  std::string dir;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &CoordinatorCore::NoSaveRunning));
    dir = last_dir_;
  }
  const absl::Status status = options_.reload(dir);
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    recovering_ = false;
    if (status.ok()) {
      ++generation_;
      reloaded_ = true;
      // Every worker registers again and resumes from `dir`.
      // AbortForRollback emptied the barriers and gates, and no call could
      // park since (CheckCaller refuses while recovering_).
      members_.Reset();
      gates_.ResetSteps();
      stands_.clear();
      failed_.clear();
      fenced_.clear();
      LOG(WARNING) << "coordinator: job rolled back to "
                   << (dir.empty() ? std::string("its start") : dir)
                   << ", generation " << generation_ << " (" << reason << ")";
    } else {
      LOG(ERROR) << "coordinator: rollback to "
                 << (dir.empty() ? std::string("the start") : dir)
                 << " failed: " << status;
    }
    for (RecoverWaiter& w : std::exchange(recover_waiters_, {})) {
      w.response->set_generation(generation_);
      w.response->set_checkpoint_dir(dir);
      out.Finish(std::move(w.done), status);
    }
  }
  out.Run();
}

void CoordinatorCore::WaitJobEnd(const WaitJobEndRequest& request,
                                 WaitJobEndResponse* response, Done done) {
  absl::Status bad = CheckRank(request.worker_rank());
  if (!bad.ok()) {
    std::move(done)(bad);
    return;
  }
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    absl::Status refused = CheckRunning();
    if (!refused.ok()) {
      out.Finish(std::move(done), refused);
    } else if (request.generation() < generation_) {
      response->set_rolled_back(true);
      response->set_generation(generation_);
      out.Finish(std::move(done), absl::OkStatus());
    } else if (ended_) {
      response->set_generation(generation_);
      out.Finish(std::move(done), absl::OkStatus());
    } else {
      end_waiters_.push_back({response, std::move(done)});
    }
  }
  out.Run();
}

int64_t CoordinatorCore::generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

int64_t CoordinatorCore::max_granted_lead() const {
  absl::MutexLock lock(&mu_);
  return gates_.max_granted_lead();
}

int CoordinatorCore::checkpoints_taken() const {
  absl::MutexLock lock(&mu_);
  return checkpoints_taken_;
}

void CoordinatorCore::SetStand(int rank, int64_t step,
                               const DataPosition& position) {
  WorkerStand& stand = stands_[rank];
  stand.step = step;
  stand.position = position;
}

void CoordinatorCore::ReleaseOrDefer(std::vector<Resume> released,
                                     Outbox* out) {
  if (round_.has_value() && round_->saving) {
    // Not past the cut while it is written: after the save.
    for (Resume& r : released) deferred_.push_back(std::move(r));
    return;
  }
  out->FinishAll(std::move(released), absl::OkStatus());
}

void CoordinatorCore::ReleaseGates(Outbox* out) {
  const int64_t open_round =
      round_.has_value() && !round_->saving ? round_->id : 0;
  ReleaseOrDefer(gates_.Release(members_.DeadWorkers(Now()), open_round), out);
}

void CoordinatorCore::OpenRound(const std::string& reason, Outbox* out) {
  if (round_.has_value()) return;
  Round round;
  round.id = next_round_id_++;
  round.reason = reason;
  round_ = std::move(round);
  LOG(INFO) << "coordinator: checkpoint round " << round_->id << " opened ("
            << reason << ")";
  // Workers held at a gate go and arrive.
  ReleaseGates(out);
}

void CoordinatorCore::Arrive(Arrival arrival, RoundDone done, Outbox* out) {
  if (round_.has_value() && round_->saving) {
    // A cut is being written: this arrival belongs to the next round.
    queued_.push_back({std::move(arrival), "", std::move(done)});
    return;
  }
  if (arrival.id > 0 && (!round_.has_value() || round_->id != arrival.id)) {
    // Late for a round that is over: nothing to wait for.
    out->Answer(std::move(done), absl::OkStatus(), last_dir_,
                last_manifest_.has_value() ? last_manifest_->global_step() : 0);
    return;
  }
  OpenRound(absl::StrCat("worker ", arrival.rank, " at step ", arrival.step),
            out);
  round_->arrived.insert(arrival.rank);
  round_->waiters.push_back(std::move(done));
  std::vector<uint64_t>& seen = round_->seen;
  seen.resize(std::max(seen.size(), arrival.incarnations.size()), 0);
  for (size_t i = 0; i < arrival.incarnations.size(); ++i) {
    const uint64_t inc = arrival.incarnations[i];
    if (inc == 0 || seen[i] == inc) continue;
    seen[i] = seen[i] == 0 ? inc : kIncarnationsDisagree;
  }
  SetStand(arrival.rank, arrival.step, arrival.position);
  gates_.SetStep(arrival.rank, arrival.step);
  MaybeStartSave();
}

void CoordinatorCore::Request(const std::string& reason, RoundDone done,
                              Outbox* out) {
  if (round_.has_value() && round_->saving) {
    queued_.push_back({std::nullopt, reason, std::move(done)});
    return;
  }
  OpenRound(reason, out);
  round_->waiters.push_back(std::move(done));
  MaybeStartSave();
}

void CoordinatorCore::MaybeStartSave() {
  if (!round_.has_value() || round_->saving || stop_) return;
  const absl::Time now = Now();
  // Before any worker registered nobody stands anywhere: nothing to wait for.
  if (members_.num_registered() > 0) {
    for (int r = 0; r < num_workers_; ++r) {
      const bool counted = round_->arrived.count(r) > 0 ||
                           members_.finished(r) || barriers_.Parked(r) ||
                           members_.Dead(r, now);
      if (!counted) return;
    }
  }
  round_->saving = true;
  Cut cut;
  cut.round_id = round_->id;
  for (int r = 0; r < num_workers_; ++r) {
    auto it = stands_.find(r);
    if (it != stands_.end()) cut.stands[r] = it->second;
    if (members_.Dead(r, now)) {
      LOG(WARNING) << "coordinator: worker " << r
                   << " is dead (no heartbeat); checkpoint round " << round_->id
                   << " records its last known position";
    }
  }
  cut.previous = last_manifest_;
  cut.previous_dir = last_dir_;
  cut.seen = round_->seen;
  tasks_.Run([this, cut] { RunSave(cut); });
}

void CoordinatorCore::RunSave(const Cut& cut) {
  Manifest manifest = BuildManifest(options_, cut.stands, cut.previous);
  absl::StatusOr<std::string> dir =
      WriteCheckpoint(options_, cut.previous_dir, cut.seen, &manifest);
  if (!dir.ok()) {
    LOG(ERROR) << "coordinator: checkpoint at step " << manifest.global_step()
               << " failed: " << dir.status();
  } else if (*dir != cut.previous_dir && options_.on_committed) {
    options_.on_committed(*dir, manifest.global_step(), /*final=*/false);
  }
  EndRound(cut, manifest, dir.status(), dir.ok() ? *dir : "");
}

void CoordinatorCore::EndRound(const Cut& cut, const Manifest& manifest,
                               const absl::Status& status,
                               const std::string& dir) {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok() && dir != cut.previous_dir) {
      last_manifest_ = manifest;
      last_dir_ = dir;
      ++checkpoints_taken_;
    }
    last_checkpoint_time_ = Now();
    // Else Stop() has answered the round's calls already.
    if (round_.has_value() && round_->id == cut.round_id) {
      for (RoundDone& d : round_->waiters) {
        out.Answer(std::move(d), status, dir, manifest.global_step());
      }
      round_.reset();
      out.FinishAll(std::exchange(deferred_, {}), absl::OkStatus());
      for (Queued& q : std::exchange(queued_, {})) {
        if (q.arrival.has_value()) {
          Arrive(std::move(*q.arrival), std::move(q.done), &out);
        } else {
          Request(q.reason, std::move(q.done), &out);
        }
      }
    }
  }
  out.Run();
}

void CoordinatorCore::EndJob(Outbox* out) {
  if (!checkpoints_enabled()) {
    tasks_.Run([this] { JobEnded(); });
    return;
  }
  Request(
      "end of training",
      [this](const absl::Status& status, const std::string& dir, int64_t step) {
        if (status.ok()) {
          LOG(INFO) << "coordinator: final checkpoint " << dir << " at step "
                    << step;
          if (options_.on_committed) {
            options_.on_committed(dir, step, /*final=*/true);
          }
        } else {
          LOG(ERROR) << "coordinator: final checkpoint failed: " << status;
          if (status.code() == absl::StatusCode::kFailedPrecondition &&
              absl::StrContains(status.message(), " restarted")) {
            absl::MutexLock lock(&mu_);
            final_save_refused_ = std::string(status.message());
          }
        }
        JobEnded();
      },
      out);
}

void CoordinatorCore::JobEnded() {
  absl::Status outcome;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    outcome = OutcomeLocked();
    ended_ = true;
    for (EndWaiter& w : std::exchange(end_waiters_, {})) {
      w.response->set_generation(generation_);
      out.Finish(std::move(w.done), absl::OkStatus());
    }
  }
  out.Run();
  if (outcome.ok()) {
    LOG(INFO) << "coordinator: job succeeded: all " << num_workers_
              << " workers finished";
  } else {
    LOG(ERROR) << "coordinator: " << outcome.message();
  }
  if (options_.on_all_finished) options_.on_all_finished(outcome);
}

absl::Status CoordinatorCore::outcome() const {
  absl::MutexLock lock(&mu_);
  return OutcomeLocked();
}

absl::Status CoordinatorCore::OutcomeLocked() const {
  if (!final_save_refused_.empty()) {
    // A server restarted after the last worker finished: its tables are not
    // the job's result, and no rollback can follow.
    return absl::AbortedError(absl::StrCat(
        "job failed: the final checkpoint was refused: ", final_save_refused_));
  }
  if (failed_.empty()) return absl::OkStatus();
  std::string text = "job failed: ";
  const char* sep = "";
  for (const auto& [rank, error] : failed_) {
    absl::StrAppend(&text, sep, "worker ", rank, ": ", error);
    sep = "; ";
  }
  absl::StrAppend(&text, " (", failed_.size(), " of ", num_workers_,
                  " workers failed)");
  return absl::AbortedError(text);
}

void CoordinatorCore::TimerLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.tick_every);
      if (stop_) return;
    }
    Tick();
  }
}

}  // namespace ps
