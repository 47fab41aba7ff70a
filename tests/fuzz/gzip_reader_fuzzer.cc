// Fuzz target: gzip-compressed input files (worker/data/gzip_reader.h).
//
// The input is written as a .gz file and read line by line to the end or
// the first error: line numbers count up from 1; errors are Internal
// (corrupt or truncated) or InvalidArgument (not gzip) and name the file.
// At most 64 MiB of lines are read, so a run stays short whatever the
// compression ratio.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/data/gzip_reader.h"

namespace {

std::vector<char>* buffer;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  buffer = new std::vector<char>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ps::fuzz::ScratchPath("data.gz");
  ps::fuzz::WriteFileOrDie(
      path, absl::string_view(reinterpret_cast<const char*>(data), size));
  auto source = ps::GzipLineSource::Open(path, buffer);
  CHECK(source.ok()) << source.status();
  absl::string_view line;
  int64_t bytes = 0;
  for (int64_t number = 1; bytes < (int64_t{64} << 20); ++number) {
    absl::StatusOr<bool> more = (*source)->Next(&line);
    if (!more.ok()) {
      // Corrupt or truncated input is DATA_LOSS, a limit RESOURCE_EXHAUSTED
      // (never INTERNAL, which means a bug of ours).
      CHECK(absl::IsDataLoss(more.status()) ||
            absl::IsResourceExhausted(more.status()) ||
            absl::IsInvalidArgument(more.status()))
          << more.status();
      CHECK(absl::StrContains(more.status().message(), path)) << more.status();
      break;
    }
    if (!*more) break;
    CHECK_EQ(line.find('\n'), absl::string_view::npos);
    absl::StatusOr<int64_t> at = (*source)->LineNumber();
    CHECK(at.ok() && *at == number) << at.status();
    bytes += static_cast<int64_t>(line.size()) + 1;
  }
  return 0;
}
