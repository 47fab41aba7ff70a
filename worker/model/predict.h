// Batch prediction with an exported model (common/export_format.h): what
// `ps_worker --predict` runs.
#ifndef PS_WORKER_MODEL_PREDICT_H_
#define PS_WORKER_MODEL_PREDICT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/export_format.h"
#include "kernels/backend.h"

namespace ps {

// Scores every line of `data_file` (in the export's data format) with
// `model` on `backend` and writes one probability per line ("%.9g", which
// reads back as the exact float) to `output_file`, replaced atomically when
// all lines were scored. A header line (AVAZU) gets none. A malformed line
// is an error naming file and line (a skipped line would misalign the
// output). Every line is scored, also those the training config's
// data.eval_holdout_fraction held out. Returns the number of lines scored.
absl::StatusOr<int64_t> PredictFile(const ExportedModel& model,
                                    const std::string& data_file,
                                    const std::string& output_file,
                                    Backend* backend, int batch_size = 1024);

}  // namespace ps

#endif  // PS_WORKER_MODEL_PREDICT_H_
