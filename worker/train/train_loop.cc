#include "worker/train/train_loop.h"

#include <optional>

#include "common/status_macros.h"

namespace ps {

std::unique_ptr<TrainLoop> TrainLoop::Create(TrainingConfig::Mode mode,
                                             StepPieces* pieces) {
  switch (mode) {
    case TrainingConfig::SYNC:
      return NewSyncLoop(pieces);
    case TrainingConfig::BOUNDED:
      return NewBoundedLoop(pieces);
    case TrainingConfig::GEO:
      return NewGeoLoop(pieces);
    default:
      return NewAsyncLoop(pieces);
  }
}

absl::Status TrainLoop::Settle() { return pieces_->FlushAndWait(); }

absl::StatusOr<bool> TrainLoop::Barrier(const std::string& name,
                                        bool has_more) {
  RETURN_IF_ERROR(Settle());
  return pieces_->MeetAtBarrier(name, has_more);
}

absl::Status TrainLoop::AfterStep(const EpochBatches& batches,
                                  const PreparedBatch& p) {
  RETURN_IF_ERROR(pieces_->LogProgress(batches));
  const std::optional<int64_t> id = pieces_->RecordStep(p);
  if (!id.has_value()) return absl::OkStatus();
  RETURN_IF_ERROR(Settle());
  pieces_->ArriveAtCheckpoint(*id);
  return absl::OkStatus();
}

}  // namespace ps
