#include "common/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checksummed_file.h"
#include "common/config_validate.h"
#include "common/model_spec.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

constexpr char kManifestMagic[] = "PSMANIFE";
constexpr char kDirPrefix[] = "ckpt-";
constexpr int kStepDigits = 10;

absl::Status CheckRelativePath(const std::string& path) {
  bool ok = !path.empty() && path[0] != '/';
  if (ok) {
    for (absl::string_view part : absl::StrSplit(path, '/')) {
      if (part.empty() || part == "." || part == "..") ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint file path '", path,
        "' must be relative, without empty, '.' or '..' components"));
  }
  return absl::OkStatus();
}

// Whether `path` itself, not what it points to, is a symbolic link.
bool IsSymlink(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// The first of the folders and the file `relative` names under `dir` ("a",
// "a/b", ...) that is a symbolic link; "" when none is.
std::string FirstSymlink(const std::string& dir, const std::string& relative) {
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(relative, '/')) {
    if (!prefix.empty()) prefix += '/';
    absl::StrAppend(&prefix, part);
    if (IsSymlink(absl::StrCat(dir, "/", prefix))) return prefix;
  }
  return "";
}

// Size of `path`; NotFound when missing.
absl::StatusOr<int64_t> FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return FileError(errno, "stat", path);
  return static_cast<int64_t>(st.st_size);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return FileError(errno, absl::StrCat("rename '", from, "' to"), to);
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot delete '", path, "': ", ec.message()));
  }
  return absl::OkStatus();
}

// The folder name LATEST holds, or an error describing what is wrong.
absl::StatusOr<std::string> ReadLatestName(const std::string& root) {
  const std::string path = absl::StrCat(root, "/", kLatestFileName);
  FILE* f = fopen(path.c_str(), "re");
  if (f == nullptr) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("'", path, "' is missing"));
    }
    return FileError(errno, "open", path);
  }
  char buf[256];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  absl::string_view text =
      absl::StripAsciiWhitespace(absl::string_view(buf, n));
  if (!ParseCheckpointDirName(text).ok() || n == sizeof(buf)) {
    return absl::DataLossError(
        absl::StrCat("'", path, "' is corrupt: it holds '",
                     absl::CHexEscape(text.substr(0, 40)),
                     "', not a checkpoint folder name"));
  }
  return std::string(text);
}

absl::Status ProblemInFile(const std::string& dir, const std::string& file,
                           absl::string_view problem) {
  return absl::DataLossError(
      absl::StrCat("checkpoint '", dir, "': file '", file, "': ", problem));
}

}  // namespace

std::string CheckpointDirName(int64_t step) {
  return absl::StrFormat("%s%0*d", kDirPrefix, kStepDigits, step);
}

absl::StatusOr<int64_t> ParseCheckpointDirName(absl::string_view name) {
  int64_t step = -1;
  if (!absl::ConsumePrefix(&name, kDirPrefix) || name.size() != kStepDigits ||
      !std::all_of(name.begin(), name.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(name, &step)) {
    return absl::NotFoundError(
        absl::StrCat("'", name, "' is not a checkpoint folder name"));
  }
  return step;
}

absl::string_view CommitStageName(CommitStage stage) {
  switch (stage) {
    case CommitStage::kSyncFiles:
      return "sync files";
    case CommitStage::kWriteManifest:
      return "write manifest";
    case CommitStage::kRenameManifest:
      return "rename manifest";
    case CommitStage::kWriteLatest:
      return "write LATEST";
    case CommitStage::kRenameLatest:
      return "rename LATEST";
    case CommitStage::kRetention:
      return "retention";
  }
  return "unknown";
}

absl::StatusOr<std::string> PrepareCheckpointDir(const std::string& root,
                                                 int64_t step) {
  if (step < 0 || step >= kMaxCheckpointStep) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint step must be in [0, 10^10), got ", step));
  }
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create checkpoint root '",
                                            root, "': ", ec.message()));
  }
  const std::string name = CheckpointDirName(step);
  const std::string dir = absl::StrCat(root, "/", name);
  if (Exists(dir)) {
    auto latest = ReadLatestName(root);
    if (latest.ok() && *latest == name) {
      return absl::AlreadyExistsError(absl::StrCat(
          "checkpoint '", dir, "' already exists and is the one LATEST names"));
    }
    // Incomplete, or complete but abandoned (a crash before LATEST moved):
    // this write replaces it.
    RETURN_IF_ERROR(RemoveTree(dir));
  }
  fs::create_directory(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create checkpoint folder '",
                                            dir, "': ", ec.message()));
  }
  RETURN_IF_ERROR(SyncPath(root));
  return dir;
}

absl::StatusOr<CheckpointFile> DescribeCheckpointFile(
    const std::string& dir, const std::string& relative_path) {
  RETURN_IF_ERROR(CheckRelativePath(relative_path));
  ASSIGN_OR_RETURN(FileDigest digest,
                   DigestFile(absl::StrCat(dir, "/", relative_path)));
  CheckpointFile file;
  file.set_path(relative_path);
  file.set_size(digest.size);
  file.set_crc32(digest.crc32);
  return file;
}

absl::Status CommitCheckpoint(const std::string& root, Manifest manifest,
                              const CommitOptions& options) {
  if (!manifest.has_global_step() || manifest.global_step() < 0) {
    return absl::InvalidArgumentError(
        "checkpoint manifest: global_step is required and must be >= 0");
  }
  const std::string dir =
      absl::StrCat(root, "/", CheckpointDirName(manifest.global_step()));
  if (!manifest.has_format_version()) {
    manifest.set_format_version(kCheckpointFormatVersion);
  }
  if (!manifest.has_created_unix_micros()) {
    manifest.set_created_unix_micros(absl::ToUnixMicros(absl::Now()));
  }
  auto stage = [&](CommitStage s) -> absl::Status {
    return options.failpoint ? options.failpoint(s) : absl::OkStatus();
  };

  RETURN_IF_ERROR(stage(CommitStage::kSyncFiles));
  std::set<std::string> paths;
  std::set<std::string> dirs = {dir};
  for (const CheckpointFile& f : manifest.files()) {
    RETURN_IF_ERROR(CheckRelativePath(f.path()));
    if (f.path() == kManifestFileName || !paths.insert(f.path()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint '", dir, "': file '", f.path(),
                       "' is listed twice or uses the reserved name MANIFEST"));
    }
    const std::string path = absl::StrCat(dir, "/", f.path());
    absl::StatusOr<int64_t> size = FileSize(path);
    if (!size.ok()) return ProblemInFile(dir, f.path(), "missing");
    if (*size != f.size()) {
      return ProblemInFile(dir, f.path(),
                           absl::StrCat("size ", *size, " want ", f.size()));
    }
    RETURN_IF_ERROR(SyncPath(path));
    dirs.insert(ParentDir(path));
  }
  for (const std::string& d : dirs) RETURN_IF_ERROR(SyncPath(d));

  RETURN_IF_ERROR(stage(CommitStage::kWriteManifest));
  const std::string manifest_path = absl::StrCat(dir, "/", kManifestFileName);
  RETURN_IF_ERROR(WriteChecksummedFile(manifest_path + ".tmp", kManifestMagic,
                                       kCheckpointFormatVersion,
                                       manifest.SerializeAsString())
                      .status());
  RETURN_IF_ERROR(stage(CommitStage::kRenameManifest));
  RETURN_IF_ERROR(Rename(manifest_path + ".tmp", manifest_path));
  RETURN_IF_ERROR(SyncPath(dir));

  RETURN_IF_ERROR(stage(CommitStage::kWriteLatest));
  const std::string latest = absl::StrCat(root, "/", kLatestFileName);
  // LATEST.tmp then the rename, as WriteFileAtomically, with a failpoint
  // between.
  {
    FILE* f = fopen((latest + ".tmp").c_str(), "we");
    if (f == nullptr) return FileError(errno, "create", latest + ".tmp");
    const std::string line = CheckpointDirName(manifest.global_step()) + "\n";
    const bool ok = fwrite(line.data(), 1, line.size(), f) == line.size() &&
                    fflush(f) == 0 && fsync(fileno(f)) == 0;
    const int err = errno;
    fclose(f);
    if (!ok) return FileError(err, "write", latest + ".tmp");
  }
  RETURN_IF_ERROR(stage(CommitStage::kRenameLatest));
  RETURN_IF_ERROR(Rename(latest + ".tmp", latest));
  RETURN_IF_ERROR(SyncPath(root));

  RETURN_IF_ERROR(stage(CommitStage::kRetention));
  return ApplyRetention(root, options.keep);
}

absl::StatusOr<Manifest> ReadManifest(const std::string& dir) {
  if (!Exists(dir)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint folder '", dir, "' does not exist"));
  }
  const std::string path = absl::StrCat(dir, "/", kManifestFileName);
  if (!Exists(path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint '", dir, "' is incomplete: no ", kManifestFileName,
        " (the writer stopped before finishing it)"));
  }
  // Checkpoints are written without following links (O_NOFOLLOW): a link
  // in one was put there by something else.
  if (IsSymlink(path)) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint '", dir, "': its ", kManifestFileName,
        " is a symbolic link (a checkpoint's files are never links)"));
  }
  ASSIGN_OR_RETURN(
      std::string payload,
      ReadChecksummedFile(path, kManifestMagic, kCheckpointFormatVersion));
  Manifest manifest;
  if (!manifest.ParseFromString(payload)) {
    return absl::DataLossError(
        absl::StrCat("'", path, "' is corrupt: not a Manifest"));
  }
  if (manifest.format_version() > kCheckpointFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint '", dir, "' has format version ", manifest.format_version(),
        "; this build reads up to ", kCheckpointFormatVersion));
  }
  // What every reader relies on, checked once here: a manifest that passes
  // its checksum but not these was not written by CommitCheckpoint.
  if (manifest.num_servers() < 1) {
    return absl::DataLossError(
        absl::StrCat("checkpoint '", dir, "': its manifest says num_servers ",
                     manifest.num_servers(), " (must be >= 1)"));
  }
  if (manifest.global_step() < 0 ||
      manifest.global_step() >= kMaxCheckpointStep) {
    return absl::DataLossError(
        absl::StrCat("checkpoint '", dir, "': its manifest's global_step ",
                     manifest.global_step(), " is not in [0, 10^10)"));
  }
  const absl::StatusOr<int64_t> named = ParseCheckpointDirName(
      fs::path(std::string(absl::StripSuffix(dir, "/"))).filename().string());
  if (named.ok() && *named != manifest.global_step()) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint '", dir, "': its manifest's global_step ",
        manifest.global_step(), " is not the step its folder is named for (",
        *named, ")"));
  }
  return manifest;
}

absl::StatusOr<Manifest> VerifyCheckpoint(const std::string& dir) {
  ASSIGN_OR_RETURN(Manifest manifest, ReadManifest(dir));
  for (const CheckpointFile& f : manifest.files()) {
    if (!CheckRelativePath(f.path()).ok()) {
      return ProblemInFile(dir, f.path(), "bad path in the manifest");
    }
    const std::string link = FirstSymlink(dir, f.path());
    if (!link.empty()) {
      return ProblemInFile(
          dir, f.path(),
          absl::StrCat(link == f.path() ? "" : absl::StrCat("'", link, "' "),
                       "is a symbolic link (a checkpoint's files and folders "
                       "are never links)"));
    }
    const std::string path = absl::StrCat(dir, "/", f.path());
    absl::StatusOr<int64_t> size = FileSize(path);
    if (!size.ok()) {
      return ProblemInFile(dir, f.path(),
                           absl::IsNotFound(size.status())
                               ? std::string("missing")
                               : std::string(size.status().message()));
    }
    if (*size != f.size()) {
      return ProblemInFile(
          dir, f.path(),
          absl::StrCat(*size < f.size() ? "truncated: " : "wrong size: ",
                       "size ", *size, " want ", f.size()));
    }
    ASSIGN_OR_RETURN(FileDigest digest, DigestFile(path));
    if (digest.crc32 != f.crc32()) {
      return ProblemInFile(
          dir, f.path(),
          absl::StrCat("checksum mismatch (crc32 ", digest.crc32,
                       ", manifest says ", f.crc32(), ")"));
    }
  }
  return manifest;
}

absl::StatusOr<std::vector<CheckpointInfo>> ListCheckpoints(
    const std::string& root) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::exists(root, ec)) return out;
  fs::directory_iterator it(root, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot list checkpoint root '",
                                            root, "': ", ec.message()));
  }
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    absl::StatusOr<int64_t> step = ParseCheckpointDirName(name);
    if (!step.ok() || !entry.is_directory(ec)) continue;
    CheckpointInfo info;
    info.step = *step;
    info.dir = absl::StrCat(root, "/", name);
    info.complete = Exists(absl::StrCat(info.dir, "/", kManifestFileName));
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) {
              return a.step < b.step;
            });
  return out;
}

absl::StatusOr<OpenedCheckpoint> OpenCheckpoint(const std::string& dir) {
  ASSIGN_OR_RETURN(Manifest manifest, VerifyCheckpoint(dir));
  return OpenedCheckpoint{dir, std::move(manifest)};
}

absl::StatusOr<OpenedCheckpoint> OpenLatest(const std::string& root) {
  ASSIGN_OR_RETURN(std::vector<CheckpointInfo> all, ListCheckpoints(root));
  absl::StatusOr<std::string> latest = ReadLatestName(root);
  std::string problem;
  int64_t broken_step = -1;
  if (latest.ok()) {
    broken_step = *ParseCheckpointDirName(*latest);
    absl::StatusOr<OpenedCheckpoint> opened =
        OpenCheckpoint(absl::StrCat(root, "/", *latest));
    if (opened.ok()) return opened;
    problem =
        absl::StrCat("LATEST names '", *latest,
                     "', which cannot be used: ", opened.status().message());
  } else {
    const bool any_complete =
        std::any_of(all.begin(), all.end(),
                    [](const CheckpointInfo& c) { return c.complete; });
    if (absl::IsNotFound(latest.status()) && !any_complete) {
      std::vector<std::string> incomplete;
      for (const CheckpointInfo& c : all) incomplete.push_back(c.dir);
      return absl::NotFoundError(absl::StrCat(
          "no checkpoint in '", root, "'",
          incomplete.empty()
              ? ""
              : absl::StrCat(" (incomplete, unusable: ",
                             absl::StrJoin(incomplete, ", "), ")")));
    }
    problem = std::string(latest.status().message());
  }
  // Offer the newest other checkpoint that verifies.
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (!it->complete || it->step == broken_step) continue;
    if (VerifyCheckpoint(it->dir).ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          problem, "; the newest previous complete checkpoint is '", it->dir,
          "' (step ", it->step,
          "): to resume from it, name it explicitly or point LATEST at it"));
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat(problem, "; no other checkpoint in '", root, "' verifies"));
}

absl::Status ApplyRetention(const std::string& root, int keep) {
  if (keep <= 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<CheckpointInfo> all, ListCheckpoints(root));
  absl::StatusOr<std::string> latest = ReadLatestName(root);
  if (!latest.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint retention in '", root,
                     "' deletes nothing: ", latest.status().message()));
  }
  const int64_t latest_step = *ParseCheckpointDirName(*latest);
  // Only what LATEST's timeline proves complete counts; newer folders may be
  // in progress (or abandoned: PrepareCheckpointDir replaces them).
  int kept = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (it->step > latest_step) continue;
    bool remove = false;
    if (it->step == latest_step) {
      ++kept;
    } else if (it->complete) {
      remove = ++kept > keep;
    } else {
      remove = true;  // incomplete and older than the current checkpoint
    }
    if (remove) RETURN_IF_ERROR(RemoveTree(it->dir));
  }
  return absl::OkStatus();
}

std::string RecordedJobConfig(const JobConfig& config) {
  JobConfig recorded = config;
  if (!recorded.data().train_files().empty()) {
    recorded.mutable_data()->clear_generate();
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(recorded, &text);
  return text;
}

absl::Status CheckCheckpointCompatible(const Manifest& manifest,
                                       absl::string_view checkpoint_dir,
                                       const JobConfig& job) {
  JobConfig saved;
  if (!google::protobuf::TextFormat::ParseFromString(manifest.job_config(),
                                                     &saved)) {
    return absl::DataLossError(
        absl::StrCat("checkpoint '", checkpoint_dir,
                     "': its job config does not parse as a JobConfig"));
  }
  const std::string where = absl::StrCat("checkpoint '", checkpoint_dir, "'");
  std::vector<std::string> saved_names;
  for (const SparseTableConfig& t : saved.sparse_tables()) {
    saved_names.push_back(t.name());
  }
  for (const SparseTableConfig& t : job.sparse_tables()) {
    const SparseTableConfig* match = nullptr;
    for (const SparseTableConfig& s : saved.sparse_tables()) {
      if (s.name() == t.name()) match = &s;
    }
    if (match == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sparse table '", t.name(), "' of the job config is not in ", where,
          " (it has: ", absl::StrJoin(saved_names, ", "), ")"));
    }
    if (match->dim() != t.dim()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sparse table '", t.name(), "': dim ", t.dim(),
                       " in the job config, ", match->dim(), " in ", where));
    }
  }
  for (const SparseTableConfig& s : saved.sparse_tables()) {
    bool found = false;
    for (const SparseTableConfig& t : job.sparse_tables()) {
      found = found || t.name() == s.name();
    }
    if (!found) {
      return absl::FailedPreconditionError(
          absl::StrCat("sparse table '", s.name(), "' of ", where,
                       " is not in the job config"));
    }
  }
  if (saved.model().type() != job.model().type()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model.type: ", ModelConfig::Type_Name(job.model().type()),
        " in the job config, ", ModelConfig::Type_Name(saved.model().type()),
        " in ", where));
  }
  absl::Status valid = ValidateJobConfig(saved, where, nullptr);
  if (!valid.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": its job config does not validate: ", valid.message()));
  }
  const int64_t saved_dense = MakeModelSpec(saved).dense_size;
  const int64_t job_dense = MakeModelSpec(job).dense_size;
  if (saved_dense != job_dense) {
    return absl::FailedPreconditionError(absl::StrCat(
        "dense parameters: ", job_dense, " floats in the job config, ",
        saved_dense, " in ", where, " (the model's layers differ)"));
  }
  return absl::OkStatus();
}

}  // namespace ps
