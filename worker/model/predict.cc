#include "worker/model/predict.h"

#include <errno.h>
#include <stdio.h>

#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checksummed_file.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "worker/data/batch.h"
#include "worker/data/data_reader.h"
#include "worker/model/model.h"

namespace ps {

absl::StatusOr<int64_t> PredictFile(const ExportedModel& model,
                                    const std::string& data_file,
                                    const std::string& output_file,
                                    Backend* backend, int batch_size) {
  const JobConfig& config = model.config();
  const ModelSpec spec = MakeModelSpec(config);
  Model net(spec, PoolModeOf(config.model().pooling()), backend);
  ReaderOptions options;
  options.files = {data_file};
  options.batch_size = batch_size;
  options.threads = 1;
  options.max_bad_line_ratio = 0;  // every line gets its probability
  options.data = config.data();
  ASSIGN_OR_RETURN(auto reader, DataReader::Open(options));

  const std::string tmp = output_file + ".tmp";
  FILE* out = fopen(tmp.c_str(), "we");
  if (out == nullptr) return FileError(errno, "create", tmp);
  auto fail = [&](absl::Status s) {
    fclose(out);
    std::remove(tmp.c_str());
    return s;
  };
  const int num_tables = static_cast<int>(spec.tables.size());
  Batch batch;
  StepResult result;
  std::vector<float> rows;
  int64_t lines = 0;
  while (true) {
    absl::StatusOr<bool> more = reader->Next(&batch);
    if (!more.ok()) return fail(more.status());
    if (!*more) break;
    UniqueKeys unique = DeduplicateByTable(spec, batch);
    const std::vector<int64_t> at = RowFloatOffsets(spec, unique.table_rows);
    rows.resize(at.back());
    for (int t = 0; t < num_tables; ++t) {
      model.Lookup(static_cast<int>(spec.tables[t].table_id),
                   unique.OfTable(unique.unique_keys, t),
                   absl::MakeSpan(rows).subspan(at[t], at[t + 1] - at[t]));
    }
    absl::Status s = net.Predict(batch, unique.key_index, unique.table_rows,
                                 rows, model.dense(), &result);
    if (!s.ok()) return fail(s);
    for (float p : result.probs) fprintf(out, "%.9g\n", p);
    lines += batch.size();
  }
  if (fflush(out) != 0 || ferror(out)) {
    return fail(FileError(errno, "write", tmp));
  }
  if (fclose(out) != 0) {
    std::remove(tmp.c_str());
    return FileError(errno, "close", tmp);
  }
  if (std::rename(tmp.c_str(), output_file.c_str()) != 0) {
    return FileError(errno, absl::StrCat("rename '", tmp, "' to"), output_file);
  }
  return lines;
}

}  // namespace ps
