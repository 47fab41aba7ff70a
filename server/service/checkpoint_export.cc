#include "server/service/checkpoint_export.h"

#include <filesystem>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/export_format.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"
#include "server/table/dense_table.h"
#include "server/table/sparse_table.h"
#include "server/table/table_snapshot.h"

namespace ps {

absl::StatusOr<CheckpointExportResult> ExportCheckpoint(
    const CheckpointExportOptions& options) {
  ASSIGN_OR_RETURN(OpenedCheckpoint opened,
                   OpenCheckpoint(options.checkpoint_dir));
  const Manifest& m = opened.manifest;
  JobConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(m.job_config(), &config)) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint '", opened.dir, "': its job config does not parse"));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create '", options.out_dir, "': ", ec.message()));
  }
  std::unique_ptr<ExportedModel> base;
  ExportOptions export_options;
  export_options.min_score = options.min_score;
  if (!options.base_dir.empty()) {
    ASSIGN_OR_RETURN(base, ExportedModel::LoadDir(options.base_dir));
    export_options.base = base.get();
  }
  CheckpointExportResult result;
  result.step = m.global_step();
  result.path = ExportPath(options.out_dir, m.global_step());
  ASSIGN_OR_RETURN(auto writer,
                   ExportWriter::Create(result.path, config, m.global_step(),
                                        export_options));
  for (const SparseTableConfig& tc : config.sparse_tables()) {
    // An empty memory table of the checkpoint's layout tells the row format.
    SparseTableOptions shape;
    shape.name = tc.name();
    shape.dim = tc.dim();
    shape.optimizer = tc.optimizer();
    shape.initializer = tc.initializer();
    shape.has_accessor = tc.has_accessor();
    shape.accessor = tc.accessor();
    ASSIGN_OR_RETURN(std::unique_ptr<SparseTable> table,
                     SparseTable::Create(shape));
    const int dim = table->dim();
    const int stride = table->stride();
    const int acc = tc.has_accessor() ? stride - 3 : -1;
    RETURN_IF_ERROR(writer->BeginTable(tc.name()));
    std::vector<float> weights, scores;
    for (int s = 0; s < m.num_servers(); ++s) {
      RETURN_IF_ERROR(ReadTableSnapshot(
          absl::StrCat(opened.dir, "/", SparseSnapshotDir(s, tc.name())),
          *table, [](uint64_t) { return true; },
          [&](absl::Span<const uint64_t> keys, absl::Span<const float> rows) {
            weights.clear();
            scores.clear();
            for (size_t j = 0; j < keys.size(); ++j) {
              const float* row = rows.data() + j * stride;
              weights.insert(weights.end(), row, row + dim);
              if (acc >= 0) {
                const AccessorConfig& a = tc.accessor();
                scores.push_back(a.nonclick_weight() *
                                     (row[acc] - row[acc + 1]) +
                                 a.click_weight() * row[acc + 1]);
              }
            }
            return writer->AddRows(keys, weights, scores);
          }));
    }
    RETURN_IF_ERROR(writer->EndTable());
  }
  // The dense vector, rebuilt from every server's blocks.
  const ModelSpec spec = MakeModelSpec(config);
  const DenseBlocks whole{spec.dense_size, config.cluster().dense_block_size(),
                          1};
  ASSIGN_OR_RETURN(
      auto dense,
      DenseTable::Create("model", whole, 0, config.model().dense_optimizer(),
                         [](int64_t) { return 0.0f; }));
  std::vector<std::string> paths;
  for (int s = 0; s < m.num_servers(); ++s) {
    paths.push_back(
        absl::StrCat(opened.dir, "/", DenseSnapshotFile(s, "model")));
  }
  RETURN_IF_ERROR(dense->LoadResharded(paths));
  std::vector<float> values;
  dense->Pull(&values);
  RETURN_IF_ERROR(writer->SetDense(values));
  ASSIGN_OR_RETURN(FileDigest digest, writer->Close());
  result.rows_written = writer->rows_written();
  result.rows_deleted = writer->rows_deleted();
  result.bytes = digest.size;
  return result;
}

}  // namespace ps
