// Fuzz target: checkpoint manifests and LATEST (common/checkpoint.h).
//
// A checkpoint root holds ckpt-0000000001/, whose MANIFEST the input
// becomes, and ckpt-0000000002/, a valid checkpoint committed once by
// CommitCheckpoint. Each input is
//   1. the MANIFEST file as it is: ReadManifest and VerifyCheckpoint;
//   2. the payload of a well-formed MANIFEST file, so the bytes reach the
//      proto parser: ReadManifest, VerifyCheckpoint (ckpt-0000000001 holds
//      one data file, server-0/a.bin, for the manifest to name), and
//      CheckCheckpointCompatible against a fixed job config;
//   3. the LATEST file (inputs of up to 300 bytes): OpenLatest must open
//      the checkpoint LATEST names or refuse with a reason.
// Errors must have the documented codes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "common/checkpoint.h"
#include "common/checksummed_file.h"
#include "glog/logging.h"
#include "google/protobuf/text_format.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "tests/fuzz/fuzz_jobs.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::string* root;
std::string* fuzzed;  // root/ckpt-0000000001
ps::JobConfig* job;

void CheckReadError(const absl::Status& status) {
  CHECK(absl::IsDataLoss(status) || absl::IsFailedPrecondition(status) ||
        absl::IsInvalidArgument(status))
      << status;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  job = new ps::JobConfig(ps::fuzz::ParsedJob(ps::fuzz::kCheckpointJob));
  root = new std::string(ps::fuzz::ScratchPath("ckpt"));
  fuzzed = new std::string(*root + "/" + ps::CheckpointDirName(1));
  std::filesystem::create_directories(*fuzzed + "/server-0");
  ps::fuzz::WriteFileOrDie(*fuzzed + "/server-0/a.bin", "rows");

  auto good = ps::PrepareCheckpointDir(*root, 2);
  CHECK(good.ok()) << good.status();
  ps::fuzz::WriteFileOrDie(*good + "/b.bin", "dense");
  auto file = ps::DescribeCheckpointFile(*good, "b.bin");
  CHECK(file.ok()) << file.status();
  ps::Manifest manifest;
  manifest.set_global_step(2);
  manifest.set_num_servers(1);
  manifest.set_job_config(ps::RecordedJobConfig(*job));
  *manifest.add_files() = *file;
  ps::CommitOptions keep_all;
  keep_all.keep = 0;
  CHECK(ps::CommitCheckpoint(*root, manifest, keep_all).ok());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string manifest_path = *fuzzed + "/MANIFEST";

  ps::fuzz::WriteFileOrDie(manifest_path, bytes);
  absl::StatusOr<ps::Manifest> raw = ps::ReadManifest(*fuzzed);
  absl::StatusOr<ps::Manifest> verified = raw;
  if (raw.ok()) verified = ps::VerifyCheckpoint(*fuzzed);
  if (!verified.ok()) CheckReadError(verified.status());

  ps::fuzz::WriteFileOrDie(manifest_path,
                           ps::fuzz::ChecksummedImage("PSMANIFE", 1, bytes));
  absl::StatusOr<ps::Manifest> read = ps::ReadManifest(*fuzzed);
  if (read.ok()) {
    const absl::Status compatible =
        ps::CheckCheckpointCompatible(*read, *fuzzed, *job);
    if (!compatible.ok()) CheckReadError(compatible);
    verified = ps::VerifyCheckpoint(*fuzzed);
    if (!verified.ok()) CheckReadError(verified.status());
  } else {
    CheckReadError(read.status());
  }

  // LATEST is read up to 256 bytes; longer inputs all fail alike there.
  if (size <= 300) {
    ps::fuzz::WriteFileOrDie(*root + "/LATEST", bytes);
    absl::StatusOr<ps::OpenedCheckpoint> latest = ps::OpenLatest(*root);
    if (!latest.ok()) CheckReadError(latest.status());
  }
  return 0;
}
