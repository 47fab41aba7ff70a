#include "worker/train/trainer.h"

#include <algorithm>
#include <future>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/data/data_reader.h"
#include "worker/train/geo_cache.h"

namespace ps {

namespace {

// held_out: evaluation's reader, of the lines data.eval_holdout_fraction
// holds out (when it is set).
ReaderOptions MakeReaderOptions(const JobConfig& config,
                                std::vector<std::string> files, int shard,
                                int num_shards, bool held_out) {
  ReaderOptions o;
  o.files = std::move(files);
  o.worker_rank = shard;
  o.num_workers = num_shards;
  o.batch_size = config.data().batch_size();
  o.threads = config.data().reader_threads();
  o.max_bad_line_ratio = config.data().max_bad_line_ratio();
  o.data = config.data();
  o.shuffle_buffer = config.data().shuffle_buffer();
  o.shuffle_seed = config.data().shuffle_seed();
  o.holdout_fraction = config.data().eval_holdout_fraction();
  o.held_out = held_out;
  return o;
}

ProgressOptions MakeProgressOptions(const JobConfig& config, int rank) {
  ProgressOptions o;
  o.rank = rank;
  o.log_every_steps = config.training().log_every_steps();
  o.epochs = config.training().epochs();
  return o;
}

}  // namespace

// A batch with its distinct keys and their pulled rows.
struct Trainer::Prepared {
  Batch batch;
  UniqueKeys unique;
  std::vector<float> rows;
  bool has_data = false;
  bool staged = false;  // handed to Model::Stage (ASYNC and BOUNDED)
  double pull_ms = 0;
  // With checkpoints: where the reader stood right after reading `batch`
  // (the next example not in it).
  DataPosition position;
};

Trainer::Trainer(const JobConfig& config, int rank, PsClient* client,
                 Backend* backend, MetricsLog* metrics)
    : config_(config),
      rank_(rank),
      client_(client),
      spec_(MakeModelSpec(config)),
      blocks_{spec_.dense_size, config.cluster().dense_block_size(),
              config.cluster().servers_size()},
      model_(spec_,
             config.model().pooling() == ModelConfig::MEAN ? PoolMode::kMean
                                                           : PoolMode::kSum,
             backend),
      dense_params_(spec_.dense_size),
      merger_(spec_.emb_dim, spec_.dense_size),
      reporter_(MakeProgressOptions(config, rank), metrics) {
  // Training AUC and logloss are gathered where the model runs (on a GPU:
  // in device memory) and fetched at each log line.
  model_.SetBackendMetrics(true);
  if (config.training().mode() == TrainingConfig::GEO) {
    geo_ = std::make_unique<GeoCache>(
        spec_.emb_dim,
        config.sparse_tables(static_cast<int>(spec_.sparse_table_id))
            .optimizer(),
        spec_.dense_size);
  }
  if (config.has_checkpoint()) {
    trigger_ =
        std::make_unique<CheckpointTrigger>(config.checkpoint().every_steps());
  }
}

Trainer::~Trainer() = default;

void Trainer::ResumeFrom(int64_t step, const DataPosition& position) {
  stats_.steps = step;
  step_.store(step, std::memory_order_relaxed);
  position_ = position;
  resume_ = position;
}

void Trainer::SetCheckpointPending(int64_t id, absl::Time asked_at) {
  if (trigger_ != nullptr) trigger_->SetPending(id, asked_at);
}

absl::Status Trainer::SettlePushes() {
  if (geo_ != nullptr) RETURN_IF_ERROR(GeoSync());
  RETURN_IF_ERROR(FlushPushes(0));
  return client_->WaitPushes(0);
}

absl::Status Trainer::AfterStep(const Prepared& p) {
  step_.store(stats_.steps, std::memory_order_relaxed);
  if (trigger_ == nullptr) return absl::OkStatus();
  position_ = p.position;
  std::optional<int64_t> id = trigger_->Due(stats_.steps);
  if (!id.has_value()) return absl::OkStatus();
  RETURN_IF_ERROR(SettlePushes());
  absl::StatusOr<std::string> dir =
      client_->CheckpointArrive(stats_.steps, position_, *id);
  trigger_->Arrived(*id, absl::Now());
  if (!dir.ok()) {
    // A checkpoint that could not be written (say, a full disk on a server)
    // does not stop training: the previous one stays the latest, and the
    // coordinator logged why.
    LOG(ERROR) << "worker " << rank_ << ": checkpoint at step " << stats_.steps
               << " failed, training goes on: " << dir.status();
    return absl::OkStatus();
  }
  LOG(INFO) << "worker " << rank_ << ": checkpoint " << *dir << " at step "
            << stats_.steps;
  return absl::OkStatus();
}

absl::StatusOr<bool> Trainer::Barrier(const std::string& name, bool has_more) {
  RETURN_IF_ERROR(SettlePushes());
  ASSIGN_OR_RETURN(bool all_done,
                   client_->Barrier(name, has_more, stats_.steps, position_));
  // A round opened while this worker was parked at the barrier counted it
  // as arrived, and the barrier let it go once the round was complete.
  if (trigger_ != nullptr) trigger_->Arrived(0, absl::Now());
  return all_done;
}

TrainStats Trainer::stats() const {
  TrainStats s = stats_;
  s.seconds = reporter_.seconds();
  s.auc = reporter_.total().Auc();
  s.logloss = reporter_.total().LogLoss();
  return s;
}

absl::Status Trainer::PullDense(int64_t step) {
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(
      client_->PullDense(0, blocks_, absl::MakeSpan(dense_params_), step));
  reporter_.AddPullMs(absl::ToDoubleMilliseconds(absl::Now() - start));
  // The model keeps them in backend memory until the next pull.
  return model_.SetDenseParams(dense_params_);
}

absl::Status Trainer::Prepare(Prepared* p, int64_t step) {
  p->unique = Deduplicate(p->batch);
  if (geo_ != nullptr) return absl::OkStatus();  // GEO pulls through its cache
  p->rows.resize(p->unique.unique_keys.size() * spec_.emb_dim);
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(client_->PullSparse(spec_.sparse_table_id, spec_.emb_dim,
                                      p->unique.unique_keys,
                                      absl::MakeSpan(p->rows), step));
  p->pull_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return absl::OkStatus();
}

absl::Status Trainer::Compute(const Prepared& p, absl::Span<const float> rows) {
  // Kernel errors of a device backend surface here: the model synchronizes.
  RETURN_IF_ERROR(model_.TrainStep(p.batch, p.unique.key_index,
                                   p.unique.unique_keys.size(), rows,
                                   &result_));
  CountStep(p);
  return absl::OkStatus();
}

void Trainer::CountStep(const Prepared& p) {
  ++stats_.steps;
  stats_.examples += p.batch.size();
  reporter_.CountStep(p.batch.size(), p.pull_ms);
}

absl::Status Trainer::DrainMetrics() {
  metrics_part_.Reset();
  RETURN_IF_ERROR(model_.TakeMetrics(&metrics_part_));
  reporter_.AddMetrics(metrics_part_);
  return absl::OkStatus();
}

absl::Status Trainer::LogProgress(absl::FunctionRef<double()> epoch_fraction) {
  if (!reporter_.Due(stats_.steps)) return absl::OkStatus();
  RETURN_IF_ERROR(DrainMetrics());
  reporter_.Report(stats_.steps, stats_.examples, epoch_fraction());
  return absl::OkStatus();
}

absl::Status Trainer::FlushPushes(int max_in_flight) {
  RETURN_IF_ERROR(client_->WaitPushes(max_in_flight));
  if (merger_.empty()) return absl::OkStatus();
  client_->PushAsync(spec_.sparse_table_id, spec_.emb_dim, merger_.keys(),
                     merger_.grads(), 0, blocks_, merger_.dense(), stats_.steps,
                     merger_.shows(), merger_.clicks());
  ++stats_.pushes;
  stats_.merged_steps += merger_.steps() - 1;
  merger_.Clear();
  return absl::OkStatus();
}

absl::Status Trainer::Push(const Prepared& p) {
  const TrainingConfig& tr = config_.training();
  absl::Time start = absl::Now();
  merger_.Add(p.unique.unique_keys, result_.row_grad, result_.dense_grad,
              p.unique.shows, p.unique.clicks);
  absl::Status status;
  if (tr.mode() == TrainingConfig::SYNC) {
    status = FlushPushes(0);
    if (status.ok()) status = client_->WaitPushes(0);
  } else if (client_->InFlightPushes() < tr.max_inflight_pushes() ||
             merger_.steps() > tr.max_merged_steps()) {
    // Room in the queue, or merged enough: send (waiting for room if needed).
    status = FlushPushes(tr.max_inflight_pushes() - 1);
  }
  reporter_.AddPushWaitMs(absl::ToDoubleMilliseconds(absl::Now() - start));
  return status;
}

absl::Status Trainer::LaunchStep(Prepared& p) {
  const TrainingConfig& tr = config_.training();
  if (tr.mode() == TrainingConfig::BOUNDED) {
    const absl::Time asked_at = absl::Now();
    ASSIGN_OR_RETURN(StepGateResult gate,
                     client_->StepGate(stats_.steps, false, tr.staleness()));
    // An open round: arrive after this step.
    SetCheckpointPending(gate.checkpoint_pending, asked_at);
  }
  if (stats_.steps % tr.pull_dense_every() == 0) {
    RETURN_IF_ERROR(PullDense(stats_.steps));
  }
  if (!p.staged) {
    RETURN_IF_ERROR(model_.Stage(p.batch, p.unique.key_index,
                                 p.unique.unique_keys.size(), p.rows));
  }
  p.staged = false;
  return model_.Launch(/*train=*/true, &result_);
}

absl::Status Trainer::FinishStep(const Prepared& p) {
  // Kernel errors of a device backend surface here.
  RETURN_IF_ERROR(model_.Finish());
  CountStep(p);
  return Push(p);
}

absl::Status Trainer::TrainEpoch(int epoch) {
  const TrainingConfig& tr = config_.training();
  const TrainingConfig::Mode mode = tr.mode();
  ASSIGN_OR_RETURN(std::vector<std::string> files,
                   ExpandFiles({config_.data().train_files().begin(),
                                config_.data().train_files().end()}));
  ReaderOptions options =
      MakeReaderOptions(config_, files, rank_, config_.cluster().num_workers(),
                        /*held_out=*/false);
  // A different shuffle every epoch, the same for every run.
  options.shuffle_seed += static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL;
  options.epoch = epoch;
  int64_t epoch_steps = 0;
  if (resume_.has_value() && resume_->epoch() == epoch) {
    options.start = *resume_;
    resume_.reset();
    // Steps this epoch had (max_steps counts them); exact with full batches.
    const int64_t batch = std::max(1, config_.data().batch_size());
    epoch_steps = (options.start->examples_done() + batch - 1) / batch;
  }
  ASSIGN_OR_RETURN(auto reader, DataReader::Open(options));
  // With checkpoints: where the reader stands (right after a Next; the
  // trainer reads one batch ahead, so each batch keeps its own).
  if (trigger_ != nullptr) {
    ASSIGN_OR_RETURN(position_, reader->Position());
  }
  reporter_.StartEpoch(epoch);
  // The epoch's progress for the log lines: the reader's bytes, or the
  // steps of max_steps, whichever is further.
  auto epoch_fraction = [&]() {
    double fraction = reader->progress();
    if (tr.max_steps() > 0) {
      fraction =
          std::max(fraction, static_cast<double>(epoch_steps) / tr.max_steps());
    }
    return fraction;
  };
  auto log_progress = [&]() { return LogProgress(epoch_fraction); };
  auto read = [&](Prepared* p, int64_t at_step) -> absl::Status {
    p->has_data = false;
    if (tr.max_steps() > 0 && epoch_steps >= tr.max_steps()) {
      return absl::OkStatus();
    }
    p->staged = false;
    ASSIGN_OR_RETURN(bool more, reader->Next(&p->batch));
    if (!more) return absl::OkStatus();
    if (trigger_ != nullptr) {
      ASSIGN_OR_RETURN(p->position, reader->Position());
    }
    ++epoch_steps;
    p->has_data = true;
    return Prepare(p, at_step);
  };
  // SYNC and GEO (ASYNC and BOUNDED: LaunchStep, FinishStep).
  auto train_one = [&](Prepared& p) -> absl::Status {
    if (mode == TrainingConfig::GEO) return TrainStepGeo(p);
    RETURN_IF_ERROR(PullDense(stats_.steps));
    RETURN_IF_ERROR(Compute(p, p.rows));
    return Push(p);
  };

  Prepared cur, next;
  if (mode == TrainingConfig::SYNC) {
    bool exhausted = false;
    for (int64_t k = 0;; ++k) {
      if (!exhausted) {
        RETURN_IF_ERROR(read(&cur, stats_.steps));
        exhausted = !cur.has_data;
        if (!exhausted) {
          RETURN_IF_ERROR(train_one(cur));
          RETURN_IF_ERROR(log_progress());
          RETURN_IF_ERROR(AfterStep(cur));
        }
      }
      ASSIGN_OR_RETURN(
          bool all_done,
          Barrier(absl::StrCat("epoch-", epoch, "-step-", k), !exhausted));
      if (all_done) break;
    }
  } else {
    // The next batch is read (and, but for GEO, whose pulls go through the
    // local cache when it trains, pulled) on another thread while this one
    // computes. ASYNC, BOUNDED: then it is staged (its upload queued,
    // overlapping this batch's kernels on a GPU) before this batch's
    // results are fetched and pushed.
    const bool overlap = mode != TrainingConfig::GEO;
    RETURN_IF_ERROR(read(&cur, stats_.steps));
    while (cur.has_data) {
      std::future<absl::Status> prefetch =
          std::async(std::launch::async, read, &next, stats_.steps + 1);
      absl::Status status = overlap ? LaunchStep(cur) : train_one(cur);
      absl::Status fetched = prefetch.get();
      if (overlap && status.ok() && fetched.ok() && next.has_data) {
        fetched = model_.Stage(next.batch, next.unique.key_index,
                               next.unique.unique_keys.size(), next.rows);
        next.staged = fetched.ok();
      }
      if (overlap && status.ok()) status = FinishStep(cur);
      RETURN_IF_ERROR(status);
      RETURN_IF_ERROR(fetched);
      RETURN_IF_ERROR(log_progress());
      RETURN_IF_ERROR(AfterStep(cur));
      std::swap(cur, next);
    }
  }
  RETURN_IF_ERROR(DrainMetrics());
  stats_.bad_lines += reader->bad_lines();
  reporter_.EndEpoch(stats_.examples, reader->bad_lines());
  return absl::OkStatus();
}

absl::Status Trainer::FinishTraining() {
  if (geo_ != nullptr) RETURN_IF_ERROR(GeoSync());
  RETURN_IF_ERROR(FlushPushes(0));
  RETURN_IF_ERROR(client_->WaitPushes(0));
  if (config_.training().mode() == TrainingConfig::BOUNDED) {
    // A round still open records where this worker finished (Finish).
    RETURN_IF_ERROR(client_->StepGate(stats_.steps, true, 0).status());
  }
  return absl::OkStatus();
}

absl::Status Trainer::TrainStepGeo(Prepared& p) {
  if (!geo_dense_pulled_) {  // the first step (of this run, maybe resumed)
    // The dense vector trains where the model runs (on a GPU: in device
    // memory); the host sees it at each sync.
    if (!model_.has_dense_optimizer()) {
      RETURN_IF_ERROR(
          model_.SetDenseOptimizer(config_.model().dense_optimizer()));
    }
    RETURN_IF_ERROR(PullDense(stats_.steps));
    geo_->SetDenseBase(dense_params_);
    geo_dense_pulled_ = true;
  }
  // Rows this round has not seen yet come from the servers.
  std::vector<uint64_t> missing = geo_->Missing(p.unique.unique_keys);
  if (!missing.empty()) {
    std::vector<float> values(missing.size() * spec_.emb_dim);
    absl::Time start = absl::Now();
    RETURN_IF_ERROR(client_->PullSparse(spec_.sparse_table_id, spec_.emb_dim,
                                        missing, absl::MakeSpan(values),
                                        stats_.steps));
    p.pull_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    geo_->Insert(missing, values);
  }
  p.rows.resize(p.unique.unique_keys.size() * spec_.emb_dim);
  geo_->Gather(p.unique.unique_keys, absl::MakeSpan(p.rows));
  RETURN_IF_ERROR(Compute(p, p.rows));
  geo_->ApplySparse(p.unique.unique_keys, result_.row_grad);
  if (stats_.steps % config_.training().geo_every() == 0) {
    RETURN_IF_ERROR(GeoSync());
  }
  return absl::OkStatus();
}

absl::Status Trainer::GeoSync() {
  // Nothing trained in this run yet (a resumed job may start at step > 0).
  if (!geo_dense_pulled_) return absl::OkStatus();
  if (stats_.steps == geo_->synced_step()) return absl::OkStatus();
  absl::Time start = absl::Now();
  std::vector<uint64_t> keys;
  std::vector<float> deltas;
  geo_->SparseDeltas(&keys, &deltas);
  // The model's dense vector, as its local steps left it.
  RETURN_IF_ERROR(model_.GetDenseParams(absl::MakeSpan(dense_params_)));
  std::vector<float> dense_delta = geo_->DenseDelta(dense_params_);
  client_->PushDeltasAsync(spec_.sparse_table_id, spec_.emb_dim, keys, deltas,
                           0, blocks_, dense_delta, stats_.steps);
  ++stats_.pushes;
  RETURN_IF_ERROR(client_->WaitPushes(0));
  geo_->Clear(stats_.steps);
  // Fresh values: everyone's deltas so far.
  RETURN_IF_ERROR(PullDense(stats_.steps));
  geo_->SetDenseBase(dense_params_);
  reporter_.AddPushWaitMs(absl::ToDoubleMilliseconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::StatusOr<EvalStats> Trainer::Evaluate(
    const std::vector<std::string>& patterns, int shard, int num_shards) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ExpandFiles(patterns));
  ReaderOptions options =
      MakeReaderOptions(config_, files, shard, num_shards, /*held_out=*/true);
  options.shuffle_buffer = 0;  // order does not matter for metrics
  ASSIGN_OR_RETURN(auto reader, DataReader::Open(options));
  absl::Time start = absl::Now();
  // Training's metrics are counted; evaluation's stay on the backend too,
  // unless per-value calibration needs each prediction.
  RETURN_IF_ERROR(DrainMetrics());
  const int cal_slot = config_.training().calibration_slot();
  model_.SetBackendMetrics(cal_slot < 0);
  struct RestoreMetrics {
    Model* model;
    ~RestoreMetrics() { model->SetBackendMetrics(true); }
  } restore{&model_};
  RETURN_IF_ERROR(PullDense(-1));
  // GEO: the model now holds the servers' vector, which may include other
  // workers' deltas pushed after this worker's last sync; measure the next
  // delta from it, or they would be pushed again.
  if (geo_ != nullptr) geo_->SetDenseBase(dense_params_);
  struct ValueSums {
    int64_t n = 0;
    double prob = 0;
    double clicks = 0;
  };
  absl::flat_hash_map<uint64_t, ValueSums> per_value;
  AucAccumulator acc;
  Prepared p;
  StepResult result;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader->Next(&p.batch));
    if (!more) break;
    p.unique = Deduplicate(p.batch);
    p.rows.resize(p.unique.unique_keys.size() * spec_.emb_dim);
    RETURN_IF_ERROR(client_->PullSparse(spec_.sparse_table_id, spec_.emb_dim,
                                        p.unique.unique_keys,
                                        absl::MakeSpan(p.rows), -1));
    RETURN_IF_ERROR(model_.Predict(p.batch, p.unique.key_index,
                                   p.unique.unique_keys.size(), p.rows,
                                   &result));
    const Batch& b = p.batch;
    // With calibration the predictions came to the host (else the
    // metrics stayed on the backend).
    for (int i = 0; cal_slot >= 0 && i < b.size(); ++i) {
      acc.Add(result.probs[i], b.labels[i]);
      uint32_t begin = b.offsets[i * b.num_slots + cal_slot];
      uint32_t end = b.offsets[i * b.num_slots + cal_slot + 1];
      for (uint32_t k = begin; k < end; ++k) {
        ValueSums& v = per_value[b.keys[k]];
        ++v.n;
        v.prob += result.probs[i];
        v.clicks += b.labels[i];
      }
    }
  }
  if (cal_slot < 0) RETURN_IF_ERROR(model_.TakeMetrics(&acc));
  EvalStats stats;
  stats.examples = acc.count();
  stats.bad_lines = reader->bad_lines();
  stats.auc = acc.Auc();
  stats.logloss = acc.LogLoss();
  stats.calibration = acc.Calibration();
  stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (const auto& [key, v] : per_value) {
    stats.per_value.push_back(
        {key, v.n, v.prob / v.n, v.clicks / static_cast<double>(v.n)});
  }
  constexpr size_t kTopValues = 10;
  std::sort(stats.per_value.begin(), stats.per_value.end(),
            [](const SlotValueCalibration& a, const SlotValueCalibration& b) {
              return a.examples != b.examples ? a.examples > b.examples
                                              : a.key < b.key;
            });
  if (stats.per_value.size() > kTopValues) stats.per_value.resize(kTopValues);
  return stats;
}

}  // namespace ps
