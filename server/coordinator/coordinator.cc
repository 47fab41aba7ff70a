#include "server/coordinator/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/checkpoint.h"
#include "common/grpc_status.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"

namespace ps {

namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                               const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Finishes a parked CheckpointArrive or RequestCheckpoint call with the
// round's outcome (both responses carry the folder and the step).
template <typename Response>
std::function<void(const absl::Status&, const std::string&, int64_t)>
FinishRound(grpc::ServerUnaryReactor* reactor, Response* response) {
  return [reactor, response](const absl::Status& s, const std::string& dir,
                             int64_t step) {
    response->set_dir(dir);
    response->set_global_step(step);
    reactor->Finish(ToGrpcStatus(s));
  };
}

CoordinatorOptions PlainOptions(int num_workers, int num_servers,
                                std::function<void()> on_all_finished) {
  CoordinatorOptions o;
  o.num_workers = num_workers;
  o.num_servers = num_servers;
  o.on_all_finished = std::move(on_all_finished);
  return o;
}

}  // namespace

CoordinatorImpl::CoordinatorImpl(int num_workers, int num_servers,
                                 std::function<void()> on_all_finished)
    : CoordinatorImpl(
          PlainOptions(num_workers, num_servers, std::move(on_all_finished))) {}

CoordinatorImpl::CoordinatorImpl(CoordinatorOptions options)
    : options_(std::move(options)),
      num_workers_(options_.num_workers),
      num_servers_(options_.num_servers) {
  absl::MutexLock lock(&mu_);
  last_checkpoint_time_ = absl::Now();
  if (options_.resumed.has_value()) {
    last_manifest_ = options_.resumed;
    last_dir_ = options_.resumed_dir;
  }
  timer_ = std::thread([this] { TimerLoop(); });
}

CoordinatorImpl::~CoordinatorImpl() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  timer_.join();
  tasks_.WaitAll();
}

absl::Status CoordinatorImpl::CheckRank(int rank) const {
  if (rank < 0 || rank >= num_workers_) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker rank ", rank, " is out of range: the job has ",
                     num_workers_, " workers"));
  }
  return absl::OkStatus();
}

bool CoordinatorImpl::Dead(int rank) const {
  if (finished_.count(rank) > 0) return false;
  auto it = last_heartbeat_.find(rank);
  if (it == last_heartbeat_.end()) return false;  // never sent one
  return absl::Now() - it->second >
         absl::Milliseconds(options_.config.cluster().worker_timeout_ms());
}

grpc::ServerUnaryReactor* CoordinatorImpl::Register(
    grpc::CallbackServerContext* context, const RegisterRequest* request,
    RegisterResponse* response) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok() && request->num_workers() != num_workers_) {
    status = absl::FailedPreconditionError(absl::StrCat(
        "worker ", rank, " was configured for ", request->num_workers(),
        " workers, the coordinator for ", num_workers_));
  }
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    const bool again = !registered_.insert(rank).second;
    response->set_num_servers(num_servers_);
    // A worker (re)starting continues from the newest checkpoint's record
    // of it, if there is one.
    if (last_manifest_.has_value()) {
      const Manifest& m = *last_manifest_;
      for (int i = 0; i < m.worker_positions_size(); ++i) {
        if (m.worker_positions(i).worker_rank() != rank) continue;
        *response->mutable_resume_position() = m.worker_positions(i);
        const int64_t step = i < m.worker_steps_size() ? m.worker_steps(i) : 0;
        response->set_resume_step(step);
        response->set_resumed_from(last_dir_);
        progress_[rank] = step;
        Stand& stand = stands_[rank];
        stand.step = step;
        stand.position = m.worker_positions(i);
        stand.known = true;
      }
    }
    done_.erase(rank);
    finished_.erase(rank);
    last_heartbeat_[rank] = absl::Now();
    LOG(INFO) << "coordinator: worker " << rank
              << (again ? " registered again (restarted)" : " registered")
              << " (" << registered_.size() << "/" << num_workers_ << ")"
              << (response->resumed_from().empty()
                      ? ""
                      : absl::StrCat(", resumes from ",
                                     response->resumed_from(), " at step ",
                                     response->resume_step()));
  }
  return Done(context, status);
}

void CoordinatorImpl::ReleaseOrDefer(std::function<void()> release) {
  if (round_.has_value() && round_->saving) {
    deferred_.push_back(std::move(release));
    return;
  }
  // Run outside the lock: the caller collects and runs it.
  deferred_now_.push_back(std::move(release));
}

grpc::ServerUnaryReactor* CoordinatorImpl::Barrier(
    grpc::CallbackServerContext* context, const BarrierRequest* request,
    BarrierResponse* response) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (!status.ok()) return Done(context, status);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<std::function<void()>> now;
  {
    absl::MutexLock lock(&mu_);
    PendingBarrier& barrier = barriers_[request->name()];
    if (!barrier.ranks.insert(rank).second) {
      reactor->Finish(ToGrpcStatus(absl::FailedPreconditionError(
          absl::StrCat("worker ", rank, " arrived twice at barrier '",
                       request->name(), "'"))));
      return reactor;
    }
    barrier.any_has_more |= request->has_more();
    barrier.waiting.push_back({reactor, response});
    if (request->has_position()) {
      Stand& stand = stands_[rank];
      stand.step = request->step();
      stand.position = request->position();
      stand.known = true;
    }
    in_barrier_.insert(rank);
    if (static_cast<int>(barrier.ranks.size()) == num_workers_) {
      std::vector<Waiting> release = std::move(barrier.waiting);
      const bool all_done = !barrier.any_has_more;
      for (int r : barrier.ranks) in_barrier_.erase(r);
      barriers_.erase(request->name());
      ReleaseOrDefer([release, all_done] {
        for (const Waiting& w : release) {
          w.response->set_all_done(all_done);
          w.reactor->Finish(grpc::Status::OK);
        }
      });
    }
    MaybeStartSave();
    now = std::move(deferred_now_);
  }
  for (auto& f : now) f();
  return reactor;
}

int64_t CoordinatorImpl::SlowestActive(int64_t fallback) const {
  int64_t slowest = -1;
  for (int r = 0; r < num_workers_; ++r) {
    if (done_.count(r) > 0 || Dead(r)) continue;
    auto it = progress_.find(r);
    int64_t step = it == progress_.end() ? 0 : it->second;
    if (slowest < 0 || step < slowest) slowest = step;
  }
  return slowest < 0 ? fallback : slowest;
}

void CoordinatorImpl::CollectReleasable(std::vector<GateWaiter>* release) {
  std::vector<GateWaiter> still;
  const bool collecting = round_.has_value() && !round_->saving;
  for (GateWaiter& w : gate_waiters_) {
    // The waiter itself counts as being at w.step - staleness at worst; what
    // holds it back is the slowest of the others.
    int64_t slowest = SlowestActive(w.step);
    if (w.step - slowest <= w.staleness) {
      max_granted_lead_ = std::max(max_granted_lead_, w.step - slowest);
      w.response->set_slowest_step(slowest);
      release->push_back(w);
    } else if (collecting) {
      // A checkpoint round is open: go and arrive at it instead of waiting
      // for a worker that may be waiting there.
      w.response->set_slowest_step(slowest);
      w.response->set_checkpoint_pending(round_->id);
      release->push_back(w);
    } else {
      still.push_back(w);
    }
  }
  gate_waiters_ = std::move(still);
}

grpc::ServerUnaryReactor* CoordinatorImpl::StepGate(
    grpc::CallbackServerContext* context, const StepGateRequest* request,
    StepGateResponse* response) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok() && request->staleness() < 0) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "StepGate: staleness must be >= 0, got ", request->staleness()));
  }
  if (!status.ok()) return Done(context, status);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<std::function<void()>> now;
  {
    absl::MutexLock lock(&mu_);
    if (request->done()) {
      done_.insert(rank);
    } else {
      progress_[rank] = request->step();
      gate_waiters_.push_back(
          {rank, request->step(), request->staleness(), reactor, response});
    }
    std::vector<GateWaiter> release;
    CollectReleasable(&release);
    if (!release.empty()) {
      ReleaseOrDefer([release] {
        for (const GateWaiter& w : release) w.reactor->Finish(grpc::Status::OK);
      });
    }
    now = std::move(deferred_now_);
  }
  if (request->done()) reactor->Finish(grpc::Status::OK);
  for (auto& f : now) f();
  return reactor;
}

int64_t CoordinatorImpl::max_granted_lead() const {
  absl::MutexLock lock(&mu_);
  return max_granted_lead_;
}

int CoordinatorImpl::checkpoints_taken() const {
  absl::MutexLock lock(&mu_);
  return checkpoints_taken_;
}

grpc::ServerUnaryReactor* CoordinatorImpl::Finish(
    grpc::CallbackServerContext* context, const FinishRequest* request,
    FinishResponse*) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (!status.ok()) return Done(context, status);
  bool all = false;
  std::vector<std::function<void()>> now;
  {
    absl::MutexLock lock(&mu_);
    finished_.insert(rank);
    done_.insert(rank);
    if (request->has_position()) {
      Stand& stand = stands_[rank];
      stand.step = request->step();
      stand.position = request->position();
      stand.known = true;
    }
    std::vector<GateWaiter> release;
    CollectReleasable(&release);
    if (!release.empty()) {
      ReleaseOrDefer([release] {
        for (const GateWaiter& w : release) w.reactor->Finish(grpc::Status::OK);
      });
    }
    LOG(INFO) << "coordinator: worker " << rank << " finished ("
              << request->status() << ", " << request->examples()
              << " examples); " << finished_.size() << "/" << num_workers_
              << " done";
    all = static_cast<int>(finished_.size()) == num_workers_ && !finishing_;
    if (all) finishing_ = true;
    MaybeStartSave();
    now = std::move(deferred_now_);
  }
  for (auto& f : now) f();
  grpc::ServerUnaryReactor* reactor = Done(context, absl::OkStatus());
  if (all) {
    absl::MutexLock lock(&mu_);
    tasks_.Run([this] { FinishJob(); });
  }
  return reactor;
}

void CoordinatorImpl::FinishJob() {
  if (checkpoints_enabled()) {
    absl::Notification saved;
    {
      absl::MutexLock lock(&mu_);
      Request(
          "end of training", [&saved](const absl::Status& status,
                                      const std::string& dir, int64_t step) {
            if (status.ok()) {
              LOG(INFO) << "coordinator: final checkpoint " << dir
                        << " at step " << step;
            } else {
              LOG(ERROR) << "coordinator: final checkpoint failed: " << status;
            }
            saved.Notify();
          });
    }
    saved.WaitForNotification();
  }
  if (options_.on_all_finished) options_.on_all_finished();
}

grpc::ServerUnaryReactor* CoordinatorImpl::Heartbeat(
    grpc::CallbackServerContext* context, const HeartbeatRequest* request,
    HeartbeatResponse* response) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (!status.ok()) return Done(context, status);
  std::vector<std::function<void()>> now;
  {
    absl::MutexLock lock(&mu_);
    auto it = last_heartbeat_.find(rank);
    if (it != last_heartbeat_.end() &&
        absl::Now() - it->second >
            absl::Milliseconds(options_.config.cluster().worker_timeout_ms())) {
      LOG(WARNING) << "coordinator: worker " << rank
                   << " is back after missing its heartbeats";
    }
    last_heartbeat_[rank] = absl::Now();
    // A worker that registered with an earlier coordinator (server 0 was
    // restarted) is alive and training: checkpoint rounds must wait for it.
    if (registered_.insert(rank).second) {
      LOG(WARNING) << "coordinator: worker " << rank
                   << " sends heartbeats without having registered here "
                      "(coordinator restarted?); counting it as registered";
    }
    if (round_.has_value() && !round_->saving &&
        round_->arrived.count(rank) == 0) {
      response->set_checkpoint_pending(round_->id);
    }
    MaybeStartSave();
    now = std::move(deferred_now_);
  }
  for (auto& f : now) f();
  return Done(context, absl::OkStatus());
}

int64_t CoordinatorImpl::OpenRound(const std::string& reason) {
  if (!round_.has_value()) {
    round_.emplace();
    round_->id = next_round_id_++;
    round_->reason = reason;
    LOG(INFO) << "coordinator: checkpoint round " << round_->id << " opened ("
              << reason << ")";
    // Workers parked at a gate go and arrive.
    std::vector<GateWaiter> release;
    CollectReleasable(&release);
    if (!release.empty()) {
      deferred_now_.push_back([release] {
        for (const GateWaiter& w : release) w.reactor->Finish(grpc::Status::OK);
      });
    }
  }
  return round_->id;
}

void CoordinatorImpl::RerunAfterSave(std::function<void()> locked) {
  deferred_.push_back([this, locked] {
    std::vector<std::function<void()>> now;
    {
      absl::MutexLock lock(&mu_);
      locked();
      now = std::move(deferred_now_);
    }
    for (auto& f : now) f();
  });
}

void CoordinatorImpl::Arrive(int rank, int64_t step,
                             const DataPosition& position, int64_t id,
                             RoundDone done) {
  if (round_.has_value() && round_->saving) {
    // A cut is being written: this arrival belongs to the next round.
    RerunAfterSave([this, rank, step, position, id, done]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         Arrive(rank, step, position, id, done);
                       });
    return;
  }
  if (id > 0 && (!round_.has_value() || round_->id != id)) {
    // Late for a round that is complete: nothing to wait for.
    const std::string dir = last_dir_;
    const int64_t last_step =
        last_manifest_.has_value() ? last_manifest_->global_step() : 0;
    deferred_now_.push_back(
        [done, dir, last_step] { done(absl::OkStatus(), dir, last_step); });
    return;
  }
  OpenRound(absl::StrCat("worker ", rank, " at step ", step));
  round_->arrived.insert(rank);
  round_->done.push_back(std::move(done));
  Stand& stand = stands_[rank];
  stand.step = step;
  stand.position = position;
  stand.known = true;
  progress_[rank] = step;
  MaybeStartSave();
}

void CoordinatorImpl::Request(const std::string& reason, RoundDone done) {
  if (round_.has_value() && round_->saving) {
    RerunAfterSave([this, reason, done]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      Request(reason, done);
    });
    return;
  }
  OpenRound(reason);
  round_->done.push_back(std::move(done));
  MaybeStartSave();
}

grpc::ServerUnaryReactor* CoordinatorImpl::CheckpointArrive(
    grpc::CallbackServerContext* context,
    const CheckpointArriveRequest* request,
    CheckpointArriveResponse* response) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok() && !checkpoints_enabled()) {
    status = absl::FailedPreconditionError(
        "CheckpointArrive: the job has no checkpoint section in its config");
  }
  if (!status.ok()) return Done(context, status);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<std::function<void()>> now;
  {
    absl::MutexLock lock(&mu_);
    DataPosition position = request->position();
    position.set_worker_rank(rank);
    Arrive(rank, request->step(), position, request->checkpoint_id(),
           FinishRound(reactor, response));
    now = std::move(deferred_now_);
  }
  for (auto& f : now) f();
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorImpl::RequestCheckpoint(
    grpc::CallbackServerContext* context,
    const RequestCheckpointRequest* request,
    RequestCheckpointResponse* response) {
  if (auto* refused = options_.security->Refuse(context)) return refused;
  if (!checkpoints_enabled()) {
    return Done(context,
                absl::FailedPreconditionError(
                    "checkpoint refused: the job has no checkpoint section "
                    "in its config (checkpoint { dir: ... })"));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<std::function<void()>> now;
  {
    absl::MutexLock lock(&mu_);
    Request(request->reason().empty() ? "requested" : request->reason(),
            FinishRound(reactor, response));
    now = std::move(deferred_now_);
  }
  for (auto& f : now) f();
  return reactor;
}

void CoordinatorImpl::MaybeStartSave() {
  if (!round_.has_value() || round_->saving || stop_) return;
  for (int r = 0; r < num_workers_; ++r) {
    const bool still = round_->arrived.count(r) > 0 || finished_.count(r) > 0 ||
                       in_barrier_.count(r) > 0 || Dead(r) ||
                       registered_.empty();
    if (!still) return;
  }
  round_->saving = true;
  std::map<int, Stand> stands;
  for (int r = 0; r < num_workers_; ++r) {
    auto it = stands_.find(r);
    if (it != stands_.end()) stands[r] = it->second;
    if (Dead(r)) {
      LOG(WARNING) << "coordinator: worker " << r
                   << " is dead (no heartbeat); checkpoint round " << round_->id
                   << " records its last known position";
    }
  }
  tasks_.Run([this, stands] { RunSave(stands); });
}

void CoordinatorImpl::RunSave(std::map<int, Stand> stands) {
  const absl::Time start = absl::Now();
  const CheckpointConfig& ck = options_.config.checkpoint();
  Manifest manifest;
  int64_t step = 0;
  for (const auto& [rank, stand] : stands) step = std::max(step, stand.step);
  std::optional<Manifest> previous;
  std::string previous_dir;
  {
    absl::MutexLock lock(&mu_);
    previous = last_manifest_;
    previous_dir = last_dir_;
  }
  for (int r = 0; r < num_workers_; ++r) {
    DataPosition position;
    int64_t worker_step = 0;
    auto it = stands.find(r);
    if (it != stands.end() && it->second.known) {
      position = it->second.position;
      worker_step = it->second.step;
    } else if (previous.has_value()) {
      for (int i = 0; i < previous->worker_positions_size(); ++i) {
        if (previous->worker_positions(i).worker_rank() != r) continue;
        position = previous->worker_positions(i);
        worker_step =
            i < previous->worker_steps_size() ? previous->worker_steps(i) : 0;
      }
    }
    position.set_worker_rank(r);
    *manifest.add_worker_positions() = position;
    manifest.add_worker_steps(worker_step);
  }
  manifest.set_global_step(step);
  manifest.set_num_servers(num_servers_);
  manifest.set_hash_seed(options_.config.data().hash_seed());
  // The config as the job runs it: generated data's files are named in
  // train_files / eval_files, so the generator settings go (a config with
  // both does not validate).
  JobConfig recorded = options_.config;
  if (!recorded.data().train_files().empty()) {
    recorded.mutable_data()->clear_generate();
  }
  google::protobuf::TextFormat::PrintToString(recorded,
                                              manifest.mutable_job_config());
  absl::Status status;
  std::string dir;
  absl::StatusOr<std::string> prepared = PrepareCheckpointDir(ck.dir(), step);
  if (prepared.status().code() == absl::StatusCode::kAlreadyExists) {
    // LATEST already is this step's checkpoint (nothing trained since).
    dir = previous_dir;
    LOG(INFO) << "coordinator: checkpoint at step " << step
              << " already complete: " << dir;
  } else if (!prepared.ok()) {
    status = prepared.status();
  } else {
    dir = *prepared;
    absl::StatusOr<std::vector<CheckpointFile>> files =
        options_.save(dir, step);
    if (!files.ok()) {
      status = files.status();
    } else {
      int64_t bytes = 0;
      for (const CheckpointFile& f : *files) {
        *manifest.add_files() = f;
        bytes += f.size();
      }
      CommitOptions commit;
      commit.keep = ck.keep();
      status = CommitCheckpoint(ck.dir(), manifest, commit);
      if (status.ok()) {
        LOG(INFO) << "coordinator: checkpoint " << dir << " at step " << step
                  << " complete: " << files->size() << " files, "
                  << bytes / (1 << 20) << " MiB in "
                  << absl::ToDoubleSeconds(absl::Now() - start) << " s";
      }
    }
  }
  if (!status.ok()) {
    LOG(ERROR) << "coordinator: checkpoint at step " << step
               << " failed: " << status;
  }
  std::vector<RoundDone> done;
  std::vector<std::function<void()>> deferred;
  {
    absl::MutexLock lock(&mu_);
    if (status.ok() && dir != previous_dir) {
      last_manifest_ = manifest;
      last_dir_ = dir;
      ++checkpoints_taken_;
    }
    last_checkpoint_time_ = absl::Now();
    if (round_.has_value()) done = std::move(round_->done);
    round_.reset();
    deferred = std::move(deferred_);
  }
  for (RoundDone& d : done) d(status, dir, step);
  for (auto& f : deferred) f();
}

void CoordinatorImpl::TimerLoop() {
  const int every_minutes = options_.config.checkpoint().every_minutes();
  for (;;) {
    std::vector<std::function<void()>> now;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(250));
      if (stop_) return;
      if (checkpoints_enabled() && every_minutes > 0 && !finishing_ &&
          !registered_.empty() && !round_.has_value() &&
          absl::Now() - last_checkpoint_time_ >=
              options_.minute * every_minutes) {
        OpenRound(absl::StrCat("every ", every_minutes, " minutes"));
      }
      // A worker that died may have been what a gate or a round waited for.
      std::vector<GateWaiter> release;
      CollectReleasable(&release);
      if (!release.empty()) {
        ReleaseOrDefer([release] {
          for (const GateWaiter& w : release) {
            w.reactor->Finish(grpc::Status::OK);
          }
        });
      }
      MaybeStartSave();
      now = std::move(deferred_now_);
    }
    for (auto& f : now) f();
  }
}

}  // namespace ps
