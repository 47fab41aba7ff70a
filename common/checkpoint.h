// The on-disk layout of job checkpoints: folders, manifest, LATEST pointer,
// verification, retention and the compatibility check against a job config.
//
//   <root>/
//     LATEST                 one line: the folder name of the current
//                            checkpoint, e.g. "ckpt-0000001200"
//     ckpt-0000001000/       a complete checkpoint: data files + MANIFEST
//     ckpt-0000001200/
//       MANIFEST             a checksummed file ("PSMANIFE") holding a
//                            serialized Manifest (proto/checkpoint.proto)
//       <data files>         any relative paths the writers chose
//
// Writing a checkpoint of step s:
//   1. PrepareCheckpointDir(root, s) creates <root>/ckpt-<s>/ (removing an
//      incomplete leftover of the same step).
//   2. Servers and workers write their files into it (ChecksummedWriter in
//      common/checksummed_file.h, RocksDB checkpoints by hard links) and
//      describe each with DescribeCheckpointFile (or the digest Close gave).
//   3. CommitCheckpoint writes the MANIFEST last (tmp, fsync, rename, fsync
//      the folder), then replaces LATEST atomically (LATEST.tmp, fsync,
//      rename, fsync the root), then applies retention.
// A crash at any moment leaves the previous checkpoint usable: until LATEST
// is renamed it still names the previous folder, and a folder without a
// MANIFEST is never taken for a checkpoint.
//
// Errors name the folder or file and the problem: DataLoss for a missing,
// truncated or corrupt file of a checkpoint ("missing", "truncated: size X
// want Y", "checksum mismatch"), FailedPrecondition for an incomplete
// checkpoint or an incompatible config, NotFound when there is no
// checkpoint at all.
//
// Thread-safety: the functions hold no shared state; two processes must not
// commit into the same root at the same time (the coordinator is the only
// committer).
#ifndef PS_COMMON_CHECKPOINT_H_
#define PS_COMMON_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"

namespace ps {

// Checkpoint folders are named by step with 10 digits: a job's steps stay
// below this (servers refuse a push at or past it).
inline constexpr int64_t kMaxCheckpointStep = 10000000000;

// Version written into Manifest.format_version (and the MANIFEST file).
inline constexpr int kCheckpointFormatVersion = 1;
inline constexpr char kManifestFileName[] = "MANIFEST";
inline constexpr char kLatestFileName[] = "LATEST";

// "ckpt-0000000042". REQUIRES: 0 <= step < 10^10.
std::string CheckpointDirName(int64_t step);
// The step of a folder name made by CheckpointDirName; NotFound otherwise.
absl::StatusOr<int64_t> ParseCheckpointDirName(absl::string_view name);

// Creates <root> (if needed) and <root>/<CheckpointDirName(step)>/ and
// returns the latter. An incomplete folder of that step (a crashed earlier
// try) is removed first; a complete one is AlreadyExists.
absl::StatusOr<std::string> PrepareCheckpointDir(const std::string& root,
                                                 int64_t step);

// Size and crc32 of `dir`/`relative_path`. InvalidArgument for a path that
// is absolute or has "." / ".." / empty components; NotFound if missing.
absl::StatusOr<CheckpointFile> DescribeCheckpointFile(
    const std::string& dir, const std::string& relative_path);

// Where CommitCheckpoint stands; a failpoint sees each before it happens.
enum class CommitStage {
  kSyncFiles,       // fsync every listed file and its folder
  kWriteManifest,   // write MANIFEST.tmp
  kRenameManifest,  // rename it to MANIFEST, fsync the folder
  kWriteLatest,     // write LATEST.tmp
  kRenameLatest,    // rename it to LATEST, fsync the root
  kRetention,       // delete checkpoints beyond `keep`
};
absl::string_view CommitStageName(CommitStage stage);

struct CommitOptions {
  // Complete checkpoints to keep, newest first (the one LATEST names is
  // always kept). Default: 3. 0 = keep all.
  int keep = 3;
  // Test hook: called before each stage; a non-OK return stops the commit
  // there and is returned, as if the process had died at that point (the
  // tmp files written so far stay). Default: none.
  std::function<absl::Status(CommitStage)> failpoint;
};

// Makes <root>/<CheckpointDirName(step)> the current checkpoint:
// `manifest` must list every data file (manifest.files) and carry
// global_step = step; format_version and created_unix_micros are filled in
// when unset. Every listed file must exist with its size (checked, not
// re-checksummed: DescribeCheckpointFile computed the checksum). Errors:
// InvalidArgument for a manifest naming no step or a bad path,
// DataLoss when a listed file is missing or has another size.
absl::Status CommitCheckpoint(const std::string& root, Manifest manifest,
                              const CommitOptions& options = {});

// The manifest of `dir`, without checking the data files.
// FailedPrecondition "checkpoint '<dir>' is incomplete: no MANIFEST" when
// it has none; DataLoss when the MANIFEST is corrupt, a symbolic link, or
// holds what CommitCheckpoint never writes: num_servers < 1, a global_step
// outside [0, 10^10) or, in a folder named ckpt-<step>, another step.
absl::StatusOr<Manifest> ReadManifest(const std::string& dir);

// Reads the manifest and checks that every listed file exists with its size
// and checksum. DataLoss naming the file: "... 'x': missing", "... 'x':
// truncated: size 10 want 64", "... 'x': checksum mismatch", "... 'x': is a
// symbolic link" (checkpoints are written without links, so a link, to the
// file or a folder on its path, was put there by something else).
absl::StatusOr<Manifest> VerifyCheckpoint(const std::string& dir);

struct CheckpointInfo {
  int64_t step = 0;
  std::string dir;        // <root>/ckpt-<step>
  bool complete = false;  // has a MANIFEST (not verified)
};
// Every ckpt-* folder of `root`, by increasing step; empty when `root` does
// not exist.
absl::StatusOr<std::vector<CheckpointInfo>> ListCheckpoints(
    const std::string& root);

struct OpenedCheckpoint {
  std::string dir;
  Manifest manifest;
};

// The verified checkpoint of `dir`.
absl::StatusOr<OpenedCheckpoint> OpenCheckpoint(const std::string& dir);

// The verified checkpoint LATEST names. NotFound when `root` holds no
// checkpoint at all. When LATEST is missing, unreadable or names a folder
// that fails verification, FailedPrecondition saying so and naming the
// newest previous checkpoint that verifies ("... resume from
// '<root>/ckpt-0000000900' (step 900) explicitly"), or saying there is
// none. Never falls back silently.
absl::StatusOr<OpenedCheckpoint> OpenLatest(const std::string& root);

// Deletes complete checkpoints older than the `keep` newest (never the one
// LATEST names), and incomplete folders older than the newest complete one.
// Folders newer than the newest complete one (a checkpoint being written)
// and LATEST.tmp are left alone. keep <= 0 deletes nothing.
absl::Status ApplyRetention(const std::string& root, int keep);

// Manifest.job_config for the job `config` runs: the config as text, with
// the generator settings left out when train_files name the generated files
// (a config with both does not validate).
std::string RecordedJobConfig(const JobConfig& config);

// The checkpoint's job config (Manifest.job_config) against `job`: the same
// sparse tables (by name) with the same dims, and the same dense parameter
// count. FailedPrecondition naming the table and both values, e.g.
// "sparse table 'emb': dim 16 in the job config, 8 in checkpoint '<dir>'";
// DataLoss when the checkpoint's config text does not parse.
// REQUIRES: `job` passed ValidateJobConfig.
absl::Status CheckCheckpointCompatible(const Manifest& manifest,
                                       absl::string_view checkpoint_dir,
                                       const JobConfig& job);

}  // namespace ps

#endif  // PS_COMMON_CHECKPOINT_H_
