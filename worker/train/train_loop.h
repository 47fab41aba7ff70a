// How a worker trains: one loop per way of training, each in its own file,
// all built from the shared pieces of worker/train/step_pieces.h. The
// Trainer makes the loop training.mode names once, at construction.
//
//   SYNC    (sync_loop.cc): read a batch, pull its rows and the dense
//           vector, compute, push and wait for every answer, then meet the
//           other workers at a barrier; no prefetch, so every step sees all
//           pushes of the previous one.
//   ASYNC   (pipelined_loop.cc): batches t+1 .. t+prefetch_batches are read
//           and pulled on two other threads while batch t computes (two
//           pulls in flight), t+1 then staged
//           (Model::Stage: on a GPU its upload overlaps t's kernels) before
//           t's results are fetched; pushes are asynchronous, at most
//           max_inflight_pushes in flight, further steps merged per key
//           (PushMerger, up to max_merged_steps); the dense vector is
//           pulled every pull_dense_every steps, with the rows of the
//           batch that uses it.
//   BOUNDED (pipelined_loop.cc): ASYNC, and before each step the
//           coordinator's StepGate holds the worker back until it is at most
//           `staleness` steps ahead of the slowest; at the end it tells the
//           coordinator it holds nobody back.
//   GEO     (geo_loop.cc): local training on a GeoCache with the table's
//           rule and the dense optimizer on the backend; deltas every
//           geo_every steps. The next batch is read (not pulled) on another
//           thread.
//
// Every loop ends each step alike (AfterStep): a progress line when due,
// then, with checkpoints, the step's position is recorded and a due
// checkpoint is arrived at after Settle.
//
// A loop is used by the training thread only (its prefetch thread aside,
// see step_pieces.h).
#ifndef PS_WORKER_TRAIN_TRAIN_LOOP_H_
#define PS_WORKER_TRAIN_TRAIN_LOOP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/config.pb.h"
#include "worker/train/step_pieces.h"

namespace ps {

class TrainLoop {
 public:
  // The loop for `mode` (ASYNC for a mode it does not know; config
  // validation refuses those). `pieces` is not owned and must outlive the
  // loop.
  static std::unique_ptr<TrainLoop> Create(TrainingConfig::Mode mode,
                                           StepPieces* pieces);

  TrainLoop(const TrainLoop&) = delete;
  TrainLoop& operator=(const TrainLoop&) = delete;
  virtual ~TrainLoop() = default;

  // Trains on every batch of `batches`.
  virtual absl::Status RunEpoch(EpochBatches* batches) = 0;
  // Sends what is pending and waits for every push (GEO: pushes its deltas
  // first).
  virtual absl::Status Settle();
  // After the last epoch: Settle (BOUNDED: and leaves the step gate).
  virtual absl::Status Finish() { return Settle(); }
  // The model holds the servers' dense vector again (an evaluation pulled
  // it). GEO measures its next delta from it.
  virtual void DenseReloaded() {}

  // Settles, then meets the other workers at barrier `name`
  // (StepPieces::MeetAtBarrier); returns whether all are done.
  absl::StatusOr<bool> Barrier(const std::string& name, bool has_more);

 protected:
  explicit TrainLoop(StepPieces* pieces) : pieces_(pieces) {}

  // After a step trained `p`: a progress line when due; with checkpoints,
  // records p's position and arrives at a due checkpoint after Settle.
  absl::Status AfterStep(const EpochBatches& batches, const PreparedBatch& p);

  StepPieces* const pieces_;
};

// The loops (see the top of this file); TrainLoop::Create picks one.
std::unique_ptr<TrainLoop> NewSyncLoop(StepPieces* pieces);
std::unique_ptr<TrainLoop> NewAsyncLoop(StepPieces* pieces);
std::unique_ptr<TrainLoop> NewBoundedLoop(StepPieces* pieces);
std::unique_ptr<TrainLoop> NewGeoLoop(StepPieces* pieces);

}  // namespace ps

#endif  // PS_WORKER_TRAIN_TRAIN_LOOP_H_
