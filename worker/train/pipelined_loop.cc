// ASYNC and BOUNDED: the next batch is read, pulled and staged while this
// one computes; bounded in-flight pushes with merging (train_loop.h).
#include <future>
#include <memory>
#include <utility>

#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "worker/train/train_loop.h"

namespace ps {

namespace {

class PipelinedLoop : public TrainLoop {
 public:
  explicit PipelinedLoop(StepPieces* pieces) : TrainLoop(pieces) {}

  absl::Status RunEpoch(EpochBatches* batches) override;

 protected:
  // Before each step (BOUNDED: the coordinator's step gate).
  virtual absl::Status Gate() { return absl::OkStatus(); }

 private:
  // Reads the next batch into `p` and pulls its rows for step `step`, and
  // the dense vector with them when `with_dense`. Runs on the prefetch
  // thread.
  absl::Status Prefetch(EpochBatches* batches, PreparedBatch* p, int64_t step,
                        bool with_dense) const;
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
  PreparedBatch cur, next;
  // The dense vector comes with the rows of the batch that uses it: pulled
  // while the previous step computes, it may miss that step's push, as it
  // may miss the other workers' (ASYNC). The first step of this loop pulls
  // it in any case (a job resumed at a step that is not a multiple of
  // pull_dense_every has none yet).
  RETURN_IF_ERROR(Prefetch(batches, &cur, pieces_->steps(),
                           !dense_pulled_ || DenseDue(pieces_->steps())));
  while (cur.has_data) {
    std::future<absl::Status> prefetch =
        std::async(std::launch::async, &PipelinedLoop::Prefetch, this, batches,
                   &next, pieces_->steps() + 1, DenseDue(pieces_->steps() + 1));
    absl::Status status = LaunchStep(&cur);
    const absl::Time wait_start = absl::Now();
    absl::Status fetched = prefetch.get();
    pieces_->AddInputWaitMs(
        absl::ToDoubleMilliseconds(absl::Now() - wait_start));
    // The next batch's upload is queued now: on a GPU it overlaps this
    // batch's kernels.
    if (status.ok() && fetched.ok() && next.has_data) {
      fetched = pieces_->Stage(next);
      next.staged = fetched.ok();
    }
    if (status.ok()) status = FinishStep(cur);
    RETURN_IF_ERROR(status);
    RETURN_IF_ERROR(fetched);
    RETURN_IF_ERROR(AfterStep(*batches, cur));
    std::swap(cur, next);
  }
  return absl::OkStatus();
}

absl::Status PipelinedLoop::Prefetch(EpochBatches* batches, PreparedBatch* p,
                                     int64_t step, bool with_dense) const {
  RETURN_IF_ERROR(batches->Read(p));
  if (!p->has_data) return absl::OkStatus();
  return pieces_->PullRows(p, step, with_dense);
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
