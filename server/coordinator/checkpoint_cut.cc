#include "server/coordinator/checkpoint_cut.h"

#include <algorithm>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"

namespace ps {

bool FindWorker(const Manifest& manifest, int rank, WorkerStand* stand) {
  bool found = false;
  for (int i = 0; i < manifest.worker_positions_size(); ++i) {
    if (manifest.worker_positions(i).worker_rank() != rank) continue;
    stand->position = manifest.worker_positions(i);
    stand->step =
        i < manifest.worker_steps_size() ? manifest.worker_steps(i) : 0;
    found = true;
  }
  return found;
}

Manifest BuildManifest(const CoordinatorOptions& options,
                       const std::map<int, WorkerStand>& stands,
                       const std::optional<Manifest>& previous) {
  Manifest manifest;
  int64_t step = 0;
  for (int r = 0; r < options.num_workers; ++r) {
    WorkerStand stand;
    auto it = stands.find(r);
    if (it != stands.end()) {
      stand = it->second;
    } else if (previous.has_value()) {
      FindWorker(*previous, r, &stand);
    }
    stand.position.set_worker_rank(r);
    *manifest.add_worker_positions() = stand.position;
    manifest.add_worker_steps(stand.step);
    // A worker known only from the previous checkpoint counts too: before
    // any worker registers, a resumed job's cut is that checkpoint's step.
    step = std::max(step, stand.step);
  }
  manifest.set_global_step(step);
  manifest.set_num_servers(options.num_servers);
  manifest.set_hash_seed(options.config.data().hash_seed());
  // The config as the job runs it (generated data named in train_files).
  manifest.set_job_config(RecordedJobConfig(options.config));
  return manifest;
}

absl::StatusOr<std::string> WriteCheckpoint(const CoordinatorOptions& options,
                                            const std::string& previous_dir,
                                            const std::vector<uint64_t>& seen,
                                            Manifest* manifest) {
  const absl::Time start = absl::Now();
  const CheckpointConfig& ck = options.config.checkpoint();
  const int64_t step = manifest->global_step();
  absl::StatusOr<std::string> dir = PrepareCheckpointDir(ck.dir(), step);
  if (dir.status().code() == absl::StatusCode::kAlreadyExists) {
    LOG(INFO) << "coordinator: checkpoint at step " << step
              << " already complete: " << previous_dir;
    return previous_dir;
  }
  RETURN_IF_ERROR(dir.status());
  ASSIGN_OR_RETURN(std::vector<CheckpointFile> files,
                   options.save(*dir, step, seen));
  int64_t bytes = 0;
  for (const CheckpointFile& f : files) {
    *manifest->add_files() = f;
    bytes += f.size();
  }
  CommitOptions commit;
  commit.keep = ck.keep();
  RETURN_IF_ERROR(CommitCheckpoint(ck.dir(), *manifest, commit));
  LOG(INFO) << "coordinator: checkpoint " << *dir << " at step " << step
            << " complete: " << files.size() << " files, " << bytes / (1 << 20)
            << " MiB in " << absl::ToDoubleSeconds(absl::Now() - start) << " s";
  return dir;
}

}  // namespace ps
