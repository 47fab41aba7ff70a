// SYNC: one step at a time, with a barrier after each (train_loop.h).
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/train/train_loop.h"

namespace ps {

namespace {

class SyncLoop final : public TrainLoop {
 public:
  explicit SyncLoop(StepPieces* pieces) : TrainLoop(pieces) {}

  absl::Status RunEpoch(EpochBatches* batches) override;

 private:
  // Reads, pulls and trains the next batch into `p`; false when the epoch
  // has no more.
  absl::StatusOr<bool> TrainNext(EpochBatches* batches, PreparedBatch* p);
};

absl::Status SyncLoop::RunEpoch(EpochBatches* batches) {
  PreparedBatch p;
  bool exhausted = false;
  // A worker out of data still attends every barrier (has_more = false)
  // until all are done.
  for (int64_t k = 0;; ++k) {
    if (!exhausted) {
      ASSIGN_OR_RETURN(bool trained, TrainNext(batches, &p));
      exhausted = !trained;
    }
    ASSIGN_OR_RETURN(
        bool all_done,
        Barrier(absl::StrCat("epoch-", batches->epoch(), "-step-", k),
                !exhausted));
    if (all_done) return absl::OkStatus();
  }
}

absl::StatusOr<bool> SyncLoop::TrainNext(EpochBatches* batches,
                                         PreparedBatch* p) {
  const int64_t step = pieces_->steps();
  RETURN_IF_ERROR(batches->Read(p));
  if (!p->has_data) return false;
  RETURN_IF_ERROR(pieces_->PullRows(p, step));
  RETURN_IF_ERROR(pieces_->PullDense(step));
  // The step this one's push carries: dropout's masks go by it.
  pieces_->model().SetStep(step + 1, static_cast<uint64_t>(pieces_->rank()));
  RETURN_IF_ERROR(pieces_->Compute(*p));
  RETURN_IF_ERROR(pieces_->PushAndWait(*p));
  RETURN_IF_ERROR(AfterStep(*batches, *p));
  return true;
}

}  // namespace

std::unique_ptr<TrainLoop> NewSyncLoop(StepPieces* pieces) {
  return std::make_unique<SyncLoop>(pieces);
}

}  // namespace ps
