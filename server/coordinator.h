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
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                   const FinishRequest* request,
                                   FinishResponse* response) override;

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

  absl::Status CheckRank(int rank) const;

  const int num_workers_;
  const int num_servers_;
  const std::function<void()> on_all_finished_;

  absl::Mutex mu_;
  std::set<int> registered_ ABSL_GUARDED_BY(mu_);
  std::set<int> finished_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PendingBarrier> barriers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_H_
