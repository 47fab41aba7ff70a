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
// than it, up to max_line_bytes + 1 bytes: a longer line is not held but
// dropped up to its '\n' and reported as too long (LineStream::too_long), so
// no input can make the buffer grow past max(1 MiB, max_line_bytes + 1).
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

// The default longest line of a line source (data.max_line_bytes).
inline constexpr int64_t kDefaultMaxLineBytes = int64_t{1} << 20;

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
  // `*buffer` (may be empty; grown to at least 1 MiB, and past that only up
  // to max_line_bytes + 1 bytes) must outlive this. `base` is the stream
  // offset of the first byte to be read. REQUIRES: max_line_bytes >= 1.
  LineBuffer(std::vector<char>* buffer, int64_t base, int64_t max_line_bytes);
  LineBuffer(const LineBuffer&) = delete;
  LineBuffer& operator=(const LineBuffer&) = delete;

  // Sets `line` (without its '\n') to the next line and `start` to its
  // stream offset; false at the end of the stream. `line` lives until the
  // next call. A line of more than max_line_bytes bytes (its '\n' not
  // counted) is read through and dropped: `line` is then empty and
  // *too_long true. `read(char* dst, size_t n)` must return the count of the
  // next bytes of the stream it copied to dst (up to n; 0 at the end) as a
  // StatusOr<size_t>; its errors are returned.
  template <typename Read>
  absl::StatusOr<bool> Next(Read&& read, absl::string_view* line,
                            int64_t* start, bool* too_long);

  // Starts over at stream offset `base`, forgetting what was buffered.
  void Restart(int64_t base);

  // Stream offset just past the last line returned (its '\n' included):
  // where the next line starts.
  int64_t consumed() const { return base_ + static_cast<int64_t>(pos_); }

 private:
  // Keeps the partial line at pos_, making room after it; returns where to
  // read into and how much fits.
  std::pair<char*, size_t> Compact();

  std::vector<char>& buf_;
  const size_t max_line_bytes_;
  int64_t base_;        // stream offset of buf_[0]
  size_t pos_ = 0;      // start of the next line in buf_
  size_t filled_ = 0;   // bytes of buf_ holding data
  size_t scanned_ = 0;  // buf_[pos_, scanned_) holds no '\n'
  bool eof_ = false;
  // Inside a line longer than max_line_bytes, which started at stream offset
  // long_start_: its bytes are dropped as they come.
  bool skipping_ = false;
  int64_t long_start_ = 0;
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

  // Whether the line Next last returned was longer than the stream's
  // max_line_bytes: its bytes were dropped and `line` is empty. A malformed
  // line for the caller.
  virtual bool too_long() const { return false; }
};

// The LineStream of a byte stream read once from its start (a .gz file,
// a command's output): a derived class supplies Read, this splits the bytes
// into lines through a LineBuffer and numbers them from 1.
class StreamLineSource : public LineStream {
 public:
  absl::StatusOr<bool> Next(absl::string_view* line) final;
  absl::StatusOr<int64_t> LineNumber() final { return line_number_; }
  bool too_long() const final { return too_long_; }

 protected:
  // `*buffer` (may be empty) must outlive the source.
  StreamLineSource(std::vector<char>* buffer, int64_t max_line_bytes)
      : lines_(buffer, 0, max_line_bytes) {}

  // Copies up to `n` next bytes of the stream to `dst`; the count, 0 at its
  // end.
  virtual absl::StatusOr<size_t> Read(char* dst, size_t n) = 0;

  // Lines returned so far.
  int64_t lines_returned() const { return line_number_; }

 private:
  LineBuffer lines_;
  int64_t line_number_ = 0;  // of the line Next last returned
  bool too_long_ = false;    // the line Next last returned
};

class LineSource final : public LineStream {
 public:
  // Reads the lines of `*file` that start in [begin, end), 0 <= begin,
  // each at most max_line_bytes long (see LineBuffer). `*file` and `*buffer`
  // must outlive the source; `*buffer` may be empty.
  LineSource(const InputFile* file, int64_t begin, int64_t end,
             std::vector<char>* buffer,
             int64_t max_line_bytes = kDefaultMaxLineBytes);
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  absl::StatusOr<bool> Next(absl::string_view* line) override;
  absl::StatusOr<int64_t> LineNumber() override;
  bool too_long() const override { return too_long_; }

  // File offset where the line after the last one returned starts (the
  // file's size after its last line). REQUIRES: Next has returned true.
  int64_t next_offset() const { return lines_.consumed(); }

 private:
  // Next without the range: the next line of the file and its offset.
  absl::StatusOr<bool> Scan(absl::string_view* line, int64_t* start);
  // The offset of the first line starting in [begin_, end_), found by
  // reading from begin_ - 1 to the first '\n' but never past end_ (so a
  // range inside one long line costs no more than its own bytes); -1 when
  // no line starts there. REQUIRES: begin_ > 0.
  absl::StatusOr<int64_t> FirstLineStart() const;

  const InputFile& file_;
  const int64_t begin_;
  const int64_t end_;
  int64_t read_at_;  // file offset of the next byte to read
  LineBuffer lines_;
  bool started_ = false;  // the line before the range is skipped
  bool done_ = false;
  bool too_long_ = false;     // of the line last returned
  int64_t first_start_ = -1;  // file offset of the range's first line
  int64_t first_line_ = -1;   // its line number, once asked
  int64_t index_ = -1;        // 0-based index of the last line returned
};

template <typename Read>
absl::StatusOr<bool> LineBuffer::Next(Read&& read, absl::string_view* line,
                                      int64_t* start, bool* too_long) {
  while (true) {
    const void* nl =
        std::memchr(buf_.data() + scanned_, '\n', filled_ - scanned_);
    if (nl != nullptr || (eof_ && (pos_ < filled_ || skipping_))) {
      const size_t line_end =
          nl ? static_cast<size_t>(static_cast<const char*>(nl) - buf_.data())
             : filled_;
      *too_long = skipping_ || line_end - pos_ > max_line_bytes_;
      *line = *too_long
                  ? absl::string_view()
                  : absl::string_view(buf_.data() + pos_, line_end - pos_);
      *start = skipping_ ? long_start_ : base_ + static_cast<int64_t>(pos_);
      pos_ = scanned_ = nl ? line_end + 1 : filled_;
      skipping_ = false;
      return true;
    }
    if (eof_) return false;
    if (!skipping_ && filled_ - pos_ > max_line_bytes_) {
      skipping_ = true;  // too long: drop it up to its '\n'
      long_start_ = base_ + static_cast<int64_t>(pos_);
    }
    if (skipping_) pos_ = filled_;  // nothing of it is kept
    auto [dst, room] = Compact();
    absl::StatusOr<size_t> got = read(dst, room);
    if (!got.ok()) return got.status();
    if (*got == 0) eof_ = true;
    filled_ += *got;
  }
}

}  // namespace ps

#endif  // PS_WORKER_DATA_LINE_SOURCE_H_
