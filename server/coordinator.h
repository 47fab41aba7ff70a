// The job Coordinator, served by server 0: worker registration, barriers
// and the end of the job. Barrier calls are parked (their reactors are kept,
// nothing blocks a gRPC thread) and all finished together when the last
// worker arrives. When every worker has called Finish, `on_all_finished` is
// called once. Thread-safe.
#ifndef PS_SERVER_COORDINATOR_H_
#define PS_SERVER_COORDINATOR_H_

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "proto/ps.grpc.pb.h"

namespace ps {

class CoordinatorImpl final : public Coordinator::CallbackService {
 public:
  CoordinatorImpl(int num_workers, int num_servers,
                  std::function<void()> on_all_finished)
      : num_workers_(num_workers),
        num_servers_(num_servers),
        on_all_finished_(std::move(on_all_finished)) {}

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

  // The largest lead (step - slowest active worker's step) with which
  // StepGate let a worker go: at most its staleness. For tests and logs.
  int64_t max_granted_lead() const;

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

  absl::Status CheckRank(int rank) const;
  // The smallest step among workers that are not done; `fallback` when all
  // others are done.
  int64_t SlowestActive(int64_t fallback) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the waiters that may go now into `release`.
  void CollectReleasable(std::vector<GateWaiter>* release)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int num_workers_;
  const int num_servers_;
  const std::function<void()> on_all_finished_;

  mutable absl::Mutex mu_;
  std::set<int> registered_ ABSL_GUARDED_BY(mu_);
  std::set<int> finished_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PendingBarrier> barriers_ ABSL_GUARDED_BY(mu_);
  // StepGate: each worker's reported step (0 until it reports), who is done,
  // and the parked calls.
  std::map<int, int64_t> progress_ ABSL_GUARDED_BY(mu_);
  std::set<int> done_ ABSL_GUARDED_BY(mu_);
  std::vector<GateWaiter> gate_waiters_ ABSL_GUARDED_BY(mu_);
  int64_t max_granted_lead_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_H_
