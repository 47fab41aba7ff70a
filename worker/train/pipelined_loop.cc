// ASYNC and BOUNDED: the next batches are read and pulled on a prefetch
// thread (training.prefetch_batches ahead) and the next one staged while
// this one computes; bounded in-flight pushes with merging (train_loop.h).
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "worker/train/train_loop.h"

namespace ps {

namespace {

// Pulls in flight at once per worker (the Prefetcher's threads).
constexpr int kPullers = 2;

// Reads and pulls the batches of an epoch ahead of training, on threads of
// its own: at most `depth` batches read or being pulled beyond the one the
// training thread holds. Batches are read one at a time, in order (batch i
// of the epoch is for step first_step + i), and pulled by up to `pullers`
// threads at once, so that a pull slower than a step does not hold back
// the next; Next hands them out in order. Batches handed back with Recycle
// are reused (their buffers keep their capacity).
class Prefetcher {
 public:
  // read(p): the next batch into p (p->has_data false at the epoch's end).
  // pull(p, step): its rows for `step`.
  using Read = std::function<absl::Status(PreparedBatch*)>;
  using Pull = std::function<absl::Status(PreparedBatch*, int64_t)>;

  Prefetcher(int depth, int pullers, int64_t first_step, Read read, Pull pull)
      : depth_(depth),
        read_(std::move(read)),
        pull_(std::move(pull)),
        next_read_(first_step),
        next_out_(first_step) {
    for (int i = 0; i < pullers; ++i) threads_.emplace_back([this] { Run(); });
  }

  // Stops fetching; waits for the fetches under way (their pulls' retries
  // included).
  ~Prefetcher() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : threads_) t.join();
  }

  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next batch in order, waiting for it; null at the end of the epoch.
  // A fetch's error once the batches before it are taken.
  absl::Status Next(std::unique_ptr<PreparedBatch>* out) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Prefetcher* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->ready_.count(self->next_out_) > 0 ||
                 self->next_out_ >= self->end_step_;
        },
        this));
    out->reset();
    auto it = ready_.find(next_out_);
    if (it != ready_.end()) {
      *out = std::move(it->second);
      ready_.erase(it);
      ++next_out_;
      return absl::OkStatus();
    }
    // next_out_ == end_step_: no batch ever comes for it.
    return error_;
  }

  void Recycle(std::unique_ptr<PreparedBatch> p) {
    absl::MutexLock lock(&mu_);
    free_.push_back(std::move(p));
  }

 private:
  void Run() {
    while (true) {
      std::unique_ptr<PreparedBatch> p;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Prefetcher* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->stop_ || self->end_step_ != kNoEnd ||
                     self->fetching_ + static_cast<int>(self->ready_.size()) <
                         self->depth_;
            },
            this));
        if (stop_ || end_step_ != kNoEnd) return;
        ++fetching_;
        if (free_.empty()) {
          p = std::make_unique<PreparedBatch>();
        } else {
          p = std::move(free_.back());
          free_.pop_back();
        }
      }
      int64_t step;
      absl::Status status;
      {
        // One reader at a time, so steps follow the input's order.
        absl::MutexLock lock(&read_mu_);
        step = next_read_++;
        status = read_(p.get());
      }
      if (status.ok() && p->has_data) status = pull_(p.get(), step);
      absl::MutexLock lock(&mu_);
      --fetching_;
      if (!status.ok() || !p->has_data) {
        // The epoch ends at the first step without a batch.
        if (step < end_step_) {
          end_step_ = step;
          error_ = status;
        }
        return;
      }
      ready_.emplace(step, std::move(p));
    }
  }

  static constexpr int64_t kNoEnd = std::numeric_limits<int64_t>::max();

  const int depth_;
  const Read read_;
  const Pull pull_;
  absl::Mutex read_mu_;
  int64_t next_read_ ABSL_GUARDED_BY(read_mu_);
  absl::Mutex mu_;
  int64_t next_out_ ABSL_GUARDED_BY(mu_);  // the step Next hands out next
  std::map<int64_t, std::unique_ptr<PreparedBatch>> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<PreparedBatch>> free_ ABSL_GUARDED_BY(mu_);
  int fetching_ ABSL_GUARDED_BY(mu_) = 0;  // batches being read or pulled
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // The first step without a batch (the epoch's end or a failed fetch);
  // error_ is that fetch's status (OK at the end).
  int64_t end_step_ ABSL_GUARDED_BY(mu_) = kNoEnd;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;  // last: start once the above exist
};

class PipelinedLoop : public TrainLoop {
 public:
  explicit PipelinedLoop(StepPieces* pieces) : TrainLoop(pieces) {}

  absl::Status RunEpoch(EpochBatches* batches) override;

 protected:
  // Before each step (BOUNDED: the coordinator's step gate).
  virtual absl::Status Gate() { return absl::OkStatus(); }

 private:
  // Whether the batch trained at step `step` uses a freshly pulled dense
  // vector (training.pull_dense_every).
  bool DenseDue(int64_t step) const {
    return step % pieces_->training().pull_dense_every() == 0;
  }
  // Gate, dense pull (every pull_dense_every steps), Stage (unless staged)
  // and Model::Launch of `p`.
  absl::Status LaunchStep(PreparedBatch* p);
  // Waits for the launched step of `p`, counts it and pushes.
  absl::Status FinishStep(const PreparedBatch& p);

  bool dense_pulled_ = false;  // by this loop, since the trainer started
};

absl::Status PipelinedLoop::RunEpoch(EpochBatches* batches) {
  // prefetch_batches 1: the next batch's rows are pulled while this one
  // computes, and the dense vector on this thread right before each step,
  // as fresh as it gets. Deeper: the dense vector comes with the rows of
  // the batch that uses it (one round trip per server for both, off this
  // thread), so like those rows it may miss the pushes of the steps in
  // between, as it may miss the other workers' (ASYNC). The first step of
  // this loop pulls it in any case (a job resumed at a step that is not a
  // multiple of pull_dense_every has none yet).
  const int depth = pieces_->training().prefetch_batches();
  const bool dense_with_rows = depth > 1;
  const int64_t first_step = pieces_->steps();
  const bool first_needs_dense = !dense_pulled_;
  Prefetcher prefetcher(
      depth, std::min(depth, kPullers), first_step,
      [batches](PreparedBatch* p) { return batches->Read(p); },
      [this, dense_with_rows, first_step, first_needs_dense](PreparedBatch* p,
                                                             int64_t step) {
        const bool with_dense =
            dense_with_rows &&
            ((step == first_step && first_needs_dense) || DenseDue(step));
        return pieces_->PullRows(p, step, with_dense);
      });
  std::unique_ptr<PreparedBatch> cur, next;
  RETURN_IF_ERROR(prefetcher.Next(&cur));
  while (cur != nullptr) {
    absl::Status status = LaunchStep(cur.get());
    const absl::Time wait_start = absl::Now();
    absl::Status fetched = prefetcher.Next(&next);
    pieces_->AddInputWaitMs(
        absl::ToDoubleMilliseconds(absl::Now() - wait_start));
    // The next batch's upload is queued now: on a GPU it overlaps this
    // batch's kernels.
    if (status.ok() && fetched.ok() && next != nullptr) {
      fetched = pieces_->Stage(*next);
      next->staged = fetched.ok();
    }
    if (status.ok()) status = FinishStep(*cur);
    RETURN_IF_ERROR(status);
    RETURN_IF_ERROR(fetched);
    RETURN_IF_ERROR(AfterStep(*batches, *cur));
    prefetcher.Recycle(std::move(cur));
    cur = std::move(next);
  }
  return absl::OkStatus();
}

absl::Status PipelinedLoop::LaunchStep(PreparedBatch* p) {
  RETURN_IF_ERROR(Gate());
  const int64_t step = pieces_->steps();
  if (p->has_dense) {
    RETURN_IF_ERROR(pieces_->UseDense(p));
    dense_pulled_ = true;
  } else if (!dense_pulled_ || DenseDue(step)) {
    // A model without a dense vector, or none pulled with the rows.
    RETURN_IF_ERROR(pieces_->PullDense(step));
    dense_pulled_ = true;
  }
  if (!p->staged) RETURN_IF_ERROR(pieces_->Stage(*p));
  p->staged = false;
  // The step this one's push carries: dropout's masks go by it.
  pieces_->model().SetStep(step + 1, static_cast<uint64_t>(pieces_->rank()));
  const absl::Time start = absl::Now();
  absl::Status launched =
      pieces_->model().Launch(/*train=*/true, pieces_->result());
  pieces_->AddComputeMs(absl::ToDoubleMilliseconds(absl::Now() - start));
  return launched;
}

absl::Status PipelinedLoop::FinishStep(const PreparedBatch& p) {
  // Kernel errors of a device backend surface here.
  const absl::Time start = absl::Now();
  absl::Status finished = pieces_->model().Finish();
  pieces_->AddComputeMs(absl::ToDoubleMilliseconds(absl::Now() - start));
  RETURN_IF_ERROR(finished);
  pieces_->CountStep(p);
  return pieces_->PushBounded(p);
}

class BoundedLoop final : public PipelinedLoop {
 public:
  explicit BoundedLoop(StepPieces* pieces) : PipelinedLoop(pieces) {}

  absl::Status Finish() override;

 protected:
  absl::Status Gate() override;
};

absl::Status BoundedLoop::Gate() {
  const absl::Time asked_at = absl::Now();
  ASSIGN_OR_RETURN(StepGateResult gate, pieces_->client()->StepGate(
                                            pieces_->steps(), false,
                                            pieces_->training().staleness()));
  // An open round: arrive after this step.
  pieces_->SetCheckpointPending(gate.checkpoint_pending, asked_at);
  return absl::OkStatus();
}

absl::Status BoundedLoop::Finish() {
  RETURN_IF_ERROR(Settle());
  // A round still open records where this worker finished (Finish).
  return pieces_->client()->StepGate(pieces_->steps(), true, 0).status();
}

}  // namespace

std::unique_ptr<TrainLoop> NewAsyncLoop(StepPieces* pieces) {
  return std::make_unique<PipelinedLoop>(pieces);
}

std::unique_ptr<TrainLoop> NewBoundedLoop(StepPieces* pieces) {
  return std::make_unique<BoundedLoop>(pieces);
}

}  // namespace ps
