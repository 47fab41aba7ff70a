// GEO: local training on a GeoCache, deltas every geo_every steps
// (train_loop.h, worker/train/geo_cache.h).
#include <future>
#include <memory>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "worker/train/geo_cache.h"
#include "worker/train/train_loop.h"

namespace ps {

namespace {

class GeoLoop final : public TrainLoop {
 public:
  explicit GeoLoop(StepPieces* pieces);

  absl::Status RunEpoch(EpochBatches* batches) override;
  // Pushes the deltas, then sends and waits as every loop does.
  absl::Status Settle() override;
  void DenseReloaded() override;

 private:
  // One local step on `p`.
  absl::Status TrainStep(PreparedBatch* p);
  // The first step of this run (maybe resumed): the dense optimizer on the
  // backend and the servers' dense vector as the base.
  absl::Status StartTraining();
  // Pulls the rows of p's keys that this round has not seen yet into the
  // cache.
  absl::Status PullMissing(PreparedBatch* p);
  // Pushes value - base of the touched rows and the dense vector, waits for
  // it, and starts a new round from the servers' values.
  absl::Status Sync();

  // Per table of spec().tables; the first also keeps the dense base.
  GeoCache& dense_geo() { return geo_[0]; }
  std::vector<GeoCache> geo_;
  bool dense_pulled_ = false;  // StartTraining ran
};

GeoLoop::GeoLoop(StepPieces* pieces) : TrainLoop(pieces) {
  const ModelSpec& spec = pieces->spec();
  for (size_t t = 0; t < spec.tables.size(); ++t) {
    geo_.emplace_back(
        spec.tables[t].dim,
        pieces->config()
            .sparse_tables(static_cast<int>(spec.tables[t].table_id))
            .optimizer(),
        t == 0 ? spec.dense_size : 0);
  }
}

absl::Status GeoLoop::RunEpoch(EpochBatches* batches) {
  PreparedBatch cur, next;
  RETURN_IF_ERROR(batches->Read(&cur));
  while (cur.has_data) {
    // The next batch is read on another thread; its rows come through the
    // cache when it trains.
    std::future<absl::Status> prefetch =
        std::async(std::launch::async, &EpochBatches::Read, batches, &next);
    absl::Status status = TrainStep(&cur);
    absl::Status fetched = prefetch.get();
    RETURN_IF_ERROR(status);
    RETURN_IF_ERROR(fetched);
    RETURN_IF_ERROR(AfterStep(*batches, cur));
    std::swap(cur, next);
  }
  return absl::OkStatus();
}

absl::Status GeoLoop::TrainStep(PreparedBatch* p) {
  if (!dense_pulled_) RETURN_IF_ERROR(StartTraining());
  RETURN_IF_ERROR(PullMissing(p));
  const UniqueKeys& unique = p->unique;
  const std::vector<int64_t> at =
      RowFloatOffsets(pieces_->spec(), unique.table_rows);
  p->rows.resize(at.back());
  auto keys_of = [&unique](int t) {
    return unique.OfTable(unique.unique_keys, t);
  };
  for (int t = 0; t < unique.num_tables(); ++t) {
    geo_[t].Gather(keys_of(t),
                   absl::MakeSpan(p->rows).subspan(at[t], at[t + 1] - at[t]));
  }
  // The step this one's push would carry: the schedules' step.
  const int64_t step = pieces_->steps() + 1;
  pieces_->model().SetStep(step, static_cast<uint64_t>(pieces_->rank()));
  RETURN_IF_ERROR(pieces_->Compute(*p));
  const absl::Span<const float> grads(pieces_->result()->row_grad);
  for (int t = 0; t < unique.num_tables(); ++t) {
    geo_[t].ApplySparse(keys_of(t), grads.subspan(at[t], at[t + 1] - at[t]),
                        step, unique.OfTable(unique.shows, t));
  }
  if (pieces_->steps() % pieces_->training().geo_every() == 0) {
    RETURN_IF_ERROR(Sync());
  }
  return absl::OkStatus();
}

absl::Status GeoLoop::StartTraining() {
  // The dense vector trains where the model runs (on a GPU: in device
  // memory); the host sees it at each sync.
  Model& model = pieces_->model();
  if (!model.has_dense_optimizer()) {
    RETURN_IF_ERROR(
        model.SetDenseOptimizer(pieces_->config().model().dense_optimizer()));
  }
  RETURN_IF_ERROR(pieces_->PullDense(pieces_->steps()));
  dense_geo().SetDenseBase(pieces_->dense_params());
  dense_pulled_ = true;
  return absl::OkStatus();
}

absl::Status GeoLoop::PullMissing(PreparedBatch* p) {
  const ModelSpec& spec = pieces_->spec();
  const UniqueKeys& unique = p->unique;
  const int tables = unique.num_tables();
  std::vector<std::vector<uint64_t>> missing(tables);
  std::vector<std::vector<float>> values(tables);
  std::vector<SparsePull> pulls;
  for (int t = 0; t < tables; ++t) {
    missing[t] = geo_[t].Missing(unique.OfTable(unique.unique_keys, t));
    if (missing[t].empty()) continue;
    values[t].resize(missing[t].size() * spec.tables[t].dim);
    pulls.push_back(SparsePull{spec.tables[t].table_id, spec.tables[t].dim,
                               missing[t], absl::MakeSpan(values[t])});
  }
  if (pulls.empty()) return absl::OkStatus();
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(pieces_->client()->PullSparse(pulls, pieces_->steps()));
  p->pull_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  for (int t = 0; t < tables; ++t) geo_[t].Insert(missing[t], values[t]);
  return absl::OkStatus();
}

absl::Status GeoLoop::Sync() {
  // Nothing trained in this run yet (a resumed job may start at step > 0).
  if (!dense_pulled_) return absl::OkStatus();
  const int64_t step = pieces_->steps();
  if (step == dense_geo().synced_step()) return absl::OkStatus();
  const absl::Time start = absl::Now();
  std::vector<std::vector<uint64_t>> keys(geo_.size());
  std::vector<std::vector<float>> deltas(geo_.size());
  for (size_t t = 0; t < geo_.size(); ++t) {
    geo_[t].SparseDeltas(&keys[t], &deltas[t]);
  }
  // The model's dense vector, as its local steps left it.
  std::vector<float>& dense = pieces_->dense_params();
  RETURN_IF_ERROR(pieces_->model().GetDenseParams(absl::MakeSpan(dense)));
  pieces_->PushDeltas(keys, deltas, dense_geo().DenseDelta(dense));
  RETURN_IF_ERROR(pieces_->client()->WaitPushes(0));
  for (GeoCache& geo : geo_) geo.Clear(step);
  // Fresh values: everyone's deltas so far.
  RETURN_IF_ERROR(pieces_->PullDense(step));
  dense_geo().SetDenseBase(dense);
  pieces_->AddPushMs(absl::ToDoubleMilliseconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status GeoLoop::Settle() {
  RETURN_IF_ERROR(Sync());
  return TrainLoop::Settle();
}

void GeoLoop::DenseReloaded() {
  // The model now holds the servers' vector, which may include other
  // workers' deltas pushed after this worker's last sync; measure the next
  // delta from it, or they would be pushed again.
  dense_geo().SetDenseBase(pieces_->dense_params());
}

}  // namespace

std::unique_ptr<TrainLoop> NewGeoLoop(StepPieces* pieces) {
  return std::make_unique<GeoLoop>(pieces);
}

}  // namespace ps
