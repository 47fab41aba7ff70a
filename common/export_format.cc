#include "common/export_format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config_validate.h"
#include "common/initializer.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"

namespace ps {
namespace {

constexpr char kExportMagic[] = "PSEXPORT";
constexpr uint32_t kExportVersion = 1;
constexpr char kFilePrefix[] = "export-";
constexpr char kFileSuffix[] = ".psx";
constexpr uint64_t kMaxConfigBytes = 64 << 20;
constexpr uint64_t kMaxNameBytes = 4096;
constexpr size_t kRowsPerBlock = 4096;

// The step of an export file name, or -1.
int64_t StepOfFileName(const std::string& name) {
  const size_t prefix = sizeof(kFilePrefix) - 1;
  const size_t suffix = sizeof(kFileSuffix) - 1;
  if (name.size() != prefix + 10 + suffix ||
      name.compare(0, prefix, kFilePrefix) != 0 ||
      name.compare(prefix + 10, suffix, kFileSuffix) != 0) {
    return -1;
  }
  int64_t step = 0;
  for (size_t i = prefix; i < prefix + 10; ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

absl::StatusOr<JobConfig> ParseConfig(const std::string& text,
                                      const std::string& path) {
  JobConfig config;
  if (!google::protobuf::TextFormat::ParseFromString(text, &config)) {
    return absl::DataLossError(
        absl::StrCat("'", path, "': its job config does not parse"));
  }
  absl::Status valid =
      ValidateJobConfig(config, path + " (job config)", nullptr);
  if (!valid.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "': its job config does not validate: ", valid.message()));
  }
  return config;
}

// The kind of an export file, from its first payload field.
absl::StatusOr<ExportKind> PeekKind(const std::string& path) {
  ASSIGN_OR_RETURN(auto in,
                   ChecksummedReader::Open(path, kExportMagic, kExportVersion));
  ASSIGN_OR_RETURN(uint64_t kind, in->ReadU64());
  if (kind != static_cast<uint64_t>(ExportKind::kFull) &&
      kind != static_cast<uint64_t>(ExportKind::kDelta)) {
    return absl::DataLossError(
        absl::StrCat("'", path, "': unknown export kind ", kind));
  }
  return static_cast<ExportKind>(kind);
}

}  // namespace

std::string ExportFileName(int64_t step) {
  return absl::StrFormat("%s%010d%s", kFilePrefix, step, kFileSuffix);
}

std::string ExportPath(const std::string& dir, int64_t step) {
  return absl::StrCat(dir, "/", ExportFileName(step));
}

std::string ExportTempPath(const std::string& path) { return path + ".tmp"; }

// ---------------------------------------------------------------- writer

ExportWriter::ExportWriter(std::string path,
                           std::unique_ptr<ChecksummedWriter> file,
                           const JobConfig& config,
                           const ExportOptions& options, int64_t dense_size)
    : path_(std::move(path)),
      file_(std::move(file)),
      config_(config),
      options_(options),
      dense_size_(dense_size) {}

ExportWriter::~ExportWriter() {
  if (committed_) return;
  const std::string tmp = file_->path();
  file_.reset();  // closes it
  // Best effort: a leftover .tmp is ignored by readers anyway.
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    LOG(WARNING) << "cannot remove unfinished export '" << tmp
                 << "': " << strerror(errno);
  }
}

absl::StatusOr<std::unique_ptr<ExportWriter>> ExportWriter::Create(
    const std::string& path, const JobConfig& config, int64_t step,
    const ExportOptions& options) {
  if (step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("export '", path, "': step must be >= 0, got ", step));
  }
  const ExportedModel* base = options.base;
  if (base != nullptr && base->step() > step) {
    return absl::InvalidArgumentError(
        absl::StrCat("export '", path, "': a delta at step ", step,
                     " cannot apply to a base of later step ", base->step()));
  }
  if (base != nullptr) {
    for (const SparseTableConfig& table : config.sparse_tables()) {
      const int t = base->TableIndex(table.name());
      const int base_dim = t < 0 ? -1 : base->config().sparse_tables(t).dim();
      if (base_dim != table.dim()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "export '", path, "': sparse table '", table.name(), "' has dim ",
            table.dim(), ", in the base export of step ", base->step(), " ",
            t < 0 ? std::string("it is missing")
                  : absl::StrCat("dim ", base_dim),
            ": a delta needs the same tables"));
      }
    }
  }
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(config, &text)) {
    return absl::InternalError("cannot print the job config");
  }
  ASSIGN_OR_RETURN(auto file,
                   ChecksummedWriter::Create(ExportTempPath(path), kExportMagic,
                                             kExportVersion));
  const ExportKind kind = base ? ExportKind::kDelta : ExportKind::kFull;
  RETURN_IF_ERROR(file->AppendU64(static_cast<uint64_t>(kind)));
  RETURN_IF_ERROR(file->AppendU64(step));
  RETURN_IF_ERROR(file->AppendU64(base ? base->step() : 0));
  RETURN_IF_ERROR(AppendString(file.get(), text));
  return std::unique_ptr<ExportWriter>(
      new ExportWriter(path, std::move(file), config, options,
                       MakeModelSpec(config).dense_size));
}

absl::Status ExportWriter::BeginTable(absl::string_view name) {
  if (table_ >= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("export '", path_, "': table '",
                     config_.sparse_tables(table_).name(), "' is still open"));
  }
  for (int t = 0; t < config_.sparse_tables_size(); ++t) {
    if (config_.sparse_tables(t).name() != name) continue;
    if (!tables_done_.insert(std::string(name)).second) {
      return absl::FailedPreconditionError(absl::StrCat(
          "export '", path_, "': table '", name, "' written twice"));
    }
    table_ = t;
    dim_ = config_.sparse_tables(t).dim();
    kept_.clear();
    RETURN_IF_ERROR(file_->AppendU64(1));
    RETURN_IF_ERROR(AppendString(file_.get(), name));
    return file_->AppendU64(dim_);
  }
  return absl::NotFoundError(absl::StrCat("export '", path_,
                                          "': the job config has no sparse "
                                          "table '",
                                          name, "'"));
}

absl::Status ExportWriter::AddRows(absl::Span<const uint64_t> keys,
                                   absl::Span<const float> values,
                                   absl::Span<const float> scores) {
  if (table_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("export '", path_, "': AddRows before BeginTable"));
  }
  if (values.size() != keys.size() * dim_ ||
      (!scores.empty() && scores.size() != keys.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export '", path_, "': ", keys.size(), " keys of dim ", dim_, " need ",
        keys.size() * dim_, " values and 0 or ", keys.size(), " scores, got ",
        values.size(), " and ", scores.size()));
  }
  const ExportedModel* base = options_.base;
  const int base_table =
      base ? base->TableIndex(config_.sparse_tables(table_).name()) : -1;
  const size_t row_bytes = sizeof(uint64_t) + dim_ * sizeof(float);
  uint64_t in_block = 0;
  block_.clear();
  auto flush = [&]() -> absl::Status {
    if (in_block == 0) return absl::OkStatus();
    RETURN_IF_ERROR(file_->AppendU64(in_block));
    RETURN_IF_ERROR(
        file_->Append(absl::string_view(block_.data(), block_.size())));
    rows_written_ += in_block;
    in_block = 0;
    block_.clear();
    return absl::OkStatus();
  };
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!scores.empty() && !(scores[i] >= options_.min_score)) continue;
    const float* row = values.data() + i * dim_;
    if (base != nullptr) {
      kept_.insert(keys[i]);
      const float* old =
          base_table >= 0 ? base->Row(base_table, keys[i]) : nullptr;
      if (old != nullptr && std::memcmp(old, row, dim_ * sizeof(float)) == 0) {
        continue;
      }
    }
    const size_t at = block_.size();
    block_.resize(at + row_bytes);
    std::memcpy(block_.data() + at, &keys[i], sizeof(uint64_t));
    std::memcpy(block_.data() + at + sizeof(uint64_t), row,
                dim_ * sizeof(float));
    if (++in_block == kRowsPerBlock) RETURN_IF_ERROR(flush());
  }
  return flush();
}

absl::Status ExportWriter::EndTable() {
  if (table_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("export '", path_, "': EndTable without BeginTable"));
  }
  RETURN_IF_ERROR(file_->AppendU64(0));  // end of the rows
  std::vector<uint64_t> deleted;
  const ExportedModel* base = options_.base;
  if (base != nullptr) {
    const int t = base->TableIndex(config_.sparse_tables(table_).name());
    if (t >= 0) {
      for (uint64_t key : base->Keys(t)) {
        if (!kept_.contains(key)) deleted.push_back(key);
      }
    }
  }
  RETURN_IF_ERROR(file_->AppendU64(deleted.size()));
  RETURN_IF_ERROR(file_->Append(
      absl::string_view(reinterpret_cast<const char*>(deleted.data()),
                        deleted.size() * sizeof(uint64_t))));
  rows_deleted_ += deleted.size();
  table_ = -1;
  kept_.clear();
  return absl::OkStatus();
}

absl::Status ExportWriter::SetDense(absl::Span<const float> dense) {
  if (static_cast<int64_t>(dense.size()) != dense_size_ || dense_set_) {
    return absl::InvalidArgumentError(
        absl::StrCat("export '", path_, "': the model has ", dense_size_,
                     " dense parameters, got ", dense.size(),
                     dense_set_ ? " (and they were already set)" : ""));
  }
  dense_set_ = true;
  // Held until Close, after the tables.
  block_.assign(reinterpret_cast<const char*>(dense.data()),
                reinterpret_cast<const char*>(dense.data() + dense.size()));
  return absl::OkStatus();
}

absl::StatusOr<FileDigest> ExportWriter::Close() {
  if (table_ >= 0 || !dense_set_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "export '", path_, "': ",
        table_ >= 0 ? "a table is still open" : "SetDense was not called"));
  }
  RETURN_IF_ERROR(file_->AppendU64(0));  // no more tables
  RETURN_IF_ERROR(file_->AppendU64(dense_size_));
  RETURN_IF_ERROR(
      file_->Append(absl::string_view(block_.data(), block_.size())));
  ASSIGN_OR_RETURN(FileDigest digest, file_->Close());  // fsynced
  RETURN_IF_ERROR(RenameDurably(file_->path(), path_));
  committed_ = true;
  return digest;
}

// ---------------------------------------------------------------- reader

absl::StatusOr<std::unique_ptr<ExportedModel>> ExportedModel::LoadFile(
    const std::string& path) {
  std::unique_ptr<ExportedModel> model(new ExportedModel());
  RETURN_IF_ERROR(model->Read(path, /*allow_delta=*/false));
  return model;
}

absl::Status ExportedModel::ApplyDelta(const std::string& path) {
  // Work on a copy so a bad delta leaves the model as it was.
  ExportedModel next = *this;
  RETURN_IF_ERROR(next.Read(path, /*allow_delta=*/true));
  *this = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<std::map<int64_t, std::string>> ListExportFiles(
    const std::string& dir) {
  std::map<int64_t, std::string> files;  // by step
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const int64_t step = StepOfFileName(entry.path().filename().string());
    if (step >= 0) files[step] = entry.path().string();
  }
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("cannot list export folder '", dir, "': ", ec.message()));
  }
  return files;
}

absl::StatusOr<std::unique_ptr<ExportedModel>> ExportedModel::LoadDir(
    const std::string& dir) {
  ASSIGN_OR_RETURN(const auto files, ListExportFiles(dir));
  // The newest FULL export: try from the newest file down.
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    ASSIGN_OR_RETURN(ExportKind kind, PeekKind(it->second));
    if (kind != ExportKind::kFull) continue;
    auto full = LoadFile(it->second);
    if (!full.ok()) return full.status();
    for (auto d = files.upper_bound(it->first); d != files.end(); ++d) {
      RETURN_IF_ERROR((*full)->ApplyDelta(d->second));
    }
    return full;
  }
  return absl::NotFoundError(absl::StrCat(
      "export folder '", dir, "' holds no FULL export (export-*.psx)"));
}

absl::Status ExportedModel::Read(const std::string& path, bool allow_delta) {
  ASSIGN_OR_RETURN(auto in,
                   ChecksummedReader::Open(path, kExportMagic, kExportVersion));
  ASSIGN_OR_RETURN(uint64_t kind, in->ReadU64());
  ASSIGN_OR_RETURN(uint64_t step, in->ReadU64());
  ASSIGN_OR_RETURN(uint64_t base_step, in->ReadU64());
  ASSIGN_OR_RETURN(std::string text, in->ReadString(kMaxConfigBytes));
  if (kind != static_cast<uint64_t>(ExportKind::kFull) &&
      kind != static_cast<uint64_t>(ExportKind::kDelta)) {
    return absl::DataLossError(
        absl::StrCat("'", path, "': unknown export kind ", kind));
  }
  const bool delta = kind == static_cast<uint64_t>(ExportKind::kDelta);
  if (delta && !allow_delta) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is a DELTA export (over step ", base_step,
                     "); load its FULL base first"));
  }
  if (delta && static_cast<int64_t>(base_step) != step_) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is a DELTA over step ", base_step,
                     ", but the model loaded is of step ", step_));
  }
  ASSIGN_OR_RETURN(JobConfig config, ParseConfig(text, path));
  if (!delta) {
    tables_.assign(config.sparse_tables_size(), Table());
    for (int t = 0; t < config.sparse_tables_size(); ++t) {
      tables_[t].dim = config.sparse_tables(t).dim();
    }
  } else if (config.sparse_tables_size() != config_.sparse_tables_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "': the delta's config has ", config.sparse_tables_size(),
        " sparse tables, its base ", config_.sparse_tables_size()));
  } else {
    // The rows kept from the base must still be what the config says.
    for (int t = 0; t < config.sparse_tables_size(); ++t) {
      const SparseTableConfig& mine = config.sparse_tables(t);
      const SparseTableConfig& base = config_.sparse_tables(t);
      if (mine.name() != base.name() || mine.dim() != tables_[t].dim) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", path, "': the delta's sparse table ", t, " is '", mine.name(),
            "' of dim ", mine.dim(), ", its base's is '", base.name(),
            "' of dim ", tables_[t].dim));
      }
    }
  }
  config_ = std::move(config);
  step_ = static_cast<int64_t>(step);

  while (true) {
    ASSIGN_OR_RETURN(uint64_t more, in->ReadU64());
    if (more == 0) break;
    ASSIGN_OR_RETURN(std::string name, in->ReadString(kMaxNameBytes));
    ASSIGN_OR_RETURN(uint64_t dim, in->ReadU64());
    const int t = TableIndex(name);
    if (t < 0 || static_cast<uint64_t>(tables_[t].dim) != dim) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", path, "': table '", name, "' of dim ", dim,
          t < 0 ? " is not in its job config"
                : absl::StrCat(" has dim ", tables_[t].dim, " in its config")));
    }
    Table& table = tables_[t];
    std::vector<char> row(sizeof(uint64_t) + dim * sizeof(float));
    while (true) {
      ASSIGN_OR_RETURN(uint64_t n, in->ReadU64());
      if (n == 0) break;
      if (n > in->remaining() / row.size()) {
        return absl::DataLossError(absl::StrCat(
            "'", path, "' is corrupt: a block of ", n, " rows of table '", name,
            "' does not fit in the rest of the file"));
      }
      for (uint64_t i = 0; i < n; ++i) {
        RETURN_IF_ERROR(in->Read(row.data(), row.size()));
        uint64_t key;
        std::memcpy(&key, row.data(), sizeof(key));
        auto [it, inserted] =
            table.index.try_emplace(key, table.values.size() / dim);
        if (inserted) table.values.resize(table.values.size() + dim);
        std::memcpy(table.values.data() + it->second * dim,
                    row.data() + sizeof(key), dim * sizeof(float));
      }
    }
    ASSIGN_OR_RETURN(uint64_t deleted, in->ReadU64());
    if (deleted > in->remaining() / sizeof(uint64_t)) {
      return absl::DataLossError(absl::StrCat(
          "'", path, "' is corrupt: ", deleted, " deleted keys of table '",
          name, "' do not fit in the rest of the file"));
    }
    for (uint64_t i = 0; i < deleted; ++i) {
      ASSIGN_OR_RETURN(uint64_t key, in->ReadU64());
      table.index.erase(key);
    }
  }
  ASSIGN_OR_RETURN(uint64_t dense_size, in->ReadU64());
  const int64_t want = MakeModelSpec(config_).dense_size;
  if (static_cast<int64_t>(dense_size) != want) {
    return absl::DataLossError(absl::StrCat("'", path, "': ", dense_size,
                                            " dense parameters, its model has ",
                                            want));
  }
  // Not a byte is allocated for floats the file cannot hold.
  if (dense_size > in->remaining() / sizeof(float)) {
    return absl::DataLossError(
        absl::StrCat("'", path, "' is corrupt: its ", dense_size,
                     " dense parameters do not fit in the rest of the file (",
                     in->remaining(), " bytes)"));
  }
  std::vector<float> dense(dense_size);
  RETURN_IF_ERROR(in->ReadFloats(absl::MakeSpan(dense)));
  RETURN_IF_ERROR(in->Finish());
  dense_ = std::move(dense);
  return absl::OkStatus();
}

int ExportedModel::TableIndex(absl::string_view name) const {
  for (int t = 0; t < config_.sparse_tables_size(); ++t) {
    if (config_.sparse_tables(t).name() == name) return t;
  }
  return -1;
}

std::vector<uint64_t> ExportedModel::Keys(int table) const {
  std::vector<uint64_t> keys;
  keys.reserve(tables_[table].index.size());
  for (const auto& [key, row] : tables_[table].index) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

int64_t ExportedModel::num_rows(int table) const {
  return static_cast<int64_t>(tables_[table].index.size());
}

const float* ExportedModel::Row(int table, uint64_t key) const {
  const Table& t = tables_[table];
  auto it = t.index.find(key);
  return it == t.index.end() ? nullptr : t.values.data() + it->second * t.dim;
}

int64_t ExportedModel::Lookup(int table, absl::Span<const uint64_t> keys,
                              absl::Span<float> out) const {
  const int dim = tables_[table].dim;
  const InitializerConfig& init = config_.sparse_tables(table).initializer();
  const uint64_t seed = config_.model().init_seed();
  int64_t found = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const float* row = Row(table, keys[i]);
    float* dst = out.data() + i * dim;
    if (row == nullptr) {
      for (int d = 0; d < dim; ++d)
        dst[d] = InitialWeight(init, seed, keys[i], d);
    } else {
      std::memcpy(dst, row, dim * sizeof(float));
      ++found;
    }
  }
  return found;
}

}  // namespace ps
