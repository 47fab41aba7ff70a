#include "worker/data/gzip_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ps {
namespace {

constexpr unsigned kZlibBuffer = 256 << 10;  // compressed-side buffer

}  // namespace

bool IsGzipPath(absl::string_view path) { return absl::EndsWith(path, ".gz"); }

absl::StatusOr<std::unique_ptr<GzipLineSource>> GzipLineSource::Open(
    const std::string& path, std::vector<char>* buffer) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InputFileError(errno, "open", path);
  gzFile file = gzdopen(fd, "rb");
  if (file == nullptr) {
    close(fd);
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot open input file '", path, "': out of memory for zlib"));
  }
  gzbuffer(file, kZlibBuffer);
  return std::unique_ptr<GzipLineSource>(
      new GzipLineSource(file, path, buffer));
}

GzipLineSource::GzipLineSource(gzFile file, std::string path,
                               std::vector<char>* buffer)
    : file_(file), path_(std::move(path)), lines_(buffer, 0) {}

GzipLineSource::~GzipLineSource() { gzclose(file_); }

absl::Status GzipLineSource::ZlibError() const {
  int code = Z_OK;
  const char* text = gzerror(file_, &code);
  if (code == Z_OK) return absl::OkStatus();
  if (code == Z_ERRNO) return InputFileError(errno, "read", path_);
  // zlib prefixes its messages with the file's name, "<fd:N>" here.
  absl::string_view reason = text;
  const size_t prefix = reason.find(">: ");
  if (absl::StartsWith(reason, "<fd:") && prefix != absl::string_view::npos) {
    reason.remove_prefix(prefix + 3);
  }
  return absl::InternalError(
      absl::StrCat("cannot decompress input file '", path_, "': ", reason));
}

absl::StatusOr<size_t> GzipLineSource::Read(char* dst, size_t n) {
  const unsigned want = static_cast<unsigned>(std::min<size_t>(n, INT_MAX));
  const int got = gzread(file_, dst, want);
  if (got < 0) {
    RETURN_IF_ERROR(ZlibError());
    return absl::InternalError(
        absl::StrCat("cannot decompress input file '", path_, "'"));
  }
  if (got > 0 && gzdirect(file_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input file '", path_, "' ends in .gz but is not gzip-compressed"));
  }
  // zlib reports a truncated stream only through gzerror (Z_BUF_ERROR), with
  // gzread returning the bytes it could decode and then 0.
  if (got == 0) RETURN_IF_ERROR(ZlibError());
  return static_cast<size_t>(got);
}

absl::StatusOr<bool> GzipLineSource::Next(absl::string_view* line) {
  int64_t start = 0;
  ASSIGN_OR_RETURN(
      bool more,
      lines_.Next([this](char* dst, size_t n) { return Read(dst, n); }, line,
                  &start));
  if (more) ++line_number_;
  return more;
}

}  // namespace ps
