#include "worker/trainer.h"

#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "kernels/auc.h"
#include "worker/batch.h"
#include "worker/data_reader.h"

namespace ps {

namespace {

ReaderOptions MakeReaderOptions(const JobConfig& config,
                                std::vector<std::string> files, int shard,
                                int num_shards) {
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
  return o;
}

double MsSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

}  // namespace

// A batch with its distinct keys and their pulled rows.
struct Trainer::Prepared {
  Batch batch;
  UniqueKeys unique;
  std::vector<float> rows;
  bool has_data = false;
  double pull_ms = 0;
};

Trainer::Trainer(const JobConfig& config, int rank, PsClient* client,
                 Backend* backend)
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
      dense_params_(spec_.dense_size) {}

absl::Status Trainer::PullDense(int64_t step) {
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(
      client_->PullDense(0, blocks_, absl::MakeSpan(dense_params_), step));
  pull_ms_ += MsSince(start);
  return absl::OkStatus();
}

absl::Status Trainer::Prepare(Prepared* p, int64_t step) {
  // Reading happens in the caller (it owns the reader); this pulls.
  p->unique = Deduplicate(p->batch);
  p->rows.resize(p->unique.unique_keys.size() * spec_.emb_dim);
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(client_->PullSparse(spec_.sparse_table_id, spec_.emb_dim,
                                      p->unique.unique_keys,
                                      absl::MakeSpan(p->rows), step));
  p->pull_ms = MsSince(start);
  return absl::OkStatus();
}

absl::StatusOr<TrainStats> Trainer::Train() {
  const TrainingConfig& tr = config_.training();
  const bool sync = tr.mode() == TrainingConfig::SYNC;
  const int num_workers = config_.cluster().num_workers();
  ASSIGN_OR_RETURN(std::vector<std::string> files,
                   ExpandFiles({config_.data().train_files().begin(),
                                config_.data().train_files().end()}));
  TrainStats stats;
  AucAccumulator total;
  AucAccumulator window;
  StepResult result;
  int64_t step = 0;
  int64_t window_examples = 0;
  absl::Time start = absl::Now();
  absl::Time window_start = start;

  auto train_one = [&](Prepared& cur) -> absl::Status {
    if (sync || step % tr.pull_dense_every() == 0) RETURN_IF_ERROR(PullDense(step));
    pull_ms_ += cur.pull_ms;
    RETURN_IF_ERROR(model_.TrainStep(cur.batch, cur.unique.key_index,
                                     cur.unique.unique_keys.size(), cur.rows,
                                     dense_params_, &result));
    for (int i = 0; i < cur.batch.size(); ++i) {
      total.Add(result.probs[i], cur.batch.labels[i]);
      window.Add(result.probs[i], cur.batch.labels[i]);
    }
    absl::Time wait_start = absl::Now();
    RETURN_IF_ERROR(client_->WaitPushes(sync ? 0 : tr.max_inflight_pushes() - 1));
    client_->PushAsync(spec_.sparse_table_id, spec_.emb_dim,
                       cur.unique.unique_keys, result.row_grad, 0, blocks_,
                       result.dense_grad, step);
    if (sync) RETURN_IF_ERROR(client_->WaitPushes(0));
    push_wait_ms_ += MsSince(wait_start);
    ++step;
    stats.examples += cur.batch.size();
    window_examples += cur.batch.size();
    if (step % tr.log_every_steps() == 0) {
      double secs = absl::ToDoubleSeconds(absl::Now() - window_start);
      LOG(INFO) << "worker " << rank_ << " step " << step << " examples "
                << stats.examples << " loss " << window.LogLoss() << " auc "
                << window.Auc() << " ex/s "
                << static_cast<int64_t>(window_examples / std::max(secs, 1e-9))
                << " pull_ms/step " << pull_ms_ / tr.log_every_steps()
                << " push_wait_ms/step "
                << push_wait_ms_ / tr.log_every_steps();
      window.Reset();
      window_examples = 0;
      pull_ms_ = push_wait_ms_ = 0;
      window_start = absl::Now();
    }
    return absl::OkStatus();
  };

  for (int epoch = 0; epoch < tr.epochs(); ++epoch) {
    ASSIGN_OR_RETURN(auto reader,
                     DataReader::Open(MakeReaderOptions(config_, files, rank_,
                                                        num_workers)));
    int64_t epoch_steps = 0;
    auto read = [&](Prepared* p, int64_t at_step) -> absl::Status {
      p->has_data = false;
      if (tr.max_steps() > 0 && epoch_steps >= tr.max_steps()) {
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(bool more, reader->Next(&p->batch));
      if (!more) return absl::OkStatus();
      ++epoch_steps;
      p->has_data = true;
      return Prepare(p, at_step);
    };
    Prepared cur, next;
    if (sync) {
      bool exhausted = false;
      for (int64_t k = 0;; ++k) {
        if (!exhausted) {
          RETURN_IF_ERROR(read(&cur, step));
          exhausted = !cur.has_data;
          if (!exhausted) RETURN_IF_ERROR(train_one(cur));
        }
        ASSIGN_OR_RETURN(bool all_done,
                         client_->Barrier(absl::StrCat("epoch-", epoch,
                                                       "-step-", k),
                                          !exhausted));
        if (all_done) break;
      }
    } else {
      RETURN_IF_ERROR(read(&cur, step));
      while (cur.has_data) {
        // Pull the next batch's rows while this one computes.
        std::future<absl::Status> prefetch =
            std::async(std::launch::async, read, &next, step + 1);
        absl::Status status = train_one(cur);
        absl::Status fetched = prefetch.get();
        RETURN_IF_ERROR(status);
        RETURN_IF_ERROR(fetched);
        std::swap(cur, next);
      }
    }
    stats.bad_lines += reader->bad_lines();
    LOG(INFO) << "worker " << rank_ << " finished epoch " << epoch + 1 << "/"
              << tr.epochs() << ": " << stats.examples << " examples, "
              << reader->bad_lines() << " bad lines skipped";
  }
  RETURN_IF_ERROR(client_->WaitPushes(0));
  stats.steps = step;
  stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  stats.auc = total.Auc();
  stats.logloss = total.LogLoss();
  return stats;
}

absl::StatusOr<EvalStats> Trainer::Evaluate(
    const std::vector<std::string>& patterns, int shard, int num_shards) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ExpandFiles(patterns));
  ASSIGN_OR_RETURN(auto reader,
                   DataReader::Open(MakeReaderOptions(config_, files, shard,
                                                      num_shards)));
  absl::Time start = absl::Now();
  RETURN_IF_ERROR(PullDense(-1));
  AucAccumulator acc;
  Prepared p;
  StepResult result;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader->Next(&p.batch));
    if (!more) break;
    RETURN_IF_ERROR(Prepare(&p, -1));
    RETURN_IF_ERROR(model_.Predict(p.batch, p.unique.key_index,
                                   p.unique.unique_keys.size(), p.rows,
                                   dense_params_, &result));
    for (int i = 0; i < p.batch.size(); ++i) {
      acc.Add(result.probs[i], p.batch.labels[i]);
    }
  }
  EvalStats stats;
  stats.examples = acc.count();
  stats.bad_lines = reader->bad_lines();
  stats.auc = acc.Auc();
  stats.logloss = acc.LogLoss();
  stats.calibration = acc.Calibration();
  stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return stats;
}

}  // namespace ps
