#include "worker/data/line_source.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ps {
namespace {

constexpr size_t kReadChunk = size_t{1} << 20;

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU variant: returns the text
}

}  // namespace

absl::Status InputFileError(int err, absl::string_view what,
                            const std::string& path) {
  std::string message = absl::StrCat("cannot ", what, " input file '", path,
                                     "': ", ErrnoText(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<InputFile> InputFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InputFileError(errno, "open", path);
  return InputFile(fd, path);
}

InputFile::InputFile(InputFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<int64_t> InputFile::Size() const {
  struct stat st;
  if (fstat(fd_, &st) != 0) return InputFileError(errno, "stat", path_);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input file '", path_, "' is not a regular file"));
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<size_t> InputFile::ReadAt(int64_t offset, char* buf,
                                         size_t n) const {
  while (true) {
    ssize_t got = pread(fd_, buf, n, offset);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return InputFileError(errno, "read", path_);
  }
}

absl::StatusOr<int64_t> InputFile::CountNewlines(int64_t end) const {
  std::unique_ptr<char[]> buf(new char[kReadChunk]);
  int64_t count = 0;
  for (int64_t pos = 0; pos < end;) {
    size_t want = static_cast<size_t>(
        std::min<int64_t>(static_cast<int64_t>(kReadChunk), end - pos));
    ASSIGN_OR_RETURN(size_t got, ReadAt(pos, buf.get(), want));
    if (got == 0) break;  // the file shrank
    const char* p = buf.get();
    const char* const stop = p + got;
    while (const void* nl = std::memchr(p, '\n', stop - p)) {
      ++count;
      p = static_cast<const char*>(nl) + 1;
    }
    pos += static_cast<int64_t>(got);
  }
  return count;
}

LineBuffer::LineBuffer(std::vector<char>* buffer, int64_t base,
                       int64_t max_line_bytes)
    : buf_(*buffer),
      max_line_bytes_(
          static_cast<size_t>(std::max<int64_t>(1, max_line_bytes))),
      base_(base) {
  if (buf_.size() < kReadChunk) buf_.resize(kReadChunk);
}

void LineBuffer::Restart(int64_t base) {
  base_ = base;
  pos_ = filled_ = scanned_ = 0;
  eof_ = skipping_ = false;
}

std::pair<char*, size_t> LineBuffer::Compact() {
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, filled_ - pos_);
    base_ += static_cast<int64_t>(pos_);
    filled_ -= pos_;
    pos_ = 0;
  }
  scanned_ = filled_;
  if (filled_ == buf_.size()) {
    // A partial line of at most max_line_bytes_ fills the buffer (Next drops
    // a longer one): room for one byte past the limit is enough to tell.
    const size_t size = std::min(2 * buf_.size(), max_line_bytes_ + 1);
    buf_.reserve(size);  // exactly: never more than the limit needs
    buf_.resize(size);
  }
  return {buf_.data() + filled_, buf_.size() - filled_};
}

// A line belongs to the range when it starts in [begin, end): scanning
// starts after the first '\n' at or after begin - 1 (FirstLineStart), which
// ends the line containing that byte.
LineSource::LineSource(const InputFile* file, int64_t begin, int64_t end,
                       std::vector<char>* buffer, int64_t max_line_bytes)
    : file_(*file),
      begin_(begin),
      end_(end),
      read_at_(begin),
      lines_(buffer, read_at_, max_line_bytes) {}

absl::StatusOr<int64_t> LineSource::FirstLineStart() const {
  char chunk[4096];
  // A line starts at p + 1 for a '\n' at p >= begin_ - 1; inside the range
  // when p + 1 < end_.
  for (int64_t at = begin_ - 1; at + 1 < end_;) {
    const size_t want = static_cast<size_t>(
        std::min<int64_t>(static_cast<int64_t>(sizeof(chunk)), end_ - 1 - at));
    ASSIGN_OR_RETURN(size_t got, file_.ReadAt(at, chunk, want));
    if (got == 0) break;  // the file ends first
    if (const void* nl = std::memchr(chunk, '\n', got)) {
      return at + (static_cast<const char*>(nl) - chunk) + 1;
    }
    at += static_cast<int64_t>(got);
  }
  return -1;
}

absl::StatusOr<bool> LineSource::Next(absl::string_view* line) {
  if (done_) return false;
  int64_t start = 0;
  if (!started_) {
    started_ = true;
    if (begin_ > 0) {
      ASSIGN_OR_RETURN(const int64_t first, FirstLineStart());
      if (first < 0) {
        done_ = true;
        return false;
      }
      read_at_ = first;
      lines_.Restart(first);
    }
  }
  ASSIGN_OR_RETURN(bool more, Scan(line, &start));
  if (!more || start >= end_) {
    done_ = true;
    return false;
  }
  if (first_start_ < 0) first_start_ = start;
  ++index_;
  return true;
}

absl::StatusOr<int64_t> LineSource::LineNumber() {
  if (first_line_ < 0) {
    ASSIGN_OR_RETURN(int64_t newlines, file_.CountNewlines(first_start_));
    first_line_ = newlines + 1;
  }
  return first_line_ + index_;
}

absl::StatusOr<bool> LineSource::Scan(absl::string_view* line, int64_t* start) {
  return lines_.Next(
      [this](char* dst, size_t n) -> absl::StatusOr<size_t> {
        ASSIGN_OR_RETURN(size_t got, file_.ReadAt(read_at_, dst, n));
        read_at_ += static_cast<int64_t>(got);
        return got;
      },
      line, start, &too_long_);
}

absl::StatusOr<bool> StreamLineSource::Next(absl::string_view* line) {
  int64_t start = 0;
  ASSIGN_OR_RETURN(
      bool more,
      lines_.Next([this](char* dst, size_t n) { return Read(dst, n); }, line,
                  &start, &too_long_));
  if (more) ++line_number_;
  return more;
}

}  // namespace ps
