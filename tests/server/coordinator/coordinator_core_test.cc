// CoordinatorCore without gRPC: registration, liveness on a fake clock,
// barriers, BOUNDED step gates, checkpoint rounds (saves into a temporary
// folder through a fake save that can block or fail), the end of the job and
// Stop. Every parked call is a Call that records the status it returned with
// and fails the test if it returns twice.
#include "server/coordinator/coordinator_core.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::StatusIs;

constexpr int kTimeoutMs = 1000;  // cluster.worker_timeout_ms

// A call ended by a rollback (worker/client/ps_client.h IsRollback).
bool IsRollbackStatus(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         absl::StrContains(status.message(), "job rolls back");
}

// A clock the test moves by hand.
class FakeClock {
 public:
  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

// One call to a waiting method: its response, and the status `done` was
// called with (from whichever thread). Copies share the call; the core's
// `done` keeps it alive, so a call still parked when a test ends is safe.
template <typename Response>
class Call {
 public:
  Response* response() { return &state_->response; }
  CoordinatorCore::Done Done() {
    return [state = state_](absl::Status status) {
      absl::MutexLock lock(&state->mu);
      if (++state->calls > 1) {
        ADD_FAILURE() << "done called " << state->calls << " times";
        return;
      }
      state->status = std::move(status);
    };
  }
  bool Returned() {
    absl::MutexLock lock(&state_->mu);
    return state_->calls > 0;
  }
  // The status it returned with; DeadlineExceeded when it has not returned
  // within 10 s.
  absl::Status Wait() {
    absl::MutexLock lock(&state_->mu);
    state_->mu.AwaitWithTimeout(
        absl::Condition(
            +[](int* calls) { return *calls > 0; }, &state_->calls),
        absl::Seconds(10));
    if (state_->calls == 0) {
      return absl::DeadlineExceededError("the call did not return");
    }
    return state_->status;
  }

 private:
  struct State {
    Response response;
    absl::Mutex mu;
    int calls = 0;
    absl::Status status;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// options.save: writes one small file per checkpoint and records the steps
// it was asked for. Can fail its next call, or block until Unblock.
class FakeSave {
 public:
  absl::StatusOr<std::vector<CheckpointFile>> Save(const std::string& dir,
                                                   int64_t step) {
    absl::Status fail;
    {
      absl::MutexLock lock(&mu_);
      steps_.push_back(step);
      dirs_.push_back(dir);
      mu_.Await(absl::Condition(
          +[](bool* blocked) { return !*blocked; }, &blocked_));
      fail = std::exchange(fail_next_, absl::OkStatus());
    }
    if (!fail.ok()) return fail;
    std::filesystem::create_directories(dir + "/server-0");
    std::ofstream(dir + "/server-0/part.bin") << "step " << step;
    absl::StatusOr<CheckpointFile> file =
        DescribeCheckpointFile(dir, "server-0/part.bin");
    if (!file.ok()) return file.status();
    return std::vector<CheckpointFile>{*file};
  }

  void RecordSeen(const std::vector<uint64_t>& seen) {
    absl::MutexLock lock(&mu_);
    seen_ = seen;
  }
  std::vector<uint64_t> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  void FailNext(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_next_ = std::move(status);
  }
  void Block() {
    absl::MutexLock lock(&mu_);
    blocked_ = true;
  }
  void Unblock() {
    absl::MutexLock lock(&mu_);
    blocked_ = false;
  }
  // Waits (up to 10 s) until `n` saves have begun; false if they have not.
  bool WaitStarted(size_t n) {
    absl::MutexLock lock(&mu_);
    auto started = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return steps_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&started), absl::Seconds(10));
  }
  std::vector<int64_t> steps() {
    absl::MutexLock lock(&mu_);
    return steps_;
  }
  std::vector<std::string> dirs() {
    absl::MutexLock lock(&mu_);
    return dirs_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> steps_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> dirs_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_next_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
};

DataPosition Position(int64_t offset) {
  DataPosition p;
  p.set_file_index(0);
  p.set_file("train.tsv");
  p.set_offset(offset);
  return p;
}

BarrierRequest AtBarrier(int rank, const std::string& name, bool has_more) {
  BarrierRequest r;
  r.set_worker_rank(rank);
  r.set_name(name);
  r.set_has_more(has_more);
  return r;
}

StepGateRequest AtGate(int rank, int64_t step, int32_t staleness) {
  StepGateRequest r;
  r.set_worker_rank(rank);
  r.set_step(step);
  r.set_staleness(staleness);
  return r;
}

CheckpointArriveRequest AtCut(int rank, int64_t step, int64_t offset,
                              int64_t id) {
  CheckpointArriveRequest r;
  r.set_worker_rank(rank);
  r.set_step(step);
  *r.mutable_position() = Position(offset);
  r.set_checkpoint_id(id);
  return r;
}

FinishRequest Finished(int rank, int64_t step, int64_t offset) {
  FinishRequest r;
  r.set_worker_rank(rank);
  r.set_status("ok");
  r.set_step(step);
  *r.mutable_position() = Position(offset);
  return r;
}

class CoordinatorCoreTest : public ::testing::Test {
 protected:
  void TearDown() override {
    save_.Unblock();
    core_.reset();
  }

  // A core of `num_workers` on the fake clock, without a timer thread;
  // checkpoints into root_ through save_ when `checkpoints`.
  CoordinatorOptions Options(int num_workers, bool checkpoints) {
    CoordinatorOptions o;
    o.num_workers = num_workers;
    o.num_servers = 2;
    o.config.mutable_cluster()->set_worker_timeout_ms(kTimeoutMs);
    o.clock = [this] { return clock_.Now(); };
    o.tick_every = absl::ZeroDuration();
    o.on_all_finished = [this](const absl::Status& outcome) {
      {
        absl::MutexLock lock(&outcome_mu_);
        outcome_ = outcome;
      }
      all_finished_.fetch_add(1);
    };
    o.reload = [this](const std::string& dir) {
      absl::MutexLock lock(&reload_mu_);
      reloads_.push_back(dir);
      return reload_result_;
    };
    if (checkpoints) {
      o.config.mutable_checkpoint()->set_dir(root_);
      o.save = [this](const std::string& dir, int64_t step,
                      const std::vector<uint64_t>& seen) {
        save_.RecordSeen(seen);
        return save_.Save(dir, step);
      };
    }
    return o;
  }
  void Start(int num_workers, bool checkpoints) {
    core_ =
        std::make_unique<CoordinatorCore>(Options(num_workers, checkpoints));
  }

  RegisterResponse Register(int rank, int num_workers) {
    RegisterRequest request;
    request.set_worker_rank(rank);
    request.set_num_workers(num_workers);
    RegisterResponse response;
    EXPECT_TRUE(core_->Register(request, &response).ok()) << rank;
    return response;
  }
  // The open round this worker is asked to arrive at (0: none).
  int64_t Heartbeat(int rank) {
    HeartbeatRequest request;
    request.set_worker_rank(rank);
    HeartbeatResponse response;
    EXPECT_TRUE(core_->Heartbeat(request, &response).ok()) << rank;
    return response.checkpoint_pending();
  }
  void Barrier(int rank, const std::string& name, bool has_more,
               Call<BarrierResponse>* call) {
    core_->Barrier(AtBarrier(rank, name, has_more), call->response(),
                   call->Done());
  }
  void Gate(int rank, int64_t step, int32_t staleness,
            Call<StepGateResponse>* call) {
    core_->StepGate(AtGate(rank, step, staleness), call->response(),
                    call->Done());
  }
  void Arrive(int rank, int64_t step, int64_t offset, int64_t id,
              Call<CheckpointArriveResponse>* call) {
    core_->CheckpointArrive(AtCut(rank, step, offset, id), call->response(),
                            call->Done());
  }
  void Request(Call<RequestCheckpointResponse>* call) {
    RequestCheckpointRequest request;
    request.set_reason("test");
    core_->RequestCheckpoint(request, call->response(), call->Done());
  }
  // Waits (up to 10 s) for on_all_finished to have been called `n` times.
  bool WaitAllFinished(int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (all_finished_.load() < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return all_finished_.load() >= n;
  }

  // The outcome on_all_finished was last called with.
  absl::Status Outcome() {
    absl::MutexLock lock(&outcome_mu_);
    return outcome_;
  }

  void Recover(int rank, int64_t generation, Call<RecoverResponse>* call) {
    RecoverRequest request;
    request.set_worker_rank(rank);
    request.set_generation(generation);
    request.set_reason("server 1 restarted");
    core_->Recover(request, call->response(), call->Done());
  }
  void WaitJobEnd(int rank, int64_t generation,
                  Call<WaitJobEndResponse>* call) {
    WaitJobEndRequest request;
    request.set_worker_rank(rank);
    request.set_generation(generation);
    core_->WaitJobEnd(request, call->response(), call->Done());
  }
  std::vector<std::string> Reloads() {
    absl::MutexLock lock(&reload_mu_);
    return reloads_;
  }

  absl::Mutex reload_mu_;
  std::vector<std::string> reloads_ ABSL_GUARDED_BY(reload_mu_);
  absl::Status reload_result_ ABSL_GUARDED_BY(reload_mu_);
  FakeClock clock_;
  FakeSave save_;
  std::atomic<int> all_finished_{0};
  absl::Mutex outcome_mu_;
  absl::Status outcome_ ABSL_GUARDED_BY(outcome_mu_) =
      absl::UnknownError("on_all_finished not called");
  testing_util::TempDir tmp_;
  const std::string root_ = tmp_.Path("ckpt");
  std::unique_ptr<CoordinatorCore> core_;
};

// ---------------------------------------------------------------------------
// Registration

TEST_F(CoordinatorCoreTest, RegisterRefusesAnUnknownRankOrWorkerCount) {
  Start(2, false);
  RegisterRequest request;
  request.set_worker_rank(5);
  request.set_num_workers(2);
  RegisterResponse response;
  absl::Status s = core_->Register(request, &response);
  EXPECT_THAT(s,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "worker rank 5 is out of range: the job has 2 workers"));

  request.set_worker_rank(-1);
  EXPECT_EQ(core_->Register(request, &response).message(),
            "worker rank -1 is out of range: the job has 2 workers");

  request.set_worker_rank(1);
  request.set_num_workers(3);
  s = core_->Register(request, &response);
  EXPECT_THAT(
      s,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               "worker 1 was configured for 3 workers, the coordinator for 2"));

  // Waiting calls are refused at once, through `done`.
  Call<BarrierResponse> barrier;
  Barrier(2, "b", false, &barrier);
  ASSERT_TRUE(barrier.Returned());
  EXPECT_THAT(barrier.Wait(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "worker rank 2 is out of range: the job has 2 workers"));
}

TEST_F(CoordinatorCoreTest, RegisterTellsServersAndTheResumedPosition) {
  CoordinatorOptions options = Options(2, true);
  Manifest resumed;
  resumed.set_global_step(40);
  for (int r = 0; r < 2; ++r) {
    DataPosition* p = resumed.add_worker_positions();
    *p = Position(100 + r);
    p->set_worker_rank(r);
    resumed.add_worker_steps(40 - r);
  }
  options.resumed = resumed;
  options.resumed_dir = "/ckpt/ckpt-0000000040";
  core_ = std::make_unique<CoordinatorCore>(std::move(options));

  RegisterResponse first = Register(1, 2);
  EXPECT_EQ(first.num_servers(), 2);
  EXPECT_EQ(first.resumed_from(), "/ckpt/ckpt-0000000040");
  EXPECT_EQ(first.resume_step(), 39);
  EXPECT_EQ(first.resume_position().offset(), 101);
  EXPECT_EQ(first.resume_position().worker_rank(), 1);
  // A restarted worker registers again and gets the same record.
  RegisterResponse again = Register(1, 2);
  EXPECT_EQ(again.resume_step(), 39);
  EXPECT_EQ(again.resume_position().offset(), 101);
}

TEST_F(CoordinatorCoreTest, AWorkerRegisteringAgainAfterFinishingCountsAgain) {
  Start(2, false);
  Register(0, 2);
  Register(1, 2);
  ASSERT_TRUE(core_->Finish(Finished(1, 5, 0)).ok());
  // Worker 1 restarts: it is training again, so the job is not over when
  // worker 0 finishes.
  Register(1, 2);
  ASSERT_TRUE(core_->Finish(Finished(0, 5, 0)).ok());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(all_finished_.load(), 0);
  ASSERT_TRUE(core_->Finish(Finished(1, 9, 0)).ok());
  EXPECT_TRUE(WaitAllFinished(1));
}

// ---------------------------------------------------------------------------
// Liveness

TEST_F(CoordinatorCoreTest, AWorkerSilentPastTheTimeoutNoLongerHoldsAGate) {
  Start(2, false);
  Register(0, 2);
  Register(1, 2);
  Call<StepGateResponse> held;
  Gate(0, 5, 2, &held);  // worker 1 is at step 0
  EXPECT_FALSE(held.Returned());

  clock_.Advance(absl::Milliseconds(kTimeoutMs));
  Heartbeat(0);
  core_->Tick();
  EXPECT_FALSE(held.Returned()) << "worker 1 is silent, but not for longer "
                                   "than the timeout yet";

  clock_.Advance(absl::Milliseconds(1));
  core_->Tick();
  ASSERT_TRUE(held.Returned());
  EXPECT_TRUE(held.Wait().ok());
  // Nobody else active: worker 0 is the slowest itself.
  EXPECT_EQ(held.response()->slowest_step(), 5);

  // Declared dead, worker 1 is fenced: its calls are refused until it
  // registers again (as a restarted worker), and then it holds gates again.
  HeartbeatRequest beat;
  beat.set_worker_rank(1);
  HeartbeatResponse beat_response;
  EXPECT_THAT(core_->Heartbeat(beat, &beat_response),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("worker 1 was declared dead (no heartbeat "
                                 "for more than cluster.worker_timeout_ms "
                                 "1000 ms): fenced until it registers again")));
  Call<StepGateResponse> fenced;
  Gate(1, 4, 2, &fenced);
  EXPECT_THAT(fenced.Wait(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("fenced")));
  Register(1, 2);
  Call<StepGateResponse> again;
  Gate(0, 6, 2, &again);
  core_->Tick();
  EXPECT_FALSE(again.Returned());
  Call<StepGateResponse> slow;
  Gate(1, 4, 2, &slow);
  EXPECT_TRUE(slow.Wait().ok());
  EXPECT_TRUE(again.Wait().ok());
  EXPECT_EQ(again.response()->slowest_step(), 4);
}

TEST_F(CoordinatorCoreTest, ADeadWorkerCountsAsArrivedAtACheckpointRound) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  Call<BarrierResponse> b1;
  BarrierRequest with_position = AtBarrier(1, "epoch 0", false);
  with_position.set_step(7);
  *with_position.mutable_position() = Position(70);
  core_->Barrier(with_position, b1.response(), b1.Done());

  // Worker 1 waits in the barrier and then goes silent; worker 0 arrives at
  // a cut. Worker 1 counts as arrived either way (it is in a barrier); the
  // save must not wait for it.
  clock_.Advance(absl::Milliseconds(kTimeoutMs / 2));
  Heartbeat(0);
  clock_.Advance(absl::Milliseconds(kTimeoutMs / 2 + 1));
  Call<CheckpointArriveResponse> a0;
  Arrive(0, 9, 90, 0, &a0);
  ASSERT_TRUE(a0.Wait().ok()) << a0.Wait();
  EXPECT_THAT(save_.steps(), ElementsAre(9));

  // A round where worker 1 is only silent (not in a barrier).
  Heartbeat(0);
  Call<RequestCheckpointResponse> request;
  Request(&request);
  const int64_t id = Heartbeat(0);
  ASSERT_GT(id, 0);
  ASSERT_FALSE(b1.Returned());
  Call<BarrierResponse> b0;
  Barrier(0, "epoch 0", false, &b0);  // the barrier lets both go
  EXPECT_TRUE(b0.Wait().ok());
  EXPECT_TRUE(b1.Wait().ok());
  EXPECT_FALSE(request.Returned()) << "worker 0 has not arrived";
  Call<CheckpointArriveResponse> again;
  Arrive(0, 12, 120, id, &again);
  // Worker 1 has been silent since the first round: dead, so it is not
  // waited for, and its last known position (from the barrier) is recorded.
  ASSERT_TRUE(request.Wait().ok()) << request.Wait();
  EXPECT_TRUE(again.Wait().ok());
  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.global_step(), 12);
  EXPECT_THAT(latest->manifest.worker_steps(), ElementsAre(12, 7));
  EXPECT_EQ(latest->manifest.worker_positions(1).offset(), 70);
}

// ---------------------------------------------------------------------------
// Barriers

TEST_F(CoordinatorCoreTest, ABarrierReleasesAllWhenAllArriveWithHasMoreOred) {
  Start(3, false);
  Call<BarrierResponse> b0, b1, b2;
  Barrier(0, "epoch 0", false, &b0);
  Barrier(1, "epoch 0", true, &b1);
  EXPECT_FALSE(b0.Returned());
  EXPECT_FALSE(b1.Returned());
  Barrier(2, "epoch 0", false, &b2);
  for (Call<BarrierResponse>* b : {&b0, &b1, &b2}) {
    ASSERT_TRUE(b->Returned());
    EXPECT_TRUE(b->Wait().ok());
    EXPECT_FALSE(b->response()->all_done()) << "worker 1 had more data";
  }
  // The name can be used again; nobody has more data this time.
  Call<BarrierResponse> c0, c1, c2;
  Barrier(2, "epoch 0", false, &c2);
  Barrier(0, "epoch 0", false, &c0);
  EXPECT_FALSE(c0.Returned());
  Barrier(1, "epoch 0", false, &c1);
  for (Call<BarrierResponse>* c : {&c0, &c1, &c2}) {
    EXPECT_TRUE(c->Wait().ok());
    EXPECT_TRUE(c->response()->all_done());
  }
}

TEST_F(CoordinatorCoreTest, ARetriedBarrierArrivalReplacesTheFirst) {
  // Worker 0's first call lost its connection and the worker retried it.
  Start(2, false);
  Call<BarrierResponse> first, retry, other;
  Barrier(0, "epoch 1", false, &first);
  Barrier(0, "epoch 1", true, &retry);
  ASSERT_TRUE(first.Returned());
  EXPECT_THAT(first.Wait(),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("superseded by the newer arrival of the same "
                                 "worker")));
  EXPECT_THAT(first.Wait(), StatusIs(absl::StatusCode::kAborted,
                                     HasSubstr("barrier 'epoch 1'")));
  EXPECT_FALSE(retry.Returned()) << "worker 1 has not arrived";
  Barrier(1, "epoch 1", false, &other);
  EXPECT_TRUE(retry.Wait().ok());
  EXPECT_TRUE(other.Wait().ok());
  // The retry's has_more counts.
  EXPECT_FALSE(retry.response()->all_done());
  EXPECT_FALSE(other.response()->all_done());

  // The retry's has_more replaces the first one's: false after true is done.
  Call<BarrierResponse> c_first, c_retry, c_other;
  Barrier(0, "epoch 2", true, &c_first);
  Barrier(0, "epoch 2", false, &c_retry);
  EXPECT_THAT(c_first.Wait(), StatusIs(absl::StatusCode::kAborted));
  Barrier(1, "epoch 2", false, &c_other);
  EXPECT_TRUE(c_retry.Wait().ok());
  EXPECT_TRUE(c_other.Wait().ok());
  EXPECT_TRUE(c_retry.response()->all_done());
  EXPECT_TRUE(c_other.response()->all_done());
}

TEST_F(CoordinatorCoreTest, AWorkerRegisteringAgainLeavesItsBarrier) {
  Start(3, false);
  Register(0, 3);
  Register(1, 3);
  Register(2, 3);
  Call<BarrierResponse> old0, b1;
  Barrier(0, "epoch 1", true, &old0);
  Barrier(1, "epoch 1", false, &b1);
  // Worker 0 restarts while parked: its old call ends, and it no longer
  // counts as arrived, so worker 2's arrival does not release the barrier.
  Register(0, 3);
  ASSERT_TRUE(old0.Returned());
  EXPECT_THAT(old0.Wait(), StatusIs(absl::StatusCode::kAborted,
                                    HasSubstr("worker 0 registered again")));
  Call<BarrierResponse> b2;
  Barrier(2, "epoch 1", false, &b2);
  EXPECT_FALSE(b1.Returned());
  EXPECT_FALSE(b2.Returned());
  // It arrives again (no longer with more data): everyone is released, and
  // the old call's has_more no longer counts.
  Call<BarrierResponse> new0;
  Barrier(0, "epoch 1", false, &new0);
  for (Call<BarrierResponse>* b : {&new0, &b1, &b2}) {
    EXPECT_TRUE(b->Wait().ok());
    EXPECT_TRUE(b->response()->all_done());
  }

  // Likewise at a step gate: its old call ends, the others' stay.
  Call<StepGateResponse> gate0, gate1;
  Gate(0, 5, 0, &gate0);
  Gate(1, 5, 0, &gate1);
  EXPECT_FALSE(gate0.Returned());
  Register(0, 3);
  EXPECT_THAT(gate0.Wait(), StatusIs(absl::StatusCode::kAborted,
                                     HasSubstr("worker 0 registered again")));
  EXPECT_FALSE(gate1.Returned()) << "worker 2 (at step 0) still holds it";
}

TEST_F(CoordinatorCoreTest, ABarrierWaitsForADeadOrFinishedWorker) {
  // Barriers need every worker (docs/architecture.md, section 8): neither a
  // finished nor a dead worker lets one go.
  Start(3, false);
  Register(0, 3);
  Register(1, 3);
  Register(2, 3);
  ASSERT_TRUE(core_->Finish(Finished(2, 3, 0)).ok());
  Call<BarrierResponse> b0;
  Barrier(0, "b", false, &b0);
  clock_.Advance(absl::Milliseconds(kTimeoutMs + 1));  // worker 1 is dead
  core_->Tick();
  EXPECT_FALSE(b0.Returned());
  // Worker 1 comes back and arrives; worker 2 restarts and arrives.
  Call<BarrierResponse> b1, b2;
  Register(1, 3);  // declared dead: fenced until it registers again
  Barrier(1, "b", false, &b1);
  EXPECT_FALSE(b0.Returned());
  Register(2, 3);
  Barrier(2, "b", false, &b2);
  EXPECT_TRUE(b0.Wait().ok());
  EXPECT_TRUE(b1.Wait().ok());
  EXPECT_TRUE(b2.Wait().ok());
}

// ---------------------------------------------------------------------------
// Step gates

TEST_F(CoordinatorCoreTest, AGateHoldsAWorkerAheadUntilTheSlowestAdvances) {
  Start(2, false);
  Call<StepGateResponse> near;
  Gate(0, 2, 2, &near);  // worker 1 at 0: a lead of 2 is allowed
  ASSERT_TRUE(near.Returned());
  EXPECT_EQ(near.response()->slowest_step(), 0);

  Call<StepGateResponse> ahead;
  Gate(0, 3, 2, &ahead);
  EXPECT_FALSE(ahead.Returned());
  Call<StepGateResponse> slow;
  Gate(1, 1, 2, &slow);
  EXPECT_TRUE(slow.Wait().ok());
  EXPECT_EQ(slow.response()->slowest_step(), 1);
  ASSERT_TRUE(ahead.Returned());
  EXPECT_TRUE(ahead.Wait().ok());
  EXPECT_EQ(ahead.response()->slowest_step(), 1);
  EXPECT_EQ(ahead.response()->checkpoint_pending(), 0);
  EXPECT_EQ(core_->max_granted_lead(), 2);

  Call<StepGateResponse> negative;
  Gate(1, 2, -1, &negative);
  EXPECT_THAT(negative.Wait(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "StepGate: staleness must be >= 0, got -1"));
  // A step the gates' arithmetic could overflow on is refused.
  for (int64_t step :
       {std::numeric_limits<int64_t>::min(), int64_t{-1}, kMaxCheckpointStep}) {
    Call<StepGateResponse> wild;
    Gate(1, step, 2, &wild);
    EXPECT_THAT(wild.Wait(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("is out of range")))
        << step;
    EXPECT_THAT(core_->Finish(Finished(1, step, 0)),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << step;
  }
}

TEST_F(CoordinatorCoreTest, FinishingOrRunningOutOfDataReleasesTheOthers) {
  Start(3, false);
  Call<StepGateResponse> ahead;
  Gate(0, 10, 1, &ahead);
  ASSERT_TRUE(core_->Finish(Finished(1, 4, 0)).ok());
  EXPECT_FALSE(ahead.Returned()) << "worker 2 (at step 0) still holds it";
  Call<StepGateResponse> out_of_data;
  StepGateRequest done = AtGate(2, 0, 1);
  done.set_done(true);
  core_->StepGate(done, out_of_data.response(), out_of_data.Done());
  EXPECT_TRUE(out_of_data.Wait().ok());
  ASSERT_TRUE(ahead.Returned());
  EXPECT_TRUE(ahead.Wait().ok());
  EXPECT_EQ(ahead.response()->slowest_step(), 10);
}

// ---------------------------------------------------------------------------
// Checkpoint rounds

TEST_F(CoordinatorCoreTest, AnEveryStepsArrivalOpensARoundThatSavesOnce) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  EXPECT_EQ(Heartbeat(1), 0);
  // Worker 1 is far ahead of worker 0 (which has reported no step yet) and
  // is held at its gate.
  Call<StepGateResponse> gate;
  Gate(1, 98, 1, &gate);
  EXPECT_FALSE(gate.Returned());
  // Worker 0's trainer arrives after step 100 (a multiple of every_steps).
  Call<CheckpointArriveResponse> a0;
  Arrive(0, 100, 1000, 0, &a0);
  EXPECT_FALSE(a0.Returned());
  // Worker 1 learns of the round from its heartbeat, and its gate lets it go
  // to arrive (worker 0 will not move before the round is over).
  const int64_t id = Heartbeat(1);
  EXPECT_GT(id, 0);
  EXPECT_EQ(Heartbeat(0), 0) << "worker 0 has arrived already";
  ASSERT_TRUE(gate.Returned());
  EXPECT_TRUE(gate.Wait().ok());
  EXPECT_EQ(gate.response()->checkpoint_pending(), id);
  EXPECT_TRUE(save_.steps().empty());

  Call<CheckpointArriveResponse> a1;
  Arrive(1, 98, 980, id, &a1);
  ASSERT_TRUE(a0.Wait().ok()) << a0.Wait();
  ASSERT_TRUE(a1.Wait().ok()) << a1.Wait();
  const std::string dir = root_ + "/" + CheckpointDirName(100);
  EXPECT_THAT(save_.steps(), ElementsAre(100));
  EXPECT_THAT(save_.dirs(), ElementsAre(dir));
  EXPECT_EQ(a0.response()->dir(), dir);
  EXPECT_EQ(a0.response()->global_step(), 100);
  EXPECT_EQ(a1.response()->dir(), dir);
  EXPECT_EQ(core_->checkpoints_taken(), 1);

  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  const Manifest& m = latest->manifest;
  EXPECT_EQ(m.global_step(), 100);
  EXPECT_EQ(m.num_servers(), 2);
  EXPECT_THAT(m.worker_steps(), ElementsAre(100, 98));
  ASSERT_EQ(m.worker_positions_size(), 2);
  EXPECT_EQ(m.worker_positions(0).worker_rank(), 0);
  EXPECT_EQ(m.worker_positions(0).offset(), 1000);
  EXPECT_EQ(m.worker_positions(1).worker_rank(), 1);
  EXPECT_EQ(m.worker_positions(1).offset(), 980);
  ASSERT_EQ(m.files_size(), 1);
  EXPECT_EQ(m.files(0).path(), "server-0/part.bin");

  // The round is over: no longer pending; an arrival for it returns the
  // checkpoint at once; a restarted worker resumes from it.
  EXPECT_EQ(Heartbeat(1), 0);
  Call<CheckpointArriveResponse> late;
  Arrive(1, 101, 990, id, &late);
  ASSERT_TRUE(late.Returned());
  EXPECT_EQ(late.response()->dir(), dir);
  EXPECT_THAT(save_.steps(), ElementsAre(100));
  RegisterResponse resumed = Register(1, 2);
  EXPECT_EQ(resumed.resumed_from(), dir);
  EXPECT_EQ(resumed.resume_step(), 98);
  EXPECT_EQ(resumed.resume_position().offset(), 980);
}

TEST_F(CoordinatorCoreTest, RequestCheckpointCountsWorkersParkedInABarrier) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  Call<BarrierResponse> b1;
  BarrierRequest with_position = AtBarrier(1, "epoch 0", false);
  with_position.set_step(30);
  *with_position.mutable_position() = Position(300);
  core_->Barrier(with_position, b1.response(), b1.Done());
  Call<RequestCheckpointResponse> request;
  Request(&request);
  EXPECT_FALSE(request.Returned());
  const int64_t id = Heartbeat(0);
  ASSERT_GT(id, 0);
  Call<CheckpointArriveResponse> a0;
  Arrive(0, 31, 310, id, &a0);
  ASSERT_TRUE(request.Wait().ok()) << request.Wait();
  EXPECT_TRUE(a0.Wait().ok());
  EXPECT_EQ(request.response()->global_step(), 31);
  EXPECT_EQ(request.response()->dir(), root_ + "/" + CheckpointDirName(31));
  EXPECT_FALSE(b1.Returned()) << "worker 0 has not reached the barrier";
  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_THAT(latest->manifest.worker_steps(), ElementsAre(31, 30));
  EXPECT_EQ(latest->manifest.worker_positions(1).offset(), 300);
}

// ps_ctl checkpoint (or export) on a resumed job before any worker has
// registered: the cut is the resumed checkpoint's, not step 0.
TEST_F(CoordinatorCoreTest, ACutBeforeAnyWorkerRegisteredKeepsTheResumedStep) {
  CoordinatorOptions options = Options(2, true);
  Manifest resumed;
  resumed.set_global_step(40);
  for (int r = 0; r < 2; ++r) {
    DataPosition* p = resumed.add_worker_positions();
    *p = Position(100 + r);
    p->set_worker_rank(r);
    resumed.add_worker_steps(40 - r);
  }
  options.resumed = resumed;
  options.resumed_dir = "/elsewhere/ckpt-0000000040";
  core_ = std::make_unique<CoordinatorCore>(std::move(options));
  Call<RequestCheckpointResponse> request;
  Request(&request);
  ASSERT_TRUE(request.Wait().ok()) << request.Wait();
  EXPECT_EQ(request.response()->global_step(), 40);
  EXPECT_THAT(save_.steps(), ElementsAre(40));
  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.global_step(), 40);
  EXPECT_THAT(latest->manifest.worker_steps(), ElementsAre(40, 39));
  EXPECT_EQ(latest->manifest.worker_positions(1).offset(), 101);
}

TEST_F(CoordinatorCoreTest, TheSaveLearnsTheIncarnationsTheWorkersSaw) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  Call<RequestCheckpointResponse> req;
  Request(&req);
  // Worker 0 saw servers 0 and 1; worker 1 saw only server 1, in another
  // incarnation (server 1 restarted between their pushes).
  CheckpointArriveRequest a = AtCut(0, 4, 40, Heartbeat(0));
  a.add_server_incarnations(11);
  a.add_server_incarnations(21);
  CheckpointArriveRequest b = AtCut(1, 4, 40, Heartbeat(1));
  b.add_server_incarnations(0);
  b.add_server_incarnations(22);
  Call<CheckpointArriveResponse> a0, a1;
  core_->CheckpointArrive(a, a0.response(), a0.Done());
  core_->CheckpointArrive(b, a1.response(), a1.Done());
  ASSERT_TRUE(req.Wait().ok()) << req.Wait();
  EXPECT_THAT(save_.seen(), ElementsAre(11, kIncarnationsDisagree));
}

TEST_F(CoordinatorCoreTest, CheckpointCallsAreRefusedWithoutASaveFunction) {
  Start(1, false);
  Call<RequestCheckpointResponse> request;
  Request(&request);
  EXPECT_THAT(request.Wait(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("no checkpoint section")));
  Call<CheckpointArriveResponse> arrive;
  Arrive(0, 5, 0, 0, &arrive);
  EXPECT_THAT(arrive.Wait(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("no checkpoint section")));
}

TEST_F(CoordinatorCoreTest, EveryMinutesOpensARoundWhenDue) {
  CoordinatorOptions options = Options(1, true);
  options.config.mutable_checkpoint()->set_every_minutes(2);
  // The clock jumps by minutes: the worker must not count as dead.
  options.config.mutable_cluster()->set_worker_timeout_ms(3600 * 1000);
  core_ = std::make_unique<CoordinatorCore>(std::move(options));
  Register(0, 1);
  clock_.Advance(absl::Minutes(2) - absl::Seconds(1));
  Heartbeat(0);
  core_->Tick();
  EXPECT_EQ(Heartbeat(0), 0);
  clock_.Advance(absl::Seconds(1));
  Heartbeat(0);
  core_->Tick();
  const int64_t id = Heartbeat(0);
  ASSERT_GT(id, 0);
  Call<CheckpointArriveResponse> a0;
  Arrive(0, 7, 70, id, &a0);
  ASSERT_TRUE(a0.Wait().ok()) << a0.Wait();
  EXPECT_THAT(save_.steps(), ElementsAre(7));
  // The next one is due two minutes after this one ended.
  clock_.Advance(absl::Minutes(1));
  Heartbeat(0);
  core_->Tick();
  EXPECT_EQ(Heartbeat(0), 0);
  clock_.Advance(absl::Minutes(1));
  Heartbeat(0);
  core_->Tick();
  EXPECT_GT(Heartbeat(0), id);
}

TEST_F(CoordinatorCoreTest, ABarrierReleaseWaitsUntilTheSaveIsWritten) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  Call<BarrierResponse> b0;
  BarrierRequest with_position = AtBarrier(0, "epoch 0", false);
  with_position.set_step(20);
  *with_position.mutable_position() = Position(200);
  core_->Barrier(with_position, b0.response(), b0.Done());
  // Worker 1 goes silent; a requested round counts it (dead) and worker 0
  // (in the barrier) as arrived and starts writing at once.
  clock_.Advance(absl::Milliseconds(kTimeoutMs + 1));
  save_.Block();
  Call<RequestCheckpointResponse> request;
  Request(&request);
  ASSERT_TRUE(save_.WaitStarted(1));
  // Worker 1 is back and completes the barrier while the cut is written:
  // nobody may go past the cut yet.
  Register(1, 2);  // declared dead: fenced until it registers again
  Call<BarrierResponse> b1;
  Barrier(1, "epoch 0", false, &b1);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(b0.Returned());
  EXPECT_FALSE(b1.Returned());
  EXPECT_FALSE(request.Returned());
  save_.Unblock();
  ASSERT_TRUE(request.Wait().ok()) << request.Wait();
  EXPECT_TRUE(b0.Wait().ok());
  EXPECT_TRUE(b1.Wait().ok());
  EXPECT_EQ(request.response()->global_step(), 20);
}

TEST_F(CoordinatorCoreTest, AGateReleaseAndALateArrivalWaitForTheSave) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  clock_.Advance(absl::Milliseconds(kTimeoutMs / 2));
  Heartbeat(1);
  clock_.Advance(absl::Milliseconds(kTimeoutMs / 2 + 1));
  // Worker 0 is dead; worker 1 arrives at step 4 and the cut is taken.
  save_.Block();
  Call<CheckpointArriveResponse> a1;
  Arrive(1, 4, 40, 0, &a1);
  ASSERT_TRUE(save_.WaitStarted(1));
  // Worker 0 comes back meanwhile, within staleness of worker 1, and also
  // arrives for the round being written (it had heard of it).
  Register(0, 2);  // declared dead: fenced until it registers again
  Call<StepGateResponse> gate;
  Gate(0, 6, 2, &gate);
  Call<CheckpointArriveResponse> a0;
  Arrive(0, 6, 60, 1, &a0);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(gate.Returned());
  EXPECT_FALSE(a0.Returned());
  EXPECT_FALSE(a1.Returned());
  save_.Unblock();
  ASSERT_TRUE(a1.Wait().ok()) << a1.Wait();
  EXPECT_TRUE(gate.Wait().ok());
  EXPECT_EQ(gate.response()->slowest_step(), 4);
  // The late arrival is answered with the checkpoint just written.
  ASSERT_TRUE(a0.Wait().ok());
  EXPECT_EQ(a0.response()->global_step(), 4);
  EXPECT_EQ(a0.response()->dir(), a1.response()->dir());
  EXPECT_THAT(save_.steps(), ElementsAre(4));
}

TEST_F(CoordinatorCoreTest, AFailedSaveReportsTheErrorAndTrainingGoesOn) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  save_.FailNext(absl::InternalError("server 1 (h:1): disk full"));
  save_.Block();
  Call<CheckpointArriveResponse> a0, a1;
  Arrive(0, 10, 100, 0, &a0);
  Arrive(1, 10, 101, 0, &a1);
  ASSERT_TRUE(save_.WaitStarted(1));
  // A release held for the save goes on after it even though it failed.
  Call<StepGateResponse> gate;
  Gate(0, 11, 1, &gate);
  save_.Unblock();
  for (Call<CheckpointArriveResponse>* a : {&a0, &a1}) {
    absl::Status s = a->Wait();
    EXPECT_THAT(
        s, StatusIs(absl::StatusCode::kInternal, "server 1 (h:1): disk full"));
  }
  EXPECT_TRUE(gate.Wait().ok());
  EXPECT_EQ(core_->checkpoints_taken(), 0);
  EXPECT_THAT(OpenLatest(root_).status(),
              StatusIs(absl::StatusCode::kNotFound));

  // The next round writes.
  Call<CheckpointArriveResponse> b0, b1;
  Arrive(0, 20, 200, 0, &b0);
  Arrive(1, 20, 201, 0, &b1);
  ASSERT_TRUE(b0.Wait().ok()) << b0.Wait();
  EXPECT_TRUE(b1.Wait().ok());
  EXPECT_EQ(core_->checkpoints_taken(), 1);
  EXPECT_THAT(save_.steps(), ElementsAre(10, 20));
  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.global_step(), 20);
}

// ---------------------------------------------------------------------------
// The end of the job

TEST_F(CoordinatorCoreTest, TheJobEndsOnceAfterEveryWorkerAndTheFinalSave) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  save_.Block();
  ASSERT_TRUE(core_->Finish(Finished(0, 10, 100)).ok());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(all_finished_.load(), 0);
  EXPECT_TRUE(save_.steps().empty());
  ASSERT_TRUE(core_->Finish(Finished(1, 12, 120)).ok());
  ASSERT_TRUE(save_.WaitStarted(1));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(all_finished_.load(), 0) << "before the final checkpoint";
  save_.Unblock();
  ASSERT_TRUE(WaitAllFinished(1));
  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.global_step(), 12);
  EXPECT_THAT(latest->manifest.worker_steps(), ElementsAre(10, 12));
  EXPECT_EQ(latest->manifest.worker_positions(1).offset(), 120);
  // A repeated Finish (a retry) does not end the job twice. (Not announced
  // after Stop, so give a second end time to show before the core goes.)
  ASSERT_TRUE(core_->Finish(Finished(1, 12, 120)).ok());
  absl::SleepFor(absl::Milliseconds(100));
  core_.reset();  // waits for its background work
  EXPECT_EQ(all_finished_.load(), 1);
  EXPECT_THAT(save_.steps(), ElementsAre(12));
}

TEST_F(CoordinatorCoreTest, TheJobEndsEvenWhenTheFinalSaveFails) {
  Start(1, true);
  Register(0, 1);
  save_.FailNext(absl::InternalError("disk full"));
  ASSERT_TRUE(core_->Finish(Finished(0, 3, 30)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  core_.reset();
  EXPECT_EQ(all_finished_.load(), 1);
}

// ---------------------------------------------------------------------------
// The job's outcome

FinishRequest FailedWith(int rank, const std::string& error) {
  FinishRequest r = Finished(rank, 2, 0);
  r.set_status(error);
  return r;
}

TEST_F(CoordinatorCoreTest, AFinalSaveRefusedForARestartedServerFailsTheJob) {
  Start(1, true);
  Register(0, 1);
  save_.FailNext(absl::FailedPreconditionError(
      "server 1 (h:1) restarted since the last checkpoint"));
  ASSERT_TRUE(core_->Finish(Finished(0, 3, 30)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  EXPECT_THAT(Outcome(), StatusIs(absl::StatusCode::kAborted,
                                  HasSubstr("the final checkpoint was refused: "
                                            "server 1 (h:1) restarted")));
}

TEST_F(CoordinatorCoreTest, AllWorkersSucceedingIsASuccessfulJob) {
  Start(2, false);
  ASSERT_TRUE(core_->Finish(Finished(0, 1, 0)).ok());
  ASSERT_TRUE(core_->Finish(Finished(1, 1, 0)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  EXPECT_TRUE(Outcome().ok()) << Outcome();
  EXPECT_TRUE(core_->outcome().ok());
}

TEST_F(CoordinatorCoreTest, AFailedWorkerEndsTheJobFailedNamingIt) {
  Start(2, false);
  ASSERT_TRUE(
      core_->Finish(FailedWith(1, "data/train.tsv:12: expected 40 fields"))
          .ok());
  EXPECT_THAT(core_->outcome(), StatusIs(absl::StatusCode::kAborted));
  // A failed worker still counts as finished: the job ends when the other
  // one does.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(all_finished_.load(), 0);
  ASSERT_TRUE(core_->Finish(Finished(0, 1, 0)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  EXPECT_THAT(Outcome(),
              StatusIs(absl::StatusCode::kAborted,
                       "job failed: worker 1: data/train.tsv:12: expected 40 "
                       "fields (1 of 2 workers failed)"));
}

TEST_F(CoordinatorCoreTest, EveryFailedWorkerIsNamedAndTheFinalSaveStillRuns) {
  Start(3, true);
  ASSERT_TRUE(core_->Finish(FailedWith(2, "pull refused")).ok());
  ASSERT_TRUE(core_->Finish(Finished(1, 1, 0)).ok());
  ASSERT_TRUE(core_->Finish(FailedWith(0, "bad data")).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  EXPECT_EQ(core_->checkpoints_taken(), 1) << "the final checkpoint";
  EXPECT_THAT(Outcome(), StatusIs(absl::StatusCode::kAborted,
                                  "job failed: worker 0: bad data; worker 2: "
                                  "pull refused (2 of 3 workers failed)"));
}

TEST_F(CoordinatorCoreTest, AFailedWorkerThatRestartsAndSucceedsIsNoFailure) {
  Start(2, false);
  Register(0, 2);
  Register(1, 2);
  ASSERT_TRUE(core_->Finish(FailedWith(1, "pull refused")).ok());
  Register(1, 2);  // restarted
  EXPECT_TRUE(core_->outcome().ok()) << core_->outcome();
  ASSERT_TRUE(core_->Finish(Finished(1, 3, 0)).ok());
  ASSERT_TRUE(core_->Finish(Finished(0, 3, 0)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  EXPECT_TRUE(Outcome().ok()) << Outcome();
}

TEST_F(CoordinatorCoreTest, WithoutCheckpointsTheJobEndsOnceWhenAllFinish) {
  Start(2, false);
  ASSERT_TRUE(core_->Finish(Finished(0, 1, 0)).ok());
  ASSERT_TRUE(core_->Finish(Finished(1, 1, 0)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  ASSERT_TRUE(core_->Finish(Finished(1, 1, 0)).ok());
  absl::SleepFor(absl::Milliseconds(100));
  core_.reset();
  EXPECT_EQ(all_finished_.load(), 1);
}

// ---------------------------------------------------------------------------
// Stop

TEST_F(CoordinatorCoreTest, StopEndsParkedCallsAndRefusesLaterOnes) {
  Start(3, false);
  Call<BarrierResponse> barrier;
  Barrier(0, "epoch 2", false, &barrier);
  Call<StepGateResponse> gate;
  Gate(1, 9, 1, &gate);
  ASSERT_FALSE(barrier.Returned());
  ASSERT_FALSE(gate.Returned());
  core_->Stop();
  ASSERT_TRUE(barrier.Returned());
  EXPECT_THAT(
      barrier.Wait(),
      StatusIs(absl::StatusCode::kUnavailable,
               HasSubstr("barrier 'epoch 2' (1 of 3 workers arrived)")));
  ASSERT_TRUE(gate.Returned());
  EXPECT_THAT(gate.Wait(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("step gate of worker 1 at step 9")));

  Call<BarrierResponse> later;
  Barrier(1, "epoch 2", false, &later);
  ASSERT_TRUE(later.Returned());
  EXPECT_THAT(later.Wait(), StatusIs(absl::StatusCode::kUnavailable));
  RegisterRequest request;
  request.set_worker_rank(2);
  request.set_num_workers(3);
  RegisterResponse response;
  EXPECT_THAT(core_->Register(request, &response),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(core_->Finish(Finished(2, 0, 0)),
              StatusIs(absl::StatusCode::kUnavailable));
  core_->Stop();  // again: nothing left
}

TEST_F(CoordinatorCoreTest, StopEndsCallsWaitingForACheckpoint) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  Call<CheckpointArriveResponse> arrived;
  Arrive(0, 5, 50, 0, &arrived);  // waits for worker 1
  Call<RequestCheckpointResponse> request;
  Request(&request);
  core_->Stop();
  for (absl::Status s : {arrived.Wait(), request.Wait()}) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                            HasSubstr("checkpoint round 1")));
  }

  // The job's end while its final checkpoint is written: Stop answers at
  // once, and the job's end is not announced.
  Start(1, true);
  Register(0, 1);
  save_.Block();
  ASSERT_TRUE(core_->Finish(Finished(0, 8, 80)).ok());
  ASSERT_TRUE(save_.WaitStarted(1));
  Call<RequestCheckpointResponse> queued;
  Request(&queued);  // after the one being written
  core_->Stop();
  ASSERT_TRUE(queued.Returned());
  EXPECT_THAT(queued.Wait(), StatusIs(absl::StatusCode::kUnavailable));
  save_.Unblock();
  core_.reset();  // waits for the save
  EXPECT_EQ(all_finished_.load(), 0);
  // The checkpoint was written all the same.
  absl::StatusOr<OpenedCheckpoint> latest = OpenLatest(root_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.global_step(), 8);
}

// ---------------------------------------------------------------------------
// Job-wide rollback

TEST_F(CoordinatorCoreTest, ARollbackReloadsTheNewestCheckpointAndEndsWaits) {
  Start(2, true);
  Register(0, 2);
  Register(1, 2);
  Call<RequestCheckpointResponse> req;
  Request(&req);
  Call<CheckpointArriveResponse> a0, a1;
  Arrive(0, 4, 40, Heartbeat(0), &a0);
  Arrive(1, 5, 50, Heartbeat(1), &a1);
  ASSERT_TRUE(req.Wait().ok());
  const std::string checkpoint = req.response()->dir();
  // Worker 1 waits at a barrier, worker 0 finished and waits for the end.
  Call<BarrierResponse> b1;
  Barrier(1, "epoch-1-done", false, &b1);
  ASSERT_TRUE(core_->Finish(Finished(0, 9, 90)).ok());
  Call<WaitJobEndResponse> end0;
  WaitJobEnd(0, 0, &end0);
  EXPECT_FALSE(end0.Returned());

  Call<RecoverResponse> rec;
  Recover(1, 0, &rec);
  ASSERT_TRUE(rec.Wait().ok()) << rec.Wait();
  EXPECT_EQ(rec.response()->generation(), 1);
  EXPECT_EQ(rec.response()->checkpoint_dir(), checkpoint);
  EXPECT_THAT(Reloads(), ElementsAre(checkpoint));
  EXPECT_THAT(b1.Wait(), StatusIs(absl::StatusCode::kAborted,
                                  HasSubstr("job rolls back")));
  ASSERT_TRUE(end0.Wait().ok());
  EXPECT_TRUE(end0.response()->rolled_back());
  EXPECT_EQ(core_->generation(), 1);

  // Another worker asking for the same rollback joins it: no second reload.
  Call<RecoverResponse> again;
  Recover(0, 0, &again);
  ASSERT_TRUE(again.Wait().ok());
  EXPECT_EQ(again.response()->generation(), 1);
  EXPECT_EQ(Reloads().size(), 1u);

  // Everyone registers again and resumes from the checkpoint; the finished
  // worker counts as not finished.
  RegisterResponse r0 = Register(0, 2);
  EXPECT_EQ(r0.generation(), 1);
  EXPECT_EQ(r0.resume_step(), 4);
  EXPECT_EQ(r0.resume_position().offset(), 40);
  Register(1, 2);
  // Calls carry the generation they registered in; an older one is refused.
  FinishRequest stale = Finished(0, 9, 90);
  EXPECT_THAT(core_->Finish(stale),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("job rolled back: worker 0 registered in "
                                 "generation 0, the job is in generation 1")));
  FinishRequest f0 = Finished(0, 9, 90);
  f0.set_generation(1);
  FinishResponse resp;
  ASSERT_TRUE(core_->Finish(f0, &resp).ok());
  EXPECT_FALSE(resp.job_ending());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(all_finished_.load(), 0);
  FinishRequest f1 = Finished(1, 10, 100);
  f1.set_generation(1);
  ASSERT_TRUE(core_->Finish(f1, &resp).ok());
  EXPECT_TRUE(resp.job_ending());
  ASSERT_TRUE(WaitAllFinished(1));
  // A WaitJobEnd of this generation now returns: the job ended.
  Call<WaitJobEndResponse> end;
  WaitJobEnd(0, 1, &end);
  ASSERT_TRUE(end.Wait().ok());
  EXPECT_FALSE(end.response()->rolled_back());
}

TEST_F(CoordinatorCoreTest, ARollbackWithoutACheckpointGoesBackToTheStart) {
  Start(1, false);
  Register(0, 1);
  Call<RecoverResponse> rec;
  Recover(0, 0, &rec);
  ASSERT_TRUE(rec.Wait().ok());
  EXPECT_THAT(Reloads(), ElementsAre(""));
  const RegisterResponse r = Register(0, 1);
  EXPECT_FALSE(r.has_resume_position());
  EXPECT_EQ(r.generation(), 1);
}

TEST_F(CoordinatorCoreTest, AFailedReloadIsReportedAndKeepsTheGeneration) {
  Start(1, false);
  Register(0, 1);
  {
    absl::MutexLock lock(&reload_mu_);
    reload_result_ = absl::NotFoundError("checkpoint folder gone");
  }
  Call<RecoverResponse> rec;
  Recover(0, 0, &rec);
  EXPECT_THAT(rec.Wait(), StatusIs(absl::StatusCode::kNotFound,
                                   HasSubstr("checkpoint folder gone")));
  EXPECT_EQ(core_->generation(), 0);
}

TEST_F(CoordinatorCoreTest, ASyncWorkerRestartedAloneRollsEveryoneBack) {
  CoordinatorOptions o = Options(2, false);
  o.config.mutable_training()->set_mode(TrainingConfig::SYNC);
  core_ = std::make_unique<CoordinatorCore>(std::move(o));
  Register(0, 2);
  Register(1, 2);
  Call<BarrierResponse> b0;
  Barrier(0, "epoch-0-step-7", true, &b0);
  // Worker 1 died and starts again: its first Register starts the rollback
  // (and is asked to come back), the others' barriers end.
  RegisterRequest again;
  again.set_worker_rank(1);
  again.set_num_workers(2);
  RegisterResponse response;
  EXPECT_THAT(
      core_->Register(again, &response),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("rolling back")));
  EXPECT_TRUE(IsRollbackStatus(b0.Wait()));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (core_->generation() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(core_->generation(), 1);
  EXPECT_THAT(Reloads(), ElementsAre(""));
  EXPECT_EQ(Register(1, 2).generation(), 1);
}

TEST_F(CoordinatorCoreTest, AnAsyncWorkerRestartedAloneRejoinsWithoutRollback) {
  Start(2, false);
  Register(0, 2);
  Register(1, 2);
  EXPECT_EQ(Register(1, 2).generation(), 0);
  EXPECT_TRUE(Reloads().empty());
}

TEST_F(CoordinatorCoreTest, NoRollbackOnceTheJobEnds) {
  Start(1, false);
  Register(0, 1);
  ASSERT_TRUE(core_->Finish(Finished(0, 3, 30)).ok());
  ASSERT_TRUE(WaitAllFinished(1));
  Call<RecoverResponse> rec;
  Recover(0, 0, &rec);
  EXPECT_THAT(rec.Wait(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("end has begun")));
  EXPECT_TRUE(Reloads().empty());
}

}  // namespace
}  // namespace ps
