// Exports for serving while a job trains (JobConfig.export): server 0 exports
// a checkpoint it has just committed (server/service/checkpoint_export.h)
// when export.every_minutes have passed since its last export, and always
// the job's final checkpoint, into export.dir. With export.delta, every
// export after the folder's first FULL one is a DELTA against the folder's
// model, so a reader applying them in order has the model of the last
// export. A checkpoint already exported (the final one, when it was also
// the last periodic one) is not exported again. A failed export is logged
// (with the checkpoint and the reason) and counted; training goes on, and
// the next export tries again.
//
// Thread-safety: OnCheckpoint may be called from any thread; calls are
// serialized.
#ifndef PS_SERVER_SERVICE_PERIODIC_EXPORT_H_
#define PS_SERVER_SERVICE_PERIODIC_EXPORT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/config.pb.h"
#include "server/service/checkpoint_export.h"

namespace ps {

class PeriodicExporter {
 public:
  // `minute`: what every_minutes counts in (tests shorten it); `clock`: the
  // time it is measured in.
  explicit PeriodicExporter(const ExportConfig& config,
                            absl::Duration minute = absl::Minutes(1),
                            std::function<absl::Time()> clock = absl::Now);

  // Checkpoint folder `dir` at `step` was committed (`final`: the job's
  // last). Exports it when due; returns the export's result, nullopt when
  // none was due, or the export's error (also logged).
  std::optional<absl::StatusOr<CheckpointExportResult>> OnCheckpoint(
      const std::string& dir, int64_t step, bool final);

  int64_t exports() const;
  int64_t failures() const;

 private:
  const ExportConfig config_;
  const absl::Duration period_;
  const std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  std::optional<absl::Time> last_time_ ABSL_GUARDED_BY(mu_);
  int64_t last_step_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t exports_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ps

#endif  // PS_SERVER_SERVICE_PERIODIC_EXPORT_H_
