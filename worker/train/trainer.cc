#include "worker/train/trainer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "kernels/auc.h"
#include "worker/data/data_reader.h"
#include "worker/model/model.h"
#include "worker/train/step_pieces.h"
#include "worker/train/train_loop.h"

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

}  // namespace

Trainer::Trainer(const JobConfig& config, int rank, PsClient* client,
                 Backend* backend, MetricsLog* metrics)
    : pieces_(
          std::make_unique<StepPieces>(config, rank, client, backend, metrics)),
      loop_(TrainLoop::Create(config.training().mode(), pieces_.get())) {}

Trainer::~Trainer() = default;

void Trainer::ResumeFrom(int64_t step, const DataPosition& position) {
  pieces_->ResumeFrom(step, position);
  resume_ = position;
}

void Trainer::SetCheckpointPending(int64_t id, absl::Time asked_at) {
  pieces_->SetCheckpointPending(id, asked_at);
}

int64_t Trainer::step() const { return pieces_->step(); }

const DataPosition& Trainer::position() const { return pieces_->position(); }

TrainStats Trainer::stats() const { return pieces_->stats(); }

absl::StatusOr<bool> Trainer::Barrier(const std::string& name, bool has_more) {
  return loop_->Barrier(name, has_more);
}

absl::Status Trainer::FinishTraining() { return loop_->Finish(); }

absl::StatusOr<std::unique_ptr<EpochBatches>> Trainer::OpenEpoch(int epoch) {
  const JobConfig& config = pieces_->config();
  ASSIGN_OR_RETURN(std::vector<std::string> files,
                   ExpandFiles({config.data().train_files().begin(),
                                config.data().train_files().end()}));
  ReaderOptions options =
      MakeReaderOptions(config, files, pieces_->rank(),
                        config.cluster().num_workers(), /*held_out=*/false);
  // A different shuffle every epoch, the same for every run.
  options.shuffle_seed += static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL;
  options.epoch = epoch;
  int64_t steps_done = 0;
  if (resume_.has_value() && resume_->epoch() == epoch) {
    options.start = *resume_;
    resume_.reset();
    // Steps this epoch had (max_steps counts them); exact with full batches.
    const int64_t batch = std::max(1, config.data().batch_size());
    steps_done = (options.start->examples_done() + batch - 1) / batch;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<DataReader> reader,
                   DataReader::Open(options));
  // With checkpoints: where the reader stands (right after a Next; the
  // loops read one batch ahead, so each batch keeps its own).
  if (pieces_->has_checkpoints()) {
    ASSIGN_OR_RETURN(DataPosition position, reader->Position());
    pieces_->set_position(position);
  }
  return std::make_unique<EpochBatches>(epoch, std::move(reader),
                                        config.training().max_steps(),
                                        steps_done, pieces_->has_checkpoints());
}

absl::Status Trainer::TrainEpoch(int epoch) {
  ASSIGN_OR_RETURN(std::unique_ptr<EpochBatches> batches, OpenEpoch(epoch));
  pieces_->StartEpoch(epoch);
  RETURN_IF_ERROR(loop_->RunEpoch(batches.get()));
  return pieces_->EndEpoch(*batches);
}

absl::StatusOr<EvalStats> Trainer::Evaluate(
    const std::vector<std::string>& patterns, int shard, int num_shards) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ExpandFiles(patterns));
  ReaderOptions options = MakeReaderOptions(pieces_->config(), files, shard,
                                            num_shards, /*held_out=*/true);
  options.shuffle_buffer = 0;  // order does not matter for metrics
  ASSIGN_OR_RETURN(auto reader, DataReader::Open(options));
  absl::Time start = absl::Now();
  // Training's metrics are counted; evaluation's stay on the backend too,
  // unless per-value calibration needs each prediction.
  RETURN_IF_ERROR(pieces_->DrainMetrics());
  const int cal_slot = pieces_->training().calibration_slot();
  Model& model = pieces_->model();
  model.SetBackendMetrics(cal_slot < 0);
  struct RestoreMetrics {
    Model* model;
    ~RestoreMetrics() { model->SetBackendMetrics(true); }
  } restore{&model};
  RETURN_IF_ERROR(pieces_->PullDense(-1));
  loop_->DenseReloaded();
  struct ValueSums {
    int64_t n = 0;
    double prob = 0;
    double clicks = 0;
  };
  absl::flat_hash_map<uint64_t, ValueSums> per_value;
  AucAccumulator acc;
  PreparedBatch p;
  StepResult result;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader->Next(&p.batch));
    if (!more) break;
    p.unique = Deduplicate(p.batch);
    RETURN_IF_ERROR(pieces_->PullRows(&p, -1));
    RETURN_IF_ERROR(model.Predict(p.batch, p.unique.key_index,
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
  if (cal_slot < 0) RETURN_IF_ERROR(model.TakeMetrics(&acc));
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
