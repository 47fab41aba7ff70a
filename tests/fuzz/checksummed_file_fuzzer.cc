// Fuzz target: checksummed files (common/checksummed_file.h).
//
// The input is written as a file of kind "PSFUZZ01" (version 1 or 2 read)
// and read two ways: whole (ReadChecksummedFile) and streamed (strings,
// u64s and floats in turn until the payload ends or a read fails, then
// Finish). Errors must carry the file's path and the documented codes; the
// stream must accept exactly what the whole read accepts. Then the input
// is the payload of a well-formed file, which must read back as it is.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/types/span.h"
#include "common/checksummed_file.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr char kMagic[] = "PSFUZZ01";

void CheckError(const absl::Status& status, const std::string& path) {
  CHECK(absl::IsDataLoss(status) || absl::IsInvalidArgument(status) ||
        absl::IsFailedPrecondition(status))
      << status;
  CHECK(absl::StrContains(status.message(), path)) << status;
}

// Reads the payload of `path` piece by piece; the status of the first
// failure, or of Finish.
absl::Status Stream(const std::string& path) {
  auto reader = ps::ChecksummedReader::Open(path, kMagic, 2);
  if (!reader.ok()) return reader.status();
  ps::ChecksummedReader& in = **reader;
  CHECK_GE(in.version(), 1u);
  std::vector<float> floats(3);
  for (int step = 0; in.remaining() > 0; ++step) {
    const uint64_t before = in.remaining();
    absl::Status status;
    if (step % 3 == 0) {
      status = in.ReadString(64).status();
    } else if (step % 3 == 1) {
      status = in.ReadU64().status();
    } else {
      status = in.ReadFloats(absl::MakeSpan(floats));
    }
    if (!status.ok()) {
      // Only a string's length may have been read.
      const uint64_t used = before - in.remaining();
      CHECK(used == 0 || (step % 3 == 0 && used == 8)) << used;
      // What is left, bytewise, so the checksum can still be checked.
      while (in.remaining() > 0) {
        char c;
        CHECK(in.Read(&c, 1).ok());
      }
      absl::Status finish = in.Finish();
      return finish.ok() ? status : finish;
    }
  }
  return in.Finish();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string path = ps::fuzz::ScratchPath("file.bin");
  ps::fuzz::WriteFileOrDie(path, bytes);

  uint32_t version = 0;
  absl::StatusOr<std::string> whole =
      ps::ReadChecksummedFile(path, kMagic, 2, &version);
  if (!whole.ok()) CheckError(whole.status(), path);
  const absl::Status streamed = Stream(path);
  if (!streamed.ok()) CheckError(streamed, path);
  if (whole.ok()) {
    CHECK(version == 1 || version == 2);
    CHECK_EQ(whole->size() + ps::kChecksummedHeaderBytes +
                 ps::kChecksummedFooterBytes,
             size);
  }
  // A stream may fail on a short string or u64 at the end; it may not pass
  // a file the whole read refuses.
  CHECK(whole.ok() || !streamed.ok()) << whole.status();
  absl::StatusOr<ps::FileDigest> digest = ps::DigestFile(path);
  CHECK(digest.ok()) << digest.status();
  CHECK_EQ(digest->size, static_cast<int64_t>(size));

  ps::fuzz::WriteFileOrDie(path, ps::fuzz::ChecksummedImage(kMagic, 1, bytes));
  absl::StatusOr<std::string> back = ps::ReadChecksummedFile(path, kMagic, 1);
  CHECK(back.ok()) << back.status();
  CHECK(*back == bytes);
  return 0;
}
