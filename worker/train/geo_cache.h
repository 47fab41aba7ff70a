// GEO mode's local copy of the parameters (Paddle's geo-SGD): the sparse rows
// a worker touched since its last sync, each with its value at pull time
// (the base), and a base of the dense parameters (whose local copy, and its
// optimizer, live with the model: Model::SetDenseOptimizer). The local
// optimizer state of a key (e.g. its Adagrad accumulators) outlives the round,
// so the local step size decays as on the servers instead of restarting every
// round. The worker trains on the copy with the tables' own optimizer rules;
// every geo_every steps it pushes value - base for every touched row and for
// the dense vector (servers add these deltas), then starts a new round with
// fresh values. Not thread-safe (the trainer thread owns it).
#ifndef PS_WORKER_TRAIN_GEO_CACHE_H_
#define PS_WORKER_TRAIN_GEO_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "common/optimizer.h"
#include "proto/config.pb.h"

namespace ps {

class GeoCache {
 public:
  // REQUIRES: the optimizer config valid (config validation ran).
  GeoCache(int dim, const OptimizerConfig& sparse_optimizer,
           int64_t dense_size);

  // The keys of `keys` not in the cache.
  std::vector<uint64_t> Missing(absl::Span<const uint64_t> keys) const;
  // Adds rows pulled from the servers (values: keys.size() * dim floats).
  void Insert(absl::Span<const uint64_t> keys, absl::Span<const float> values);
  // out = the local rows of `keys`. REQUIRES: all cached.
  void Gather(absl::Span<const uint64_t> keys, absl::Span<float> out) const;
  // Applies the sparse rule to the local rows of `keys`, at the learning
  // rate of step `step` (the step being trained, as its push would carry);
  // `shows` (one per key, or empty for 1 each) are the keys' counts for
  // l2_by_frequency.
  void ApplySparse(absl::Span<const uint64_t> keys,
                   absl::Span<const float> grads, int64_t step,
                   absl::Span<const float> shows);

  // value - base of every cached row, in insertion order.
  void SparseDeltas(std::vector<uint64_t>* keys,
                    std::vector<float>* deltas) const;
  // params - the dense base.
  std::vector<float> DenseDelta(absl::Span<const float> params) const;
  // Starts a new round after a sync at `step`: forgets the rows.
  void Clear(int64_t step);
  void SetDenseBase(absl::Span<const float> params);
  int64_t synced_step() const { return synced_step_; }
  int64_t size() const { return static_cast<int64_t>(keys_.size()); }

 private:
  const int dim_;
  std::unique_ptr<OptimizerRule> sparse_rule_;
  const int state_;  // sparse state floats per row
  absl::flat_hash_map<uint64_t, uint32_t> index_;
  std::vector<uint64_t> keys_;
  std::vector<float> values_;        // dim per row
  std::vector<float> base_;          // dim per row
  std::vector<uint32_t> row_state_;  // per row: its slot in states_
  // Persistent local optimizer state: key -> slot (state_ floats each).
  absl::flat_hash_map<uint64_t, uint32_t> state_index_;
  std::vector<float> states_;
  std::vector<float> dense_base_;
  int64_t synced_step_ = 0;
};

}  // namespace ps

#endif  // PS_WORKER_TRAIN_GEO_CACHE_H_
