// Reading the lines of one byte range of an input file, for DataReader.
//
// InputFile is an open file read by offset (pread), closed on destruction.
// LineSource yields the lines that start inside [begin, end) of a file (a
// line starting exactly at `begin` included; one running past `end`
// included whole), through a caller's buffer that is reused from one source
// to the next and grows only for lines longer than it. It can tell the file
// line number of the line it last returned, counting the newlines before
// its range once, when first asked.
//
// Errors name the file: NotFound or PermissionDenied from the OS error where
// it says so, Internal otherwise.
//
// Thread-safety: InputFile's methods are const and may be called from any
// number of threads. A LineSource is not thread-safe.
#ifndef PS_WORKER_LINE_SOURCE_H_
#define PS_WORKER_LINE_SOURCE_H_

#include <cstddef>
#include <cstdint>
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

class LineSource {
 public:
  // Reads the lines of `*file` that start in [begin, end), 0 <= begin.
  // `*file` and `*buffer` must outlive the source; `*buffer` may be empty.
  LineSource(const InputFile* file, int64_t begin, int64_t end,
             std::vector<char>* buffer);
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  // Sets `line` (without its '\n') to the next line; false once no line of
  // the range is left. `line` lives until the next call.
  absl::StatusOr<bool> Next(absl::string_view* line);

  // The 1-based line number in the file of the line Next last returned.
  // REQUIRES: Next has returned true.
  absl::StatusOr<int64_t> LineNumber();

 private:
  // Next without the range: the next line of the file and its offset.
  absl::StatusOr<bool> Scan(absl::string_view* line, int64_t* start);

  const InputFile& file_;
  const int64_t begin_;
  const int64_t end_;
  std::vector<char>& buf_;
  int64_t base_ = 0;    // file offset of buf_[0]
  size_t pos_ = 0;      // start of the next line in buf_
  size_t filled_ = 0;   // bytes of buf_ holding data
  size_t scanned_ = 0;  // buf_[pos_, scanned_) holds no '\n'
  bool eof_ = false;
  bool started_ = false;  // the line before the range is skipped
  bool done_ = false;
  int64_t first_start_ = -1;  // file offset of the range's first line
  int64_t first_line_ = -1;   // its line number, once asked
  int64_t index_ = -1;        // 0-based index of the last line returned
};

}  // namespace ps

#endif  // PS_WORKER_LINE_SOURCE_H_
