#include "common/checksummed_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ps {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "checksummed files are little-endian; add byte swaps here");

constexpr uint32_t kEndMagic = 0x4B435350;  // "PSCK" little-endian
constexpr size_t kBufferBytes = size_t{1} << 20;

// zlib's crc32 returns its initial value 0 for a null buffer (an empty
// vector's data()), so empty input must not reach it.
uint32_t Crc(uint32_t crc, const char* data, size_t n) {
  if (n == 0) return crc;
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(data), n));
}

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU variant: returns the text
}

void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void PutU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Reads exactly n bytes at offset; `*got` is what was read before EOF.
absl::Status PreadFull(int fd, const std::string& path, int64_t offset,
                       char* dst, size_t n, size_t* got) {
  *got = 0;
  while (*got < n) {
    ssize_t r = pread(fd, dst + *got, n - *got, offset + *got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "read", path);
    }
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status CheckMagic(absl::string_view magic) {
  if (magic.size() != 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file magic must be 8 bytes, got '", absl::CHexEscape(magic), "'"));
  }
  return absl::OkStatus();
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status FileError(int err, absl::string_view what,
                       const std::string& path) {
  std::string message =
      absl::StrCat("cannot ", what, " '", path, "': ", ErrnoText(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ELOOP:
      // O_NOFOLLOW met a symbolic link: checkpoint files are never written
      // through one.
      return absl::PermissionDeniedError(
          absl::StrCat(message, " (a symbolic link, not followed)"));
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

// ---------------------------------------------------------------- writer

absl::StatusOr<std::unique_ptr<ChecksummedWriter>> ChecksummedWriter::Create(
    const std::string& path, absl::string_view magic, uint32_t version) {
  RETURN_IF_ERROR(CheckMagic(magic));
  int fd = open(path.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return FileError(errno, "create", path);
  std::unique_ptr<ChecksummedWriter> w(new ChecksummedWriter(fd, path));
  char header[kChecksummedHeaderBytes];
  std::memcpy(header, magic.data(), 8);
  PutU32(header + 8, version);
  PutU32(header + 12, 0);
  w->crc_ = Crc(0, header, sizeof(header));
  w->buffer_.insert(w->buffer_.end(), header, header + sizeof(header));
  return w;
}

ChecksummedWriter::ChecksummedWriter(int fd, std::string path)
    : fd_(fd), path_(std::move(path)) {
  buffer_.reserve(kBufferBytes);
}

ChecksummedWriter::~ChecksummedWriter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status ChecksummedWriter::WriteRaw(const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "write", path_);
    }
    data += w;
    n -= static_cast<size_t>(w);
    file_size_ += w;
  }
  return absl::OkStatus();
}

absl::Status ChecksummedWriter::Flush() {
  absl::Status s = WriteRaw(buffer_.data(), buffer_.size());
  buffer_.clear();
  return s;
}

absl::Status ChecksummedWriter::Append(absl::string_view data) {
  if (fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("append to closed file '", path_, "'"));
  }
  crc_ = Crc(crc_, data.data(), data.size());
  payload_size_ += data.size();
  if (buffer_.size() + data.size() <= kBufferBytes) {
    buffer_.insert(buffer_.end(), data.begin(), data.end());
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(Flush());
  if (data.size() >= kBufferBytes) return WriteRaw(data.data(), data.size());
  buffer_.insert(buffer_.end(), data.begin(), data.end());
  return absl::OkStatus();
}

absl::Status ChecksummedWriter::AppendFloats(absl::Span<const float> values) {
  return Append(absl::string_view(reinterpret_cast<const char*>(values.data()),
                                  values.size() * sizeof(float)));
}

absl::Status ChecksummedWriter::AppendU64(uint64_t value) {
  char b[8];
  PutU64(b, value);
  return Append(absl::string_view(b, 8));
}

absl::StatusOr<FileDigest> ChecksummedWriter::Close() {
  if (fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("file '", path_, "' closed twice"));
  }
  char footer[kChecksummedFooterBytes];
  PutU64(footer, payload_size_);
  PutU32(footer + 8, crc_);
  PutU32(footer + 12, kEndMagic);
  buffer_.insert(buffer_.end(), footer, footer + sizeof(footer));
  // The digest of the whole file continues the header + payload crc.
  const uint32_t file_crc = Crc(crc_, footer, sizeof(footer));
  absl::Status status = Flush();
  if (status.ok() && fsync(fd_) != 0) status = FileError(errno, "fsync", path_);
  if (close(fd_) != 0 && status.ok()) status = FileError(errno, "close", path_);
  fd_ = -1;
  RETURN_IF_ERROR(status);
  return FileDigest{file_size_, file_crc};
}

absl::Status AppendString(ChecksummedWriter* writer, absl::string_view s) {
  RETURN_IF_ERROR(writer->AppendU64(s.size()));
  return writer->Append(s);
}

// ---------------------------------------------------------------- reader

ChecksummedReader::ChecksummedReader(int fd, std::string path)
    : fd_(fd), path_(std::move(path)) {}

ChecksummedReader::~ChecksummedReader() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<ChecksummedReader>> ChecksummedReader::Open(
    const std::string& path, absl::string_view magic, uint32_t max_version) {
  RETURN_IF_ERROR(CheckMagic(magic));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open", path);
  std::unique_ptr<ChecksummedReader> r(new ChecksummedReader(fd, path));
  struct stat st;
  if (fstat(fd, &st) != 0) return FileError(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a regular file"));
  }
  const int64_t size = st.st_size;
  constexpr int64_t kFraming =
      kChecksummedHeaderBytes + kChecksummedFooterBytes;
  char header[kChecksummedHeaderBytes];
  size_t got = 0;
  RETURN_IF_ERROR(PreadFull(fd, path, 0, header, sizeof(header), &got));
  if (got >= 8 && std::memcmp(header, magic.data(), 8) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a '", absl::CHexEscape(magic),
                     "' file: it starts with '",
                     absl::CHexEscape(absl::string_view(header, 8)), "'"));
  }
  if (size < kFraming) {
    return absl::DataLossError(absl::StrCat("'", path, "' is truncated: ", size,
                                            " bytes, less than the ", kFraming,
                                            " of an empty checksummed file"));
  }
  r->version_ = GetU32(header + 8);
  if (r->version_ < 1 || r->version_ > max_version) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' has format version ", r->version_,
                     "; this build reads versions 1 to ", max_version));
  }
  char footer[kChecksummedFooterBytes];
  RETURN_IF_ERROR(PreadFull(fd, path, size - kChecksummedFooterBytes, footer,
                            sizeof(footer), &got));
  if (got != sizeof(footer) || GetU32(footer + 12) != kEndMagic) {
    return absl::DataLossError(absl::StrCat(
        "'", path, "' is truncated or corrupt: no valid footer at its end (",
        size, " bytes)"));
  }
  r->payload_size_ = GetU64(footer);
  r->want_crc_ = GetU32(footer + 8);
  if (r->payload_size_ != static_cast<uint64_t>(size - kFraming)) {
    return absl::DataLossError(absl::StrCat(
        "'", path, "' is truncated or corrupt: its footer says ",
        r->payload_size_, " payload bytes, the file holds ", size - kFraming));
  }
  r->crc_ = Crc(0, header, sizeof(header));
  r->read_at_ = kChecksummedHeaderBytes;
  return r;
}

absl::Status ChecksummedReader::ReadRaw(char* dst, size_t n) {
  size_t got = 0;
  RETURN_IF_ERROR(PreadFull(fd_, path_, read_at_, dst, n, &got));
  if (got != n) {
    return absl::DataLossError(
        absl::StrCat("'", path_, "' shrank while being read"));
  }
  read_at_ += static_cast<int64_t>(n);
  crc_ = Crc(crc_, dst, n);
  consumed_ += n;
  return absl::OkStatus();
}

absl::Status ChecksummedReader::Read(char* dst, size_t n) {
  if (n > remaining()) {
    return absl::DataLossError(
        absl::StrCat("'", path_, "' is too short: wanted ", n,
                     " more bytes at payload "
                     "offset ",
                     consumed_, ", only ", remaining(), " left"));
  }
  return ReadRaw(dst, n);
}

absl::Status ChecksummedReader::ReadFloats(absl::Span<float> out) {
  return Read(reinterpret_cast<char*>(out.data()), out.size() * sizeof(float));
}

absl::StatusOr<uint64_t> ChecksummedReader::ReadU64() {
  char b[8];
  RETURN_IF_ERROR(Read(b, 8));
  return GetU64(b);
}

absl::StatusOr<std::string> ChecksummedReader::ReadString(uint64_t max_len) {
  ASSIGN_OR_RETURN(uint64_t len, ReadU64());
  if (len > max_len || len > remaining()) {
    return absl::DataLossError(
        absl::StrCat("'", path_, "' is corrupt: a string of ", len,
                     " bytes at payload offset ", consumed_ - 8, " (at most ",
                     std::min<uint64_t>(max_len, remaining()), " possible)"));
  }
  std::string s(len, '\0');
  RETURN_IF_ERROR(Read(s.data(), len));
  return s;
}

absl::Status ChecksummedReader::Finish() {
  if (consumed_ != payload_size_) {
    return absl::DataLossError(
        absl::StrCat("'", path_, "' has ", payload_size_ - consumed_,
                     " unexpected trailing payload bytes"));
  }
  if (crc_ != want_crc_) {
    return absl::DataLossError(
        absl::StrCat("'", path_, "' is corrupt: checksum mismatch (crc32 ",
                     crc_, ", the footer says ", want_crc_, ")"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- helpers

absl::StatusOr<FileDigest> WriteChecksummedFile(const std::string& path,
                                                absl::string_view magic,
                                                uint32_t version,
                                                absl::string_view payload) {
  ASSIGN_OR_RETURN(auto writer,
                   ChecksummedWriter::Create(path, magic, version));
  RETURN_IF_ERROR(writer->Append(payload));
  return writer->Close();
}

absl::StatusOr<std::string> ReadChecksummedFile(const std::string& path,
                                                absl::string_view magic,
                                                uint32_t max_version,
                                                uint32_t* version) {
  ASSIGN_OR_RETURN(auto reader,
                   ChecksummedReader::Open(path, magic, max_version));
  std::string payload(reader->payload_size(), '\0');
  RETURN_IF_ERROR(reader->Read(payload.data(), payload.size()));
  RETURN_IF_ERROR(reader->Finish());
  if (version != nullptr) *version = reader->version();
  return payload;
}

absl::StatusOr<FileDigest> DigestFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open", path);
  std::unique_ptr<char[]> buf(new char[kBufferBytes]);
  FileDigest digest;
  absl::Status status;
  while (true) {
    ssize_t r = read(fd, buf.get(), kBufferBytes);
    if (r < 0) {
      if (errno == EINTR) continue;
      status = FileError(errno, "read", path);
      break;
    }
    if (r == 0) break;
    digest.crc32 = Crc(digest.crc32, buf.get(), static_cast<size_t>(r));
    digest.size += r;
  }
  close(fd);
  RETURN_IF_ERROR(status);
  return digest;
}

absl::Status SyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open", path);
  absl::Status status;
  if (fsync(fd) != 0) status = FileError(errno, "fsync", path);
  close(fd);
  return status;
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return FileError(errno, "create", tmp);
  absl::Status status;
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0 && status.ok()) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno != EINTR) status = FileError(errno, "write", tmp);
      continue;
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (status.ok() && fsync(fd) != 0) status = FileError(errno, "fsync", tmp);
  if (close(fd) != 0 && status.ok()) status = FileError(errno, "close", tmp);
  RETURN_IF_ERROR(status);
  return RenameDurably(tmp, path);
}

absl::Status RenameDurably(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return FileError(errno, absl::StrCat("rename '", from, "' to"), to);
  }
  return SyncPath(Dirname(to));
}

}  // namespace ps
