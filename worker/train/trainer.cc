#include "worker/train/trainer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "kernels/auc.h"
#include "worker/data/data_reader.h"
#include "worker/data/follow_reader.h"
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
  o.holdout_fold = config.data().eval_holdout_fold();
  o.held_out = held_out;
  return o;
}

// Evaluation's predictions per value of training.calibration_slot.
class SlotCalibration {
 public:
  explicit SlotCalibration(int slot) : slot_(slot) {}

  // Adds the predictions `probs` of `b`'s examples.
  void Add(const Batch& b, absl::Span<const float> probs) {
    for (int i = 0; i < b.size(); ++i) {
      const uint32_t begin = b.offsets[i * b.num_slots + slot_];
      const uint32_t end = b.offsets[i * b.num_slots + slot_ + 1];
      for (uint32_t k = begin; k < end; ++k) {
        Sums& v = sums_[b.keys[k]];
        ++v.n;
        v.prob += probs[i];
        v.clicks += b.labels[i];
      }
    }
  }

  // The `n` values with the most examples (ties: the smaller key first).
  std::vector<SlotValueCalibration> Top(size_t n) const {
    std::vector<SlotValueCalibration> top;
    for (const auto& [key, v] : sums_) {
      top.push_back(
          {key, v.n, v.prob / v.n, v.clicks / static_cast<double>(v.n)});
    }
    std::sort(top.begin(), top.end(),
              [](const SlotValueCalibration& a, const SlotValueCalibration& b) {
                return a.examples != b.examples ? a.examples > b.examples
                                                : a.key < b.key;
              });
    if (top.size() > n) top.resize(n);
    return top;
  }

 private:
  struct Sums {
    int64_t n = 0;
    double prob = 0;
    double clicks = 0;
  };

  const int slot_;
  absl::flat_hash_map<uint64_t, Sums> sums_;
};

// Scores every batch of `reader` with the servers' rows. With
// `calibration`, the predictions come to the host and are added to `acc`
// and to it; without, they stay in the model's backend metrics.
absl::Status ScoreBatches(StepPieces* pieces, DataReader* reader,
                          SlotCalibration* calibration, AucAccumulator* acc) {
  PreparedBatch p;
  StepResult result;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader->Next(&p.batch));
    if (!more) return absl::OkStatus();
    p.unique = DeduplicateByTable(pieces->spec(), p.batch);
    RETURN_IF_ERROR(pieces->PullRows(&p, -1));
    RETURN_IF_ERROR(pieces->model().Predict(
        p.batch, p.unique.key_index, p.unique.table_rows, p.rows, &result));
    if (calibration == nullptr) continue;
    for (int i = 0; i < p.batch.size(); ++i) {
      acc->Add(result.probs[i], p.batch.labels[i]);
    }
    calibration->Add(p.batch, result.probs);
  }
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
  const std::vector<std::string> patterns(config.data().train_files().begin(),
                                          config.data().train_files().end());
  std::vector<std::string> files;
  // Follow mode lists the files itself, as they arrive.
  if (!config.data().follow()) {
    ASSIGN_OR_RETURN(files, ExpandFiles(patterns));
  }
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
  std::unique_ptr<DataReader> reader;
  if (config.data().follow()) {
    FollowOptions follow;
    follow.patterns = patterns;
    follow.poll = absl::Milliseconds(config.data().follow_poll_ms());
    follow.done_file = config.data().follow_done_file();
    ASSIGN_OR_RETURN(reader, FollowReader::Open(options, follow));
  } else {
    ASSIGN_OR_RETURN(reader, DataReader::Open(options));
  }
  // With checkpoints: where the reader stands (right after a Next; the
  // loops read one batch ahead, so each batch keeps its own).
  if (pieces_->has_checkpoints()) {
    ASSIGN_OR_RETURN(DataPosition position, reader->Position());
    pieces_->set_position(position);
  }
  return std::make_unique<EpochBatches>(
      epoch, std::move(reader), config.training().max_steps(), steps_done,
      pieces_->has_checkpoints(), pieces_->spec());
}

absl::Status Trainer::TrainEpoch(int epoch) {
  ASSIGN_OR_RETURN(std::unique_ptr<EpochBatches> batches, OpenEpoch(epoch));
  pieces_->StartEpoch(epoch);
  RETURN_IF_ERROR(loop_->RunEpoch(batches.get()));
  return pieces_->EndEpoch(*batches);
}

absl::StatusOr<EvalStats> Trainer::Evaluate(
    const std::vector<std::string>& patterns, int shard, int num_shards) {
  const JobConfig& config = pieces_->config();
  ASSIGN_OR_RETURN(std::vector<std::string> files, ExpandFiles(patterns));
  ReaderOptions options =
      MakeReaderOptions(config, files, shard, num_shards, /*held_out=*/true);
  options.shuffle_buffer = 0;  // order does not matter for metrics
  ASSIGN_OR_RETURN(auto reader, DataReader::Open(options));
  absl::Time start = absl::Now();
  // Training's metrics are counted; evaluation's stay on the backend too,
  // unless per-value calibration needs each prediction.
  RETURN_IF_ERROR(pieces_->DrainMetrics());
  const int cal_slot = config.training().calibration_slot();
  Model& model = pieces_->model();
  model.SetBackendMetrics(cal_slot < 0);
  struct RestoreMetrics {
    Model* model;
    ~RestoreMetrics() { model->SetBackendMetrics(true); }
  } restore{&model};
  RETURN_IF_ERROR(pieces_->PullDense(-1));
  loop_->DenseReloaded();
  SlotCalibration calibration(cal_slot);
  AucAccumulator acc;
  RETURN_IF_ERROR(ScoreBatches(pieces_.get(), reader.get(),
                               cal_slot >= 0 ? &calibration : nullptr, &acc));
  if (cal_slot < 0) RETURN_IF_ERROR(model.TakeMetrics(&acc));
  EvalStats stats;
  stats.examples = acc.count();
  stats.bad_lines = reader->bad_lines();
  stats.auc = acc.Auc();
  stats.logloss = acc.LogLoss();
  stats.calibration = acc.Calibration();
  stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  constexpr size_t kTopValues = 10;
  stats.per_value = calibration.Top(kTopValues);
  return stats;
}

}  // namespace ps
