// Exports a model for serving from a complete checkpoint: the weights of
// every sparse row (no optimizer state, no accessor counts) and the dense
// vector, in the format of common/export_format.h, which `ps_worker
// --predict` scores with. Reading a checkpoint rather than live servers
// gives one consistent cut, works after the job ended, and needs no
// server at all; `ps_ctl export` takes a fresh checkpoint first when asked.
//
// Rows are read from every server's part whatever the server count. With
// an accessor, a row's score is nonclick_weight * (show - click) +
// click_weight * click (counts as stored, not decayed) and rows below
// options.min_score are left out. A DELTA export (options.base_dir: a
// directory of earlier exports) lists only rows that changed since the
// model those exports load to, and the keys that disappeared.
#ifndef PS_SERVER_SERVICE_CHECKPOINT_EXPORT_H_
#define PS_SERVER_SERVICE_CHECKPOINT_EXPORT_H_

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/statusor.h"

namespace ps {

struct CheckpointExportOptions {
  // The complete checkpoint folder to export (verified first).
  std::string checkpoint_dir;
  // Where the export file goes: <out_dir>/export-<step>.psx.
  std::string out_dir;
  float min_score = -std::numeric_limits<float>::infinity();
  // Set: a DELTA export against the exports in this directory (usually
  // out_dir).
  std::string base_dir;
};

struct CheckpointExportResult {
  std::string path;
  int64_t step = 0;
  int64_t rows_written = 0;
  int64_t rows_deleted = 0;  // DELTA only
  int64_t bytes = 0;
};

// Errors name the checkpoint file at fault (see common/checkpoint.h) or the
// export file that could not be written.
absl::StatusOr<CheckpointExportResult> ExportCheckpoint(
    const CheckpointExportOptions& options);

}  // namespace ps

#endif  // PS_SERVER_SERVICE_CHECKPOINT_EXPORT_H_
