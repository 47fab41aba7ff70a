// When a worker arrives at a checkpoint cut (PsClient::CheckpointArrive):
// after a step that checkpoint.every_steps schedules (id 0), or when the
// coordinator has said (through a heartbeat or a StepGate answer) that a
// round newer than the last one this worker took part in is open (its id).
//
// An answer to a question asked before this worker's last arrival returned
// is ignored: it may name the round just completed. (The coordinator still
// treats an arrival for a round that is already complete as complete.)
//
// Thread-safe: SetPending is called from the heartbeat thread, the rest from
// the training thread.
#ifndef PS_WORKER_TRAIN_CHECKPOINT_TRIGGER_H_
#define PS_WORKER_TRAIN_CHECKPOINT_TRIGGER_H_

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ps {

class CheckpointTrigger {
 public:
  // every_steps: checkpoint.every_steps (0: not by steps).
  explicit CheckpointTrigger(int64_t every_steps) : every_steps_(every_steps) {}

  // The coordinator's answer to a question asked at `asked_at`: `id` > 0 is
  // the open round, 0 none. The latest answer counts.
  void SetPending(int64_t id, absl::Time asked_at);

  // After the worker finished `step` steps: the id to arrive with (the open
  // round's, or 0 when every_steps schedules this step), or nullopt when no
  // arrival is due.
  std::optional<int64_t> Due(int64_t step);

  // The arrival with `id` returned at `done_at` (the checkpoint is
  // complete). Also called with id 0 when a Barrier returns: a round open
  // while the worker was parked there counted it, and was complete before
  // the barrier let it go.
  void Arrived(int64_t id, absl::Time done_at);

  // The newest round this worker took part in (0 before any).
  int64_t last_id();

 private:
  const int64_t every_steps_;
  absl::Mutex mu_;
  int64_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time arrived_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_CHECKPOINT_TRIGGER_H_
