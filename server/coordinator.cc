#include "server/coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "glog/logging.h"

namespace ps {

namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context,
                               const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

absl::Status CoordinatorImpl::CheckRank(int rank) const {
  if (rank < 0 || rank >= num_workers_) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker rank ", rank, " is out of range: the job has ",
                     num_workers_, " workers"));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* CoordinatorImpl::Register(
    grpc::CallbackServerContext* context, const RegisterRequest* request,
    RegisterResponse* response) {
  absl::Status status = CheckRank(request->worker_rank());
  if (status.ok() && request->num_workers() != num_workers_) {
    status = absl::FailedPreconditionError(absl::StrCat(
        "worker ", request->worker_rank(), " was configured for ",
        request->num_workers(), " workers, the coordinator for ", num_workers_));
  }
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    registered_.insert(request->worker_rank());
    LOG(INFO) << "coordinator: worker " << request->worker_rank()
              << " registered (" << registered_.size() << "/" << num_workers_
              << ")";
    response->set_num_servers(num_servers_);
  }
  return Done(context, status);
}

grpc::ServerUnaryReactor* CoordinatorImpl::Barrier(
    grpc::CallbackServerContext* context, const BarrierRequest* request,
    BarrierResponse* response) {
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (!status.ok()) return Done(context, status);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<Waiting> release;
  bool all_done = false;
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
    if (static_cast<int>(barrier.ranks.size()) == num_workers_) {
      release = std::move(barrier.waiting);
      all_done = !barrier.any_has_more;
      barriers_.erase(request->name());
    }
  }
  for (Waiting& w : release) {
    w.response->set_all_done(all_done);
    w.reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

int64_t CoordinatorImpl::SlowestActive(int64_t fallback) const {
  int64_t slowest = -1;
  for (int r = 0; r < num_workers_; ++r) {
    if (done_.count(r) > 0) continue;
    auto it = progress_.find(r);
    int64_t step = it == progress_.end() ? 0 : it->second;
    if (slowest < 0 || step < slowest) slowest = step;
  }
  return slowest < 0 ? fallback : slowest;
}

void CoordinatorImpl::CollectReleasable(std::vector<GateWaiter>* release) {
  std::vector<GateWaiter> still;
  for (GateWaiter& w : gate_waiters_) {
    // The waiter itself counts as being at w.step - staleness at worst; what
    // holds it back is the slowest of the others.
    int64_t slowest = SlowestActive(w.step);
    if (w.step - slowest <= w.staleness) {
      max_granted_lead_ = std::max(max_granted_lead_, w.step - slowest);
      w.response->set_slowest_step(slowest);
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
  const int rank = request->worker_rank();
  absl::Status status = CheckRank(rank);
  if (status.ok() && request->staleness() < 0) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "StepGate: staleness must be >= 0, got ", request->staleness()));
  }
  if (!status.ok()) return Done(context, status);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::vector<GateWaiter> release;
  {
    absl::MutexLock lock(&mu_);
    if (request->done()) {
      done_.insert(rank);
    } else {
      progress_[rank] = request->step();
      gate_waiters_.push_back(
          {rank, request->step(), request->staleness(), reactor, response});
    }
    CollectReleasable(&release);
  }
  if (request->done()) reactor->Finish(grpc::Status::OK);
  for (GateWaiter& w : release) w.reactor->Finish(grpc::Status::OK);
  return reactor;
}

int64_t CoordinatorImpl::max_granted_lead() const {
  absl::MutexLock lock(&mu_);
  return max_granted_lead_;
}

grpc::ServerUnaryReactor* CoordinatorImpl::Finish(
    grpc::CallbackServerContext* context, const FinishRequest* request,
    FinishResponse*) {
  absl::Status status = CheckRank(request->worker_rank());
  if (!status.ok()) return Done(context, status);
  bool all = false;
  std::vector<GateWaiter> release;
  {
    absl::MutexLock lock(&mu_);
    finished_.insert(request->worker_rank());
    done_.insert(request->worker_rank());
    CollectReleasable(&release);
    LOG(INFO) << "coordinator: worker " << request->worker_rank()
              << " finished (" << request->status() << ", "
              << request->examples() << " examples); " << finished_.size()
              << "/" << num_workers_ << " done";
    all = static_cast<int>(finished_.size()) == num_workers_;
  }
  for (GateWaiter& w : release) w.reactor->Finish(grpc::Status::OK);
  grpc::ServerUnaryReactor* reactor = Done(context, absl::OkStatus());
  if (all) on_all_finished_();
  return reactor;
}

}  // namespace ps
