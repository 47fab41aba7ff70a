#include "server/service/periodic_export.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/export_format.h"
#include "glog/logging.h"

namespace ps {

PeriodicExporter::PeriodicExporter(const ExportConfig& config,
                                   absl::Duration minute,
                                   std::function<absl::Time()> clock)
    : config_(config),
      period_(minute * config.every_minutes()),
      clock_(std::move(clock)) {}

std::optional<absl::StatusOr<CheckpointExportResult>>
PeriodicExporter::OnCheckpoint(const std::string& dir, int64_t step,
                               bool final) {
  absl::MutexLock lock(&mu_);
  if (step == last_step_) return std::nullopt;  // exported already
  const absl::Time now = clock_();
  if (!final && last_time_.has_value() && now - *last_time_ < period_) {
    return std::nullopt;
  }
  CheckpointExportOptions options;
  options.checkpoint_dir = dir;
  options.out_dir = config_.dir();
  if (config_.has_min_score()) options.min_score = config_.min_score();
  // A DELTA needs a model in the folder to apply to.
  const auto exports = ListExportFiles(config_.dir());
  const bool delta = config_.delta() && exports.ok() && !exports->empty();
  if (delta) options.base_dir = config_.dir();
  absl::StatusOr<CheckpointExportResult> result = ExportCheckpoint(options);
  // The period runs from this try, failed or not: a failing export is not
  // retried at every checkpoint.
  last_time_ = now;
  if (!result.ok()) {
    ++failures_;
    LOG(ERROR) << "export: exporting checkpoint " << dir << " (step " << step
               << ") into " << config_.dir()
               << " failed; training goes on: " << result.status();
    return result;
  }
  ++exports_;
  last_step_ = step;
  LOG(INFO) << "export: " << (delta ? "DELTA" : "FULL") << " export "
            << result->path << " of step " << step << ": "
            << result->rows_written << " rows"
            << (delta ? absl::StrCat(", ", result->rows_deleted, " deleted")
                      : "")
            << ", " << result->bytes << " bytes";
  return result;
}

int64_t PeriodicExporter::exports() const {
  absl::MutexLock lock(&mu_);
  return exports_;
}

int64_t PeriodicExporter::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

}  // namespace ps
