// The export format of a trained model for serving, without optimizer
// state: the writer (server/service/checkpoint_export.h writes exports from a
// checkpoint) and the loaded model (the worker's predict path,
// worker/model/predict.h, scores with it). Lives in common/ because both
// sides use it.
//
// An export is a folder of files "export-<step, 10 digits>.psx", each a
// FULL export or a DELTA over the export of an earlier step; LoadDir takes
// the newest FULL one and applies, in step order, the DELTAs that follow it
// (each naming the previous file's step as its base).
//
// Files appear atomically: ExportWriter writes "export-<step>.psx.tmp" and
// only Close renames it into place, once complete and fsynced (then fsyncs
// the folder). A crash or a failed export leaves no partial
// export-<step>.psx for a later delta export or predict to trip on, at most
// a .tmp file (removed by a writer destroyed without Close), which LoadDir
// ignores like every name other than export-<10 digits>.psx.
//
// File format. A checksummed file (common/checksummed_file.h: 16-byte
// header with magic "PSEXPORT" and version 1, payload, 16-byte footer with
// the payload size and a zlib crc32). Integers are little-endian uint64
// ("u64"), floats IEEE-754 binary32 little-endian ("f32"), strings a u64
// length then the bytes. Payload:
//   u64 kind             1 = FULL, 2 = DELTA
//   u64 step             global training step the export was taken at
//   u64 base_step        DELTA: the step of the export it applies to;
//                        FULL: 0
//   string job_config    the job's JobConfig, protobuf text format (the
//                        model, its tables' dims and the data format)
//   tables, each:
//     u64 1              a table follows
//     string name        the sparse table's name
//     u64 dim            floats per row
//     row blocks, each:  u64 n (> 0), then n times: u64 key, dim f32
//     u64 0              end of the rows
//     u64 d, d times u64 key: DELTA only (d is 0 in a FULL export): keys
//                        of the base that are no longer exported
//   u64 0                no more tables
//   u64 dense_size, dense_size f32: the flat dense parameter vector in
//                        common/model_spec.h order (always whole)
// Rows carry the embedding only (the table's dim floats): no optimizer
// state, no show/click statistics. A key not in the export reads as its
// table's initializer row (Lookup). A DELTA lists only rows that are new or
// differ (bitwise) from the base.
//
// Reading exports from another language (the checksum, the config's text
// format, how data lines become keys, the models' forward pass, the
// initializer, how deltas apply): docs/export_format.md. python/psexport/
// is a reader in Python (numpy only) that scores as `ps_worker --predict`.
//
// Errors name the file: DataLoss for a truncated or corrupt file,
// FailedPrecondition for a delta applied to the wrong base or a table whose
// dim differs from the config, InvalidArgument for caller mistakes.
//
// Thread-safety: an ExportWriter is used by one thread. An ExportedModel is
// immutable once loaded (ApplyDelta aside): its const methods may be called
// from any number of threads.
#ifndef PS_COMMON_EXPORT_FORMAT_H_
#define PS_COMMON_EXPORT_FORMAT_H_

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/checksummed_file.h"
#include "proto/config.pb.h"

namespace ps {

enum class ExportKind : uint64_t { kFull = 1, kDelta = 2 };

// "export-0000000042.psx"; <dir>/<that> for ExportPath.
std::string ExportFileName(int64_t step);
std::string ExportPath(const std::string& dir, int64_t step);
// Where ExportWriter writes `path` until Close: path + ".tmp".
std::string ExportTempPath(const std::string& path);
// The export files of folder `dir` (named export-<10 digits>.psx; other
// names are not part of the model) by step. NotFound when `dir` cannot be
// listed.
absl::StatusOr<std::map<int64_t, std::string>> ListExportFiles(
    const std::string& dir);

class ExportedModel;

struct ExportOptions {
  // Rows whose score (given with AddRows) is below this are left out.
  // Default: -infinity (every row).
  float min_score = -std::numeric_limits<float>::infinity();
  // Set for a DELTA export: the model (as loaded) it applies to; not owned,
  // must outlive the writer. Default: null (a FULL export).
  const ExportedModel* base = nullptr;
};

class ExportWriter {
 public:
  // Starts the export of `config`'s model at `step` into `path` (written as
  // ExportTempPath(path) until Close). InvalidArgument when options.base is
  // of a later step.
  static absl::StatusOr<std::unique_ptr<ExportWriter>> Create(
      const std::string& path, const JobConfig& config, int64_t step,
      const ExportOptions& options = {});

  // Starts the rows of sparse table `name` of the config (each table at
  // most once). NotFound for a table the config lacks.
  absl::Status BeginTable(absl::string_view name);
  // Adds rows: values holds keys.size() * dim floats; scores is empty or
  // one per key (rows below options.min_score are skipped). DELTA: rows
  // equal to the base's are skipped. InvalidArgument for wrong sizes.
  // REQUIRES: a table begun; each key at most once per table.
  absl::Status AddRows(absl::Span<const uint64_t> keys,
                       absl::Span<const float> values,
                       absl::Span<const float> scores = {});
  // Ends the table; DELTA: lists the base's keys not added (or filtered).
  absl::Status EndTable();
  // The dense parameter vector; InvalidArgument unless it has the model's
  // size. Required once.
  absl::Status SetDense(absl::Span<const float> dense);
  // Finishes the file and renames it into place (durable when OK; on an
  // error `path` is left as it was). FailedPrecondition when a table is
  // still open or SetDense was not called.
  absl::StatusOr<FileDigest> Close();

  // Removes the temporary file unless Close succeeded.
  ~ExportWriter();
  ExportWriter(const ExportWriter&) = delete;
  ExportWriter& operator=(const ExportWriter&) = delete;

  int64_t rows_written() const { return rows_written_; }
  int64_t rows_deleted() const { return rows_deleted_; }

 private:
  ExportWriter(std::string path, std::unique_ptr<ChecksummedWriter> file,
               const JobConfig& config, const ExportOptions& options,
               int64_t dense_size);

  const std::string path_;  // the final name; file_ writes its temp path
  std::unique_ptr<ChecksummedWriter> file_;
  bool committed_ = false;  // renamed into place
  const JobConfig config_;
  const ExportOptions options_;
  const int64_t dense_size_;
  int table_ = -1;  // index into config_.sparse_tables() of the open table
  int dim_ = 0;
  absl::flat_hash_set<std::string> tables_done_;
  absl::flat_hash_set<uint64_t> kept_;  // DELTA: keys of the open table kept
  std::vector<char> block_;             // one row block being assembled
  bool dense_set_ = false;
  int64_t rows_written_ = 0;
  int64_t rows_deleted_ = 0;
};

class ExportedModel {
 public:
  // A FULL export file. FailedPrecondition for a DELTA.
  static absl::StatusOr<std::unique_ptr<ExportedModel>> LoadFile(
      const std::string& path);
  // The newest FULL export of `dir` with the DELTAs after it applied.
  // NotFound when `dir` holds no FULL export.
  static absl::StatusOr<std::unique_ptr<ExportedModel>> LoadDir(
      const std::string& dir);

  // Applies a DELTA file; FailedPrecondition when its base_step is not
  // step(). The model is unchanged unless it succeeds.
  absl::Status ApplyDelta(const std::string& path);

  const JobConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  const std::vector<float>& dense() const { return dense_; }

  // Index of sparse table `name` in config().sparse_tables(), or -1.
  int TableIndex(absl::string_view name) const;
  // Rows held for table `table` (an index as above).
  int64_t num_rows(int table) const;
  // The keys of table `table`, ascending.
  std::vector<uint64_t> Keys(int table) const;
  // The row of `key` (dim floats) or null when the export lacks it.
  const float* Row(int table, uint64_t key) const;
  // Copies the rows of `keys` into out (keys.size() * dim floats); a key
  // the export lacks gets the table's initializer values (as the servers
  // would have served it: a row nothing trained, or one left out by
  // min_score). Returns how many were found.
  // REQUIRES: 0 <= table < number of tables, out has the size.
  int64_t Lookup(int table, absl::Span<const uint64_t> keys,
                 absl::Span<float> out) const;

 private:
  struct Table {
    int dim = 0;
    absl::flat_hash_map<uint64_t, int64_t> index;  // key -> row in values
    std::vector<float> values;
  };
  ExportedModel() = default;
  // Reads `path` into this model: a FULL file replaces it, a DELTA (when
  // allow_delta) updates it.
  absl::Status Read(const std::string& path, bool allow_delta);

  JobConfig config_;
  int64_t step_ = 0;
  std::vector<Table> tables_;  // one per config_.sparse_tables()
  std::vector<float> dense_;
};

}  // namespace ps

#endif  // PS_COMMON_EXPORT_FORMAT_H_
