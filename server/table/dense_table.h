// A server's share of one dense parameter vector: the blocks
// DenseBlocks::RangesOf(rank) of it, concatenated in block order, with the
// rule's state. Pull and Push are thread-safe (one mutex: dense tables are
// small and every push touches all of a server's blocks).
//
// Save/Load write and read the values and the rule's state as a checksummed
// file (common/checksummed_file.h, magic "PSDENSE1", version 1) whose
// payload is, little-endian:
//   name (u64 length + bytes), global size, block size, num_servers, rank,
//   local size, state size (u64 each), values (local size floats), state
//   (state size floats).
#ifndef PS_SERVER_TABLE_DENSE_TABLE_H_
#define PS_SERVER_TABLE_DENSE_TABLE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/checksummed_file.h"
#include "common/model_spec.h"
#include "common/optimizer.h"

namespace ps {

class DenseTable {
 public:
  // `init(i)` gives the initial value of global index i.
  static absl::StatusOr<std::unique_ptr<DenseTable>> Create(
      const std::string& name, const DenseBlocks& blocks, int rank,
      const OptimizerConfig& optimizer,
      const std::function<float(int64_t)>& init);

  const std::string& name() const { return name_; }
  int64_t local_size() const { return local_size_; }
  int64_t global_size() const { return global_size_; }

  // Copies this server's values.
  void Pull(std::vector<float>* out) const;
  // Applies the rule at the learning rate of step `step` (the push's
  // RequestHeader.step; see OptimizerConfig's schedule). InvalidArgument
  // (nothing applied) when grads.size() != local_size() or a gradient is not
  // finite.
  absl::Status Push(absl::Span<const float> grads, int64_t step);
  // GEO: adds `deltas` to the values (no rule). Same errors as Push.
  absl::Status AddDeltas(absl::Span<const float> deltas);

  // Writes this server's values and optimizer state to `path` (created or
  // replaced; durable when it returns OK) and returns the file's digest for
  // a checkpoint manifest. A consistent snapshot: pushes wait meanwhile
  // only for the copy, not for the write. Errors name the file.
  absl::StatusOr<FileDigest> Save(const std::string& path) const;

  // Replaces the values and state with those of a file Save wrote for the
  // same table on the same server layout. Nothing changes unless it
  // succeeds. FailedPrecondition naming the file and both values when the
  // file is of another table, layout (global size, block size, servers,
  // rank) or optimizer (state size); DataLoss for a truncated or corrupt
  // file; NotFound for a missing one.
  absl::Status Load(const std::string& path);

  // As Load, from the files Save wrote on every server of another layout
  // (paths[r] = server r's file, every server of that job listed): rebuilds
  // the whole vector and takes this server's blocks of it (resharding).
  // Per-weight optimizer state moves with its weight; per-table state (Adam's
  // step counts) comes from paths[0]. Errors as Load, naming the file.
  absl::Status LoadResharded(const std::vector<std::string>& paths);

 private:
  DenseTable(std::string name, const DenseBlocks& blocks, int rank,
             int64_t local_size, std::unique_ptr<OptimizerRule> rule);

  const std::string name_;
  const DenseBlocks blocks_;
  const int rank_;
  const int64_t local_size_;
  const int64_t global_size_;
  const std::unique_ptr<OptimizerRule> rule_;
  mutable absl::Mutex mu_;
  std::vector<float> values_ ABSL_GUARDED_BY(mu_);
  std::vector<float> state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_TABLE_DENSE_TABLE_H_
