// Helpers shared by the libFuzzer targets of tests/fuzz/ (see
// tests/fuzz/CMakeLists.txt): a scratch folder for the targets whose code
// under test reads files by path, a file writer that skips fsync (one file
// per run, tens of thousands of runs a second), the framing of a
// checksummed file (common/checksummed_file.h) so a target can hand its
// bytes to a reader as a valid payload, and quiet logs.
//
// A target runs on one thread; none of this is thread-safe.
#ifndef PS_TESTS_FUZZ_FUZZ_UTIL_H_
#define PS_TESTS_FUZZ_FUZZ_UTIL_H_

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "google/protobuf/stubs/logging.h"

namespace ps {
namespace fuzz {

// The process's scratch folder (made with mkdtemp under $TMPDIR, else /tmp,
// on first use; removed at exit), without a trailing '/'.
inline const std::string& ScratchDir() {
  static const std::string* dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base ? base : "/tmp") +
                       "/ps_fuzz_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "fuzz: mkdtemp(%s): %s\n", tmpl.c_str(),
                   strerror(errno));
      std::abort();
    }
    auto* path = new std::string(tmpl);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(ScratchDir(), ignored);
    });
    return path;
  }();
  return *dir;
}

// ScratchDir()/name.
inline std::string ScratchPath(absl::string_view name) {
  return ScratchDir() + "/" + std::string(name);
}

// Replaces the file at `path` with `data` (no fsync: the files are scratch).
// Aborts when it cannot: the target cannot go on without its input.
inline void WriteFileOrDie(const std::string& path, absl::string_view data) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK_GE(fd, 0) << "open " << path << ": " << strerror(errno);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    CHECK_GT(n, 0) << "write " << path << ": " << strerror(errno);
    done += static_cast<size_t>(n);
  }
  CHECK_EQ(close(fd), 0) << "close " << path << ": " << strerror(errno);
}

// A whole checksummed file holding `payload`, as ChecksummedWriter writes
// it (common/checksummed_file.h: header, payload, footer with the payload
// size, the crc32 of header + payload and the end magic). Written here
// rather than with the writer so no run pays for its fsync.
inline std::string ChecksummedImage(absl::string_view magic, uint32_t version,
                                    absl::string_view payload) {
  CHECK_EQ(magic.size(), 8u);
  std::string out(magic);
  auto put32 = [&out](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  };
  auto put64 = [&out](uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  };
  put32(version);
  put32(0);
  out.append(payload.data(), payload.size());
  const uint32_t crc =
      static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(out.data()),
                                  static_cast<uInt>(out.size())));
  put64(payload.size());
  put32(crc);
  put32(0x4B435350);  // "PSCK"
  return out;
}

// Lines of `data` split at '\n' (a last line without '\n' included), as a
// reader hands them to a parser.
inline std::vector<absl::string_view> Lines(absl::string_view data) {
  std::vector<absl::string_view> lines;
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    lines.push_back(data.substr(0, nl));
    if (nl == absl::string_view::npos) break;
    data.remove_prefix(nl + 1);
  }
  return lines;
}

// Only glog's errors and worse reach stderr, and nothing of protobuf's: the
// code under test logs INFO lines (reloads, restores), and protobuf one
// line per text-format parse error (config texts inside exports and
// manifests), on paths a target runs thousands of times a second.
inline void QuietLogs() {
  FLAGS_minloglevel = google::GLOG_ERROR;
  google::protobuf::SetLogHandler(nullptr);
}

}  // namespace fuzz
}  // namespace ps

#endif  // PS_TESTS_FUZZ_FUZZ_UTIL_H_
