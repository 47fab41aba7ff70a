// Reading gzip-compressed input files (names ending in ".gz") line by line,
// through zlib.
//
// A gzip stream cannot be entered in the middle, so a .gz file is always
// read whole by one reader thread of one worker (see worker/data/data_reader.h
// for how files are assigned). Concatenated gzip members are read as one
// stream. A truncated or corrupt file is an error naming the file; so is a file
// named .gz whose content is not gzip (zlib would pass it through as is).
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

class GzipLineSource final : public LineStream {
 public:
  // Opens `path` for reading; `*buffer` (may be empty) must outlive the
  // source. Errors as InputFile::Open.
  static absl::StatusOr<std::unique_ptr<GzipLineSource>> Open(
      const std::string& path, std::vector<char>* buffer);

  GzipLineSource(const GzipLineSource&) = delete;
  GzipLineSource& operator=(const GzipLineSource&) = delete;
  ~GzipLineSource() override;

  // Next decompressed line. Internal error "cannot decompress input file
  // '<path>': <zlib's reason>" for a corrupt or truncated file,
  // InvalidArgument when the file is not gzip.
  absl::StatusOr<bool> Next(absl::string_view* line) override;
  absl::StatusOr<int64_t> LineNumber() override { return line_number_; }

 private:
  GzipLineSource(gzFile file, std::string path, std::vector<char>* buffer);

  // Reads up to `n` decompressed bytes into `dst`; 0 at the end.
  absl::StatusOr<size_t> Read(char* dst, size_t n);
  // The status of zlib's last error on file_ (OK when there is none).
  absl::Status ZlibError() const;

  gzFile file_;
  const std::string path_;
  LineBuffer lines_;
  int64_t line_number_ = 0;  // of the line Next last returned
};

}  // namespace ps

#endif  // PS_WORKER_DATA_GZIP_READER_H_
