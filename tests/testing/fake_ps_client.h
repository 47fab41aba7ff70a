// A PsClient without servers for the trainer and heartbeat tests: pulls
// return zeros, pushes stay "in flight" until WaitPushes lets them go, and
// every coordinator call is recorded with what it carried. Thread-safe.
#ifndef PS_TESTS_TESTING_FAKE_PS_CLIENT_H_
#define PS_TESTS_TESTING_FAKE_PS_CLIENT_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace testing_util {

class FakePsClient final : public PsClient {
 public:
  struct Arrival {
    int64_t step = 0;
    DataPosition position;
    int64_t id = 0;
    int unacked_pushes = 0;  // pushes not yet waited for at the arrival
  };
  struct BarrierCall {
    std::string name;
    bool has_more = false;
    int64_t step = 0;
    DataPosition position;
    int unacked_pushes = 0;
  };
  struct FinishCall {
    int64_t examples = 0;
    std::string status;
    int64_t step = 0;
    DataPosition position;
  };

  int num_servers() const override { return 1; }

  using PsClient::PullSparse;
  absl::Status PullSparse(absl::Span<const SparsePull> tables,
                          int64_t step) override {
    for (const SparsePull& t : tables) {
      std::fill(t.values.begin(), t.values.end(), 0.0f);
      if (row_value) {
        for (size_t j = 0; j < t.keys.size(); ++j) {
          for (int i = 0; i < t.dim; ++i)
            t.values[j * t.dim + i] = row_value(t.keys[j], i);
        }
      }
    }
    std::function<void(int64_t)> hook;
    {
      absl::MutexLock lock(&mu);
      ++sparse_pulls;
      for (const SparsePull& t : tables) pulled_tables.push_back(t.table);
      hook = on_pull_sparse;
    }
    if (hook) hook(step);
    return absl::OkStatus();
  }

  using PsClient::PushAsync;
  void PushAsync(absl::Span<const SparsePush> tables, uint32_t,
                 const DenseBlocks&, absl::Span<const float> dense_grads,
                 int64_t) override {
    absl::MutexLock lock(&mu);
    ++unacked_;
    ++pushes;
    for (const SparsePush& t : tables) {
      for (float g : t.values) pushed_sparse_sum += g;
      pushed_tables.push_back(t.table);
    }
    for (float g : dense_grads) pushed_dense_sum += g;
  }
  using PsClient::PushDeltasAsync;
  void PushDeltasAsync(absl::Span<const SparsePush> tables, uint32_t,
                       const DenseBlocks&, absl::Span<const float> dense_deltas,
                       int64_t) override {
    absl::MutexLock lock(&mu);
    ++unacked_;
    ++pushes;
    for (const SparsePush& t : tables) {
      for (float d : t.values) pushed_sparse_delta_sum += d;
    }
    pushed_dense_deltas.emplace_back(dense_deltas.begin(), dense_deltas.end());
  }
  absl::Status WaitPushes(int max_in_flight) override {
    absl::MutexLock lock(&mu);
    unacked_ = std::min(unacked_, max_in_flight);
    return absl::OkStatus();
  }
  int InFlightPushes() override {
    absl::MutexLock lock(&mu);
    return unacked_;
  }
  absl::Status PullDense(uint32_t, const DenseBlocks&, absl::Span<float> out,
                         int64_t step) override {
    absl::MutexLock lock(&mu);
    dense_pull_steps.push_back(step);
    std::fill(out.begin(), out.end(), dense_value);
    return absl::OkStatus();
  }

  absl::StatusOr<ResumeInfo> Register() override {
    absl::MutexLock lock(&mu);
    return resume;
  }
  absl::StatusOr<int64_t> Heartbeat(int64_t step) override {
    absl::MutexLock lock(&mu);
    heartbeat_steps.push_back(step);
    return heartbeat_pending;
  }
  absl::StatusOr<std::string> CheckpointArrive(int64_t step,
                                               const DataPosition& position,
                                               int64_t id) override {
    absl::MutexLock lock(&mu);
    arrivals.push_back({step, position, id, unacked_});
    if (!checkpoint_error.ok()) return checkpoint_error;
    return absl::StrCat("/ckpt/ckpt-", step);
  }
  using PsClient::Barrier;
  absl::StatusOr<bool> Barrier(const std::string& name, bool has_more,
                               int64_t step,
                               const DataPosition& position) override {
    absl::MutexLock lock(&mu);
    barriers.push_back({name, has_more, step, position, unacked_});
    return !has_more;  // the only worker
  }
  using PsClient::Finish;
  absl::Status Finish(int64_t examples, const std::string& status, int64_t step,
                      const DataPosition& position) override {
    absl::MutexLock lock(&mu);
    finishes.push_back({examples, status, step, position});
    return absl::OkStatus();
  }
  absl::StatusOr<StepGateResult> StepGate(int64_t step, bool done,
                                          int) override {
    absl::MutexLock lock(&mu);
    gate_steps.push_back(step);
    StepGateResult r;
    r.slowest_step = step;
    if (!done && gate_pending) r.checkpoint_pending = gate_pending(step);
    return r;
  }

  // Set these before the trainer runs and read them after it finished (or
  // under `mu`): the heartbeat thread calls in concurrently.
  absl::Mutex mu;
  ResumeInfo resume;
  int64_t heartbeat_pending = 0;
  // What CheckpointArrive answers (after recording the arrival) when set.
  absl::Status checkpoint_error;
  // StepGate(step): the round it reports open.
  std::function<int64_t(int64_t)> gate_pending;
  // Runs at every PullSparse with its step (outside the lock).
  std::function<void(int64_t)> on_pull_sparse;
  // When set, PullSparse returns row_value(key, i) for float i of key's row
  // (else zeros). Set before training starts.
  std::function<float(uint64_t, int)> row_value;
  // What PullDense returns in every float, and the step of each call.
  float dense_value = 0.01f;
  std::vector<int64_t> dense_pull_steps;
  // Sparse pull calls, and the table of every part of them in order.
  int sparse_pulls = 0;
  std::vector<uint32_t> pulled_tables;
  // The table of every sparse part pushed (PushAsync), in order.
  std::vector<uint32_t> pushed_tables;
  // Sums of every gradient pushed (PushAsync).
  double pushed_sparse_sum = 0;
  double pushed_dense_sum = 0;
  // GEO (PushDeltasAsync): the sum of the sparse deltas, and each dense
  // delta vector.
  double pushed_sparse_delta_sum = 0;
  std::vector<std::vector<float>> pushed_dense_deltas;
  int unacked_ = 0;
  int pushes = 0;
  std::vector<int64_t> heartbeat_steps;
  std::vector<int64_t> gate_steps;
  std::vector<Arrival> arrivals;
  std::vector<BarrierCall> barriers;
  std::vector<FinishCall> finishes;
};

}  // namespace testing_util
}  // namespace ps

#endif  // PS_TESTS_TESTING_FAKE_PS_CLIENT_H_
