// Reading the lines of input files, for DataReader and the parsers' side
// files.
//
// InputFile is an open file read by offset (pread), closed on destruction.
// LineStream is the interface of a sequence of lines that can tell the file
// line number of the line it last returned. LineSource is the LineStream of
// the lines that start inside [begin, end) of a plain file (a line starting
// exactly at `begin` included; one running past `end` included whole); it
// counts the newlines before its range once, when first asked for a line
// number. GzipLineSource (worker/data/gzip_reader.h) is the one of a whole
// gzip-compressed file. Both read through a caller's buffer (LineBuffer)
// that is reused from one source to the next and grows only for lines longer
// than it.
//
// Errors name the file: NotFound or PermissionDenied from the OS error where
// it says so, Internal otherwise.
//
// Thread-safety: InputFile's methods are const and may be called from any
// number of threads. LineBuffer and LineStreams are not thread-safe.
#ifndef PS_WORKER_DATA_LINE_SOURCE_H_
#define PS_WORKER_DATA_LINE_SOURCE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

// "cannot <what> input file '<path>': <strerror(err)>", as NotFound for
// ENOENT/ENOTDIR, PermissionDenied for EACCES/EPERM, Internal otherwise.
absl::Status InputFileError(int err, absl::string_view what,
                            const std::string& path);

class InputFile {
 public:
  // Opens `path` read-only.
  static absl::StatusOr<InputFile> Open(const std::string& path);

  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  const std::string& path() const { return path_; }

  // Size in bytes; InvalidArgument when the file is not a regular file.
  absl::StatusOr<int64_t> Size() const;

  // Reads up to `n` bytes at `offset` into `buf`, retrying when
  // interrupted. Returns the count read, 0 at the end of the file.
  absl::StatusOr<size_t> ReadAt(int64_t offset, char* buf, size_t n) const;

  // Number of '\n' bytes in [0, end) of the file (fewer if it is shorter).
  absl::StatusOr<int64_t> CountNewlines(int64_t end) const;

 private:
  InputFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_;  // -1 once moved from
  std::string path_;
};

// Splits a byte stream into lines through a caller's buffer.
class LineBuffer {
 public:
  // `*buffer` (may be empty; grown to at least 1 MiB) must outlive this.
  // `base` is the stream offset of the first byte to be read.
  LineBuffer(std::vector<char>* buffer, int64_t base);
  LineBuffer(const LineBuffer&) = delete;
  LineBuffer& operator=(const LineBuffer&) = delete;

  // Sets `line` (without its '\n') to the next line and `start` to its
  // stream offset; false at the end of the stream. `line` lives until the
  // next call. `read(char* dst, size_t n)` must return the count of the next
  // bytes of the stream it copied to dst (up to n; 0 at the end) as a
  // StatusOr<size_t>; its errors are returned.
  template <typename Read>
  absl::StatusOr<bool> Next(Read&& read, absl::string_view* line,
                            int64_t* start);

  // Stream offset just past the last line returned (its '\n' included):
  // where the next line starts.
  int64_t consumed() const { return base_ + static_cast<int64_t>(pos_); }

 private:
  // Keeps the partial line at pos_, making room after it; returns where to
  // read into and how much fits.
  std::pair<char*, size_t> Compact();

  std::vector<char>& buf_;
  int64_t base_;        // stream offset of buf_[0]
  size_t pos_ = 0;      // start of the next line in buf_
  size_t filled_ = 0;   // bytes of buf_ holding data
  size_t scanned_ = 0;  // buf_[pos_, scanned_) holds no '\n'
  bool eof_ = false;
};

// A sequence of lines of one file.
class LineStream {
 public:
  virtual ~LineStream() = default;

  // Sets `line` (without its '\n') to the next line; false once no line is
  // left. `line` lives until the next call.
  virtual absl::StatusOr<bool> Next(absl::string_view* line) = 0;

  // The 1-based line number in the file of the line Next last returned.
  // REQUIRES: Next has returned true.
  virtual absl::StatusOr<int64_t> LineNumber() = 0;
};

class LineSource final : public LineStream {
 public:
  // Reads the lines of `*file` that start in [begin, end), 0 <= begin.
  // `*file` and `*buffer` must outlive the source; `*buffer` may be empty.
  LineSource(const InputFile* file, int64_t begin, int64_t end,
             std::vector<char>* buffer);
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  absl::StatusOr<bool> Next(absl::string_view* line) override;
  absl::StatusOr<int64_t> LineNumber() override;

  // File offset where the line after the last one returned starts (the
  // file's size after its last line). REQUIRES: Next has returned true.
  int64_t next_offset() const { return lines_.consumed(); }

 private:
  // Next without the range: the next line of the file and its offset.
  absl::StatusOr<bool> Scan(absl::string_view* line, int64_t* start);

  const InputFile& file_;
  const int64_t begin_;
  const int64_t end_;
  int64_t read_at_;  // file offset of the next byte to read
  LineBuffer lines_;
  bool started_ = false;  // the line before the range is skipped
  bool done_ = false;
  int64_t first_start_ = -1;  // file offset of the range's first line
  int64_t first_line_ = -1;   // its line number, once asked
  int64_t index_ = -1;        // 0-based index of the last line returned
};

template <typename Read>
absl::StatusOr<bool> LineBuffer::Next(Read&& read, absl::string_view* line,
                                      int64_t* start) {
  while (true) {
    const void* nl =
        std::memchr(buf_.data() + scanned_, '\n', filled_ - scanned_);
    if (nl != nullptr || (eof_ && pos_ < filled_)) {
      const size_t line_end =
          nl ? static_cast<size_t>(static_cast<const char*>(nl) - buf_.data())
             : filled_;
      *line = absl::string_view(buf_.data() + pos_, line_end - pos_);
      *start = base_ + static_cast<int64_t>(pos_);
      pos_ = scanned_ = nl ? line_end + 1 : filled_;
      return true;
    }
    if (eof_) return false;
    auto [dst, room] = Compact();
    absl::StatusOr<size_t> got = read(dst, room);
    if (!got.ok()) return got.status();
    if (*got == 0) eof_ = true;
    filled_ += *got;
  }
}

}  // namespace ps

#endif  // PS_WORKER_DATA_LINE_SOURCE_H_
