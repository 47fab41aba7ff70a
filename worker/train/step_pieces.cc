#include "worker/train/step_pieces.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

namespace {

double MillisecondsSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

ProgressOptions MakeProgressOptions(const JobConfig& config, int rank) {
  ProgressOptions o;
  o.rank = rank;
  o.log_every_steps = config.training().log_every_steps();
  o.epochs = config.training().epochs();
  return o;
}

std::vector<int> TableDims(const ModelSpec& spec) {
  std::vector<int> dims;
  for (const TableSpec& table : spec.tables) dims.push_back(table.dim);
  return dims;
}

// Per table of `spec`: its part of the rows or gradients `values` (laid out
// by RowFloatOffsets) for the keys of `unique`.
std::vector<SparsePush> SparseParts(const ModelSpec& spec,
                                    const UniqueKeys& unique,
                                    absl::Span<const float> values) {
  const std::vector<int64_t> at = RowFloatOffsets(spec, unique.table_rows);
  std::vector<SparsePush> parts;
  for (int t = 0; t < unique.num_tables(); ++t) {
    SparsePush part;
    part.table = spec.tables[t].table_id;
    part.dim = spec.tables[t].dim;
    part.keys = unique.OfTable(unique.unique_keys, t);
    part.values = values.subspan(at[t], at[t + 1] - at[t]);
    part.shows = unique.OfTable(unique.shows, t);
    part.clicks = unique.OfTable(unique.clicks, t);
    parts.push_back(part);
  }
  return parts;
}

std::unique_ptr<CheckpointTrigger> MakeTrigger(const JobConfig& config) {
  if (!config.has_checkpoint()) return nullptr;
  return std::make_unique<CheckpointTrigger>(config.checkpoint().every_steps());
}

}  // namespace

// --- EpochBatches
// -------------------------------------------------------------

EpochBatches::EpochBatches(int epoch, std::unique_ptr<DataReader> reader,
                           int64_t max_steps, int64_t steps_done,
                           bool positions, const ModelSpec& spec)
    : epoch_(epoch),
      reader_(std::move(reader)),
      max_steps_(max_steps),
      positions_(positions),
      slot_table_(spec.slot_table),
      num_tables_(static_cast<int>(spec.tables.size())),
      steps_(steps_done) {}

absl::Status EpochBatches::Read(PreparedBatch* p) {
  p->has_data = false;
  {
    absl::MutexLock lock(&mu_);
    if (max_steps_ > 0 && steps_ >= max_steps_) return absl::OkStatus();
    p->staged = false;
    const absl::Time start = absl::Now();
    ASSIGN_OR_RETURN(bool more, reader_->Next(&p->batch));
    p->read_ms = MillisecondsSince(start);
    if (!more) return absl::OkStatus();
    if (positions_) {
      ASSIGN_OR_RETURN(p->position, reader_->Position());
    }
    ++steps_;
  }
  p->has_data = true;
  const absl::Time dedup_start = absl::Now();
  p->unique = Deduplicate(p->batch, slot_table_, num_tables_);
  p->dedup_ms = MillisecondsSince(dedup_start);
  return absl::OkStatus();
}

double EpochBatches::fraction() const {
  absl::MutexLock lock(&mu_);
  double fraction = reader_->progress();
  if (max_steps_ > 0) {
    fraction = std::max(fraction, static_cast<double>(steps_) / max_steps_);
  }
  return fraction;
}

// --- StepPieces: state
// --------------------------------------------------------

StepPieces::StepPieces(const JobConfig& config, int rank, PsClient* client,
                       Backend* backend, MetricsLog* metrics)
    : config_(config),
      rank_(rank),
      client_(client),
      spec_(MakeModelSpec(config)),
      blocks_{spec_.dense_size, config.cluster().dense_block_size(),
              config.cluster().servers_size()},
      trigger_(MakeTrigger(config)),
      model_(spec_, PoolModeOf(config.model().pooling()), backend),
      dense_params_(spec_.dense_size),
      merger_(TableDims(spec_), spec_.dense_size),
      reporter_(MakeProgressOptions(config, rank), metrics) {
  // Training AUC and logloss are gathered where the model runs (on a GPU:
  // in device memory) and fetched at each log line.
  model_.SetBackendMetrics(true);
}

TrainStats StepPieces::stats() const {
  TrainStats s = stats_;
  s.seconds = reporter_.seconds();
  s.auc = reporter_.total().Auc();
  s.logloss = reporter_.total().LogLoss();
  return s;
}

void StepPieces::ResumeFrom(int64_t step, const DataPosition& position) {
  stats_.steps = step;
  step_.store(step, std::memory_order_relaxed);
  position_ = position;
}

void StepPieces::SetCheckpointPending(int64_t id, absl::Time asked_at) {
  if (trigger_ != nullptr) trigger_->SetPending(id, asked_at);
}

// --- StepPieces: pull, compute, push
// ------------------------------------------

absl::Status StepPieces::PullRows(PreparedBatch* p, int64_t step,
                                  bool with_dense) const {
  const UniqueKeys& unique = p->unique;
  const std::vector<int64_t> at = RowFloatOffsets(spec_, unique.table_rows);
  p->rows.resize(at.back());
  std::vector<SparsePull> pulls;
  for (int t = 0; t < unique.num_tables(); ++t) {
    pulls.push_back(
        SparsePull{spec_.tables[t].table_id, spec_.tables[t].dim,
                   unique.OfTable(unique.unique_keys, t),
                   absl::MakeSpan(p->rows).subspan(at[t], at[t + 1] - at[t])});
  }
  const absl::Time start = absl::Now();
  p->has_dense = false;
  if (with_dense && spec_.dense_size > 0) {
    p->dense.resize(spec_.dense_size);
    const DensePull dense{0, &blocks_, absl::MakeSpan(p->dense)};
    RETURN_IF_ERROR(client_->PullSparseAndDense(pulls, dense, step));
    p->has_dense = true;
  } else {
    RETURN_IF_ERROR(client_->PullSparse(pulls, step));
  }
  p->pull_ms = MillisecondsSince(start);
  return absl::OkStatus();
}

absl::Status StepPieces::UseDense(PreparedBatch* p) {
  CHECK(p->has_dense);
  dense_params_.swap(p->dense);
  p->has_dense = false;
  return model_.SetDenseParams(dense_params_);
}

absl::Status StepPieces::PullDense(int64_t step) {
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(
      client_->PullDense(0, blocks_, absl::MakeSpan(dense_params_), step));
  const double ms = MillisecondsSince(start);
  reporter_.AddPullMs(ms);
  stats_.stages.pull_ms += ms;
  // The model keeps them in backend memory until the next pull.
  return model_.SetDenseParams(dense_params_);
}

absl::Status StepPieces::Stage(const PreparedBatch& p) {
  const absl::Time start = absl::Now();
  absl::Status status =
      model_.Stage(p.batch, p.unique.key_index, p.unique.table_rows, p.rows);
  stats_.stages.compute_ms += MillisecondsSince(start);
  return status;
}

absl::Status StepPieces::Compute(const PreparedBatch& p) {
  // Kernel errors of a device backend surface here: the model synchronizes.
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(model_.TrainStep(p.batch, p.unique.key_index,
                                   p.unique.table_rows, p.rows, &result_));
  stats_.stages.compute_ms += MillisecondsSince(start);
  CountStep(p);
  return absl::OkStatus();
}

void StepPieces::CountStep(const PreparedBatch& p) {
  ++stats_.steps;
  stats_.examples += p.batch.size();
  ++stats_.stages.steps;
  stats_.stages.read_ms += p.read_ms;
  stats_.stages.dedup_ms += p.dedup_ms;
  stats_.stages.pull_ms += p.pull_ms;
  reporter_.CountStep(p.batch.size(), p.pull_ms);
}

absl::Status StepPieces::PushAndWait(const PreparedBatch& p) {
  const absl::Time start = absl::Now();
  merger_.Add(SparseParts(spec_, p.unique, result_.row_grad),
              result_.dense_grad);
  absl::Status status = FlushAndWait();
  AddPushMs(MillisecondsSince(start));
  return status;
}

absl::Status StepPieces::PushBounded(const PreparedBatch& p) {
  const TrainingConfig& tr = config_.training();
  const absl::Time start = absl::Now();
  merger_.Add(SparseParts(spec_, p.unique, result_.row_grad),
              result_.dense_grad);
  absl::Status status;
  if (client_->InFlightPushes() < tr.max_inflight_pushes() ||
      merger_.steps() > tr.max_merged_steps()) {
    // Room in the queue, or merged enough: send (waiting for room if needed).
    status = FlushPushes(tr.max_inflight_pushes() - 1);
  }
  AddPushMs(MillisecondsSince(start));
  return status;
}

absl::Status StepPieces::FlushAndWait() {
  RETURN_IF_ERROR(FlushPushes(0));
  return client_->WaitPushes(0);
}

absl::Status StepPieces::FlushPushes(int max_in_flight) {
  RETURN_IF_ERROR(client_->WaitPushes(max_in_flight));
  if (merger_.empty()) return absl::OkStatus();
  std::vector<SparsePush> parts;
  for (int t = 0; t < merger_.num_tables(); ++t) {
    parts.push_back(SparsePush{spec_.tables[t].table_id, spec_.tables[t].dim,
                               merger_.keys(t), merger_.grads(t),
                               merger_.shows(t), merger_.clicks(t)});
  }
  client_->PushAsync(parts, 0, blocks_, merger_.dense(), stats_.steps);
  ++stats_.pushes;
  stats_.merged_steps += merger_.steps() - 1;
  merger_.Clear();
  return absl::OkStatus();
}

void StepPieces::PushDeltas(absl::Span<const std::vector<uint64_t>> keys,
                            absl::Span<const std::vector<float>> deltas,
                            absl::Span<const float> dense_delta) {
  CHECK_EQ(keys.size(), spec_.tables.size());
  CHECK_EQ(deltas.size(), spec_.tables.size());
  std::vector<SparsePush> parts;
  for (size_t t = 0; t < keys.size(); ++t) {
    parts.push_back(SparsePush{spec_.tables[t].table_id,
                               spec_.tables[t].dim,
                               keys[t],
                               deltas[t],
                               {},
                               {}});
  }
  client_->PushDeltasAsync(parts, 0, blocks_, dense_delta, stats_.steps);
  ++stats_.pushes;
}

// --- StepPieces: after a step
// -------------------------------------------------

absl::Status StepPieces::DrainMetrics() {
  metrics_part_.Reset();
  RETURN_IF_ERROR(model_.TakeMetrics(&metrics_part_));
  reporter_.AddMetrics(metrics_part_);
  return absl::OkStatus();
}

absl::Status StepPieces::LogProgress(const EpochBatches& batches) {
  if (!reporter_.Due(stats_.steps)) return absl::OkStatus();
  RETURN_IF_ERROR(DrainMetrics());
  reporter_.Report(stats_.steps, stats_.examples, batches.fraction());
  return absl::OkStatus();
}

std::optional<int64_t> StepPieces::RecordStep(const PreparedBatch& p) {
  step_.store(stats_.steps, std::memory_order_relaxed);
  if (trigger_ == nullptr) return std::nullopt;
  position_ = p.position;
  return trigger_->Due(stats_.steps);
}

void StepPieces::ArriveAtCheckpoint(int64_t id) {
  absl::StatusOr<std::string> dir =
      client_->CheckpointArrive(stats_.steps, position_, id);
  trigger_->Arrived(id, absl::Now());
  if (!dir.ok()) {
    // A checkpoint that could not be written (say, a full disk on a server)
    // does not stop training: the previous one stays the latest, and the
    // coordinator logged why.
    LOG(ERROR) << "worker " << rank_ << ": checkpoint at step " << stats_.steps
               << " failed, training goes on: " << dir.status();
    return;
  }
  LOG(INFO) << "worker " << rank_ << ": checkpoint " << *dir << " at step "
            << stats_.steps;
}

absl::StatusOr<bool> StepPieces::MeetAtBarrier(const std::string& name,
                                               bool has_more) {
  ASSIGN_OR_RETURN(bool all_done,
                   client_->Barrier(name, has_more, stats_.steps, position_));
  // A round opened while this worker was parked at the barrier counted it
  // as arrived, and the barrier let it go once the round was complete.
  if (trigger_ != nullptr) trigger_->Arrived(0, absl::Now());
  return all_done;
}

absl::Status StepPieces::EndEpoch(const EpochBatches& batches) {
  RETURN_IF_ERROR(DrainMetrics());
  stats_.bad_lines += batches.bad_lines();
  reporter_.EndEpoch(stats_.examples, batches.bad_lines());
  return absl::OkStatus();
}

}  // namespace ps
