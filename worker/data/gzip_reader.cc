#include "worker/data/gzip_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <string>
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
    const std::string& path, std::vector<char>* buffer,
    const GzipLimits& limits) {
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
      new GzipLineSource(file, path, buffer, limits));
}

GzipLineSource::GzipLineSource(gzFile file, std::string path,
                               std::vector<char>* buffer,
                               const GzipLimits& limits)
    : StreamLineSource(buffer, limits.max_line_bytes),
      file_(file),
      path_(std::move(path)),
      limits_(limits) {}

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
  std::string message =
      absl::StrCat("cannot decompress input file '", path_, "': ", reason);
  switch (code) {
    case Z_BUF_ERROR:   // the stream ends early: a truncated file
    case Z_DATA_ERROR:  // corrupt deflate data or a wrong checksum
      return absl::DataLossError(std::move(message));
    case Z_MEM_ERROR:
      return absl::ResourceExhaustedError(std::move(message));
    default:
      return absl::InternalError(std::move(message));
  }
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
  decompressed_ += got;
  RETURN_IF_ERROR(CheckLimits());
  return static_cast<size_t>(got);
}

absl::Status GzipLineSource::CheckLimits() const {
  if (limits_.max_decompressed_bytes > 0 &&
      decompressed_ > limits_.max_decompressed_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "input file '", path_, "' decompresses to more than ",
        limits_.max_decompressed_bytes,
        " bytes (data.gzip_max_decompressed_bytes); refusing to read on"));
  }
  if (limits_.max_ratio > 0 && decompressed_ > kGzipRatioCheckBytes) {
    // The compressed bytes zlib has consumed (not those it buffered ahead);
    // -1 if it cannot tell, then the check waits for the next read.
    const int64_t compressed = gzoffset(file_);
    if (compressed >= 0 &&
        static_cast<double>(decompressed_) >
            static_cast<double>(limits_.max_ratio) *
                static_cast<double>(std::max<int64_t>(1, compressed))) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "input file '", path_, "' looks like a gzip bomb: ", compressed,
          " compressed bytes gave ", decompressed_,
          " bytes, a ratio above data.gzip_max_ratio = ", limits_.max_ratio,
          ":1"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ps
