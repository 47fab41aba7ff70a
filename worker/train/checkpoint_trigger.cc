#include "worker/train/checkpoint_trigger.h"

#include <algorithm>

namespace ps {

void CheckpointTrigger::SetPending(int64_t id, absl::Time asked_at) {
  absl::MutexLock lock(&mu_);
  if (asked_at < arrived_at_) return;  // may name the round just completed
  pending_ = id;
}

std::optional<int64_t> CheckpointTrigger::Due(int64_t step) {
  absl::MutexLock lock(&mu_);
  if (pending_ > last_id_) return pending_;
  if (every_steps_ > 0 && step > 0 && step % every_steps_ == 0) return 0;
  return std::nullopt;
}

void CheckpointTrigger::Arrived(int64_t id, absl::Time done_at) {
  absl::MutexLock lock(&mu_);
  // A round reported while the arrival waited is the one it completed (one
  // round is open at a time).
  last_id_ = std::max({last_id_, id, pending_});
  pending_ = 0;
  arrived_at_ = std::max(arrived_at_, done_at);
}

int64_t CheckpointTrigger::last_id() {
  absl::MutexLock lock(&mu_);
  return last_id_;
}

}  // namespace ps
