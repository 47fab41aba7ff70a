// A checkpoint cut as files: the manifest of a cut (each worker's stand,
// the global step, the job's config as it runs) and its writing (every
// server's files through CoordinatorOptions::save, then the manifest
// committed as LATEST; common/checkpoint.h has the format). The coordinator
// core (coordinator_core.h) calls these from its save thread. Stateless:
// thread-safe.
#ifndef PS_SERVER_COORDINATOR_CHECKPOINT_CUT_H_
#define PS_SERVER_COORDINATOR_CHECKPOINT_CUT_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"
#include "server/coordinator/coordinator_core.h"
#include "server/coordinator/coordinator_state.h"

namespace ps {

// The record of worker `rank` in `manifest` (the last one if several);
// false when it has none.
bool FindWorker(const Manifest& manifest, int rank, WorkerStand* stand);

// The manifest of a cut, without its files: each worker's stand (else its
// record in the previous checkpoint, else the start) and the largest of
// their steps as the global step.
Manifest BuildManifest(const CoordinatorOptions& options,
                       const std::map<int, WorkerStand>& stands,
                       const std::optional<Manifest>& previous);

// Prepares the folder of `manifest`'s step, has options.save write every
// server's files into it (`seen`: CoordinatorOptions::save's) and commits
// the manifest (with the files) as
// LATEST. Returns the folder, or `previous_dir` when a complete checkpoint
// of that step exists already (nothing trained since). Errors are
// options.save's or name the checkpoint file that could not be written.
absl::StatusOr<std::string> WriteCheckpoint(const CoordinatorOptions& options,
                                            const std::string& previous_dir,
                                            const std::vector<uint64_t>& seen,
                                            Manifest* manifest);

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_CHECKPOINT_CUT_H_
