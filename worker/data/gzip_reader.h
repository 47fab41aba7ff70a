// Reading gzip-compressed input files (names ending in ".gz") line by line,
// through zlib.
//
// A gzip stream cannot be entered in the middle, so a .gz file is always
// read whole by one reader thread of one worker (see worker/data/data_reader.h
// for how files are assigned). Concatenated gzip members are read as one
// stream. A truncated or corrupt file is an error naming the file; so is a file
// named .gz whose content is not gzip (zlib would pass it through as is).
//
// Bounded against hostile files (GzipLimits): a line longer than
// max_line_bytes is dropped and reported (LineStream::too_long), and a file
// that decompresses to more than max_decompressed_bytes, or at a ratio above
// max_ratio (a gzip bomb), is a ResourceExhausted error naming the file and
// the limit.
//
// Thread-safety: a GzipLineSource is not thread-safe; distinct sources may
// be used from distinct threads.
#ifndef PS_WORKER_DATA_GZIP_READER_H_
#define PS_WORKER_DATA_GZIP_READER_H_

#include <zlib.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/data/line_source.h"

namespace ps {

// True when `path` ends in ".gz".
bool IsGzipPath(absl::string_view path);

// The ratio limit is checked once a file has given more than this many
// decompressed bytes (a small file cannot hurt, whatever its ratio).
inline constexpr int64_t kGzipRatioCheckBytes = int64_t{16} << 20;

// Limits of one .gz file, from data.max_line_bytes,
// data.gzip_max_decompressed_bytes and data.gzip_max_ratio.
struct GzipLimits {
  // Longest line kept (see LineBuffer). Default: 1 MiB.
  int64_t max_line_bytes = kDefaultMaxLineBytes;
  // Decompressed bytes the file may give; 0 = no limit. Default: 1 TiB.
  int64_t max_decompressed_bytes = int64_t{1} << 40;
  // Decompressed bytes per compressed byte read, checked past
  // kGzipRatioCheckBytes; 0 = no limit. Default: 1000.
  int64_t max_ratio = 1000;
};

class GzipLineSource final : public StreamLineSource {
 public:
  // Opens `path` for reading; `*buffer` (may be empty) must outlive the
  // source. Errors as InputFile::Open.
  static absl::StatusOr<std::unique_ptr<GzipLineSource>> Open(
      const std::string& path, std::vector<char>* buffer,
      const GzipLimits& limits = GzipLimits());

  GzipLineSource(const GzipLineSource&) = delete;
  GzipLineSource& operator=(const GzipLineSource&) = delete;
  ~GzipLineSource() override;

  // Next (StreamLineSource) gives the decompressed lines. DataLoss "cannot
  // decompress input file '<path>': <zlib's reason>" for a corrupt or
  // truncated file, InvalidArgument when the file is not gzip,
  // ResourceExhausted past a limit (naming the file, the limit and its
  // config field).

  // Decompressed bytes read from the file so far.
  int64_t decompressed_bytes() const { return decompressed_; }

 private:
  GzipLineSource(gzFile file, std::string path, std::vector<char>* buffer,
                 const GzipLimits& limits);

  // Reads up to `n` decompressed bytes into `dst`; 0 at the end.
  absl::StatusOr<size_t> Read(char* dst, size_t n) override;
  // The status of zlib's last error on file_ (OK when there is none).
  absl::Status ZlibError() const;
  // ResourceExhausted once decompressed_ passes a limit.
  absl::Status CheckLimits() const;

  gzFile file_;
  const std::string path_;
  const GzipLimits limits_;
  int64_t decompressed_ = 0;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_GZIP_READER_H_
