// Binary files protected by a checksum, for checkpoints and exports, and the
// file-system steps that make a file durable.
//
// Layout of a checksummed file (integers little-endian):
//   header  magic          8 bytes, chosen by the file's kind ("PSDENSE1")
//           version        uint32, the kind's format version (>= 1)
//           reserved       uint32, 0
//   payload                any number of bytes
//   footer  payload_size   uint64
//           crc32          uint32, zlib crc32 of header + payload
//           end_magic      uint32, 0x4B435350 ("PSCK")
// The payload size is in the footer so payloads can be streamed; a reader
// checks it against the file's size, so truncation is found before a byte
// of the payload is trusted.
//
// Errors name the file: NotFound for a missing file, DataLoss for a
// truncated or corrupt one (bad footer, size mismatch, checksum mismatch),
// InvalidArgument for a file of another kind (other magic),
// FailedPrecondition for a newer format version than the reader knows,
// Internal for other OS errors.
//
// Thread-safety: a ChecksummedWriter or ChecksummedReader is used by one
// thread at a time; the free functions are thread-safe.
#ifndef PS_COMMON_CHECKSUMMED_FILE_H_
#define PS_COMMON_CHECKSUMMED_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ps {

inline constexpr size_t kChecksummedHeaderBytes = 16;
inline constexpr size_t kChecksummedFooterBytes = 16;

// Size and zlib crc32 of a whole file.
struct FileDigest {
  int64_t size = 0;
  uint32_t crc32 = 0;
};

// Streams a checksummed file to `path` (created or truncated). Nothing of
// it is durable until Close returns OK; a writer destroyed without Close
// leaves a file that fails verification (no footer).
class ChecksummedWriter {
 public:
  // `magic` must be exactly 8 bytes (InvalidArgument otherwise).
  static absl::StatusOr<std::unique_ptr<ChecksummedWriter>> Create(
      const std::string& path, absl::string_view magic, uint32_t version);
  ~ChecksummedWriter();
  ChecksummedWriter(const ChecksummedWriter&) = delete;
  ChecksummedWriter& operator=(const ChecksummedWriter&) = delete;

  // Appends payload bytes. REQUIRES: Close not called.
  absl::Status Append(absl::string_view data);
  absl::Status AppendFloats(absl::Span<const float> values);
  absl::Status AppendU64(uint64_t value);

  // Writes the footer, fsyncs the file and closes it. Returns the digest of
  // the whole file (what a manifest records). REQUIRES: called once.
  absl::StatusOr<FileDigest> Close();

  const std::string& path() const { return path_; }

 private:
  ChecksummedWriter(int fd, std::string path);
  absl::Status Flush();
  absl::Status WriteRaw(const char* data, size_t n);

  int fd_;  // -1 once closed
  const std::string path_;
  std::vector<char> buffer_;
  uint32_t crc_ = 0;
  uint64_t payload_size_ = 0;
  int64_t file_size_ = 0;
};

// Reads a checksummed file's payload in order. The footer and the size are
// checked by Open; the checksum by Finish, after the whole payload was read:
// a caller must not use what it read until Finish returns OK.
class ChecksummedReader {
 public:
  // Opens `path`, checks magic, version (1 <= version <= max_version) and
  // that the file's size matches the footer's payload size.
  static absl::StatusOr<std::unique_ptr<ChecksummedReader>> Open(
      const std::string& path, absl::string_view magic, uint32_t max_version);
  ~ChecksummedReader();
  ChecksummedReader(const ChecksummedReader&) = delete;
  ChecksummedReader& operator=(const ChecksummedReader&) = delete;

  uint32_t version() const { return version_; }
  uint64_t payload_size() const { return payload_size_; }
  uint64_t remaining() const { return payload_size_ - consumed_; }
  const std::string& path() const { return path_; }

  // Reads exactly n payload bytes; DataLoss naming the file when fewer are
  // left.
  absl::Status Read(char* dst, size_t n);
  absl::Status ReadFloats(absl::Span<float> out);
  absl::StatusOr<uint64_t> ReadU64();
  // Reads a uint64 length then that many bytes (at most `max_len`).
  absl::StatusOr<std::string> ReadString(uint64_t max_len);

  // DataLoss unless the whole payload was read and the checksum matches.
  absl::Status Finish();

 private:
  ChecksummedReader(int fd, std::string path);
  absl::Status ReadRaw(char* dst, size_t n);

  int fd_;
  const std::string path_;
  uint32_t version_ = 0;
  uint64_t payload_size_ = 0;
  uint64_t consumed_ = 0;
  uint32_t crc_ = 0;
  uint32_t want_crc_ = 0;
  int64_t read_at_ = 0;
};

// Appends a uint64 length then the bytes.
absl::Status AppendString(ChecksummedWriter* writer, absl::string_view s);

// Whole-payload conveniences.
absl::StatusOr<FileDigest> WriteChecksummedFile(const std::string& path,
                                                absl::string_view magic,
                                                uint32_t version,
                                                absl::string_view payload);
// Sets *version (may be null) to the file's format version.
absl::StatusOr<std::string> ReadChecksummedFile(const std::string& path,
                                                absl::string_view magic,
                                                uint32_t max_version,
                                                uint32_t* version = nullptr);

// Size and crc32 of any file (e.g. a hard-linked RocksDB file).
absl::StatusOr<FileDigest> DigestFile(const std::string& path);

// fsync of a file or of a directory (making renames and links in it
// durable).
absl::Status SyncPath(const std::string& path);

// Renames `from` over `to` (in the same folder) and fsyncs that folder, so
// the rename survives a crash. REQUIRES: `from` is durable already (fsynced).
absl::Status RenameDurably(const std::string& from, const std::string& to);

// Replaces `path` atomically with `contents`: writes path.tmp, fsyncs it,
// renames it over `path` and fsyncs the directory. A crash leaves either the
// old or the new contents (and possibly a stale path.tmp).
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// "cannot <what> '<path>': <strerror(err)>" with the code errno suggests
// (NotFound, PermissionDenied, AlreadyExists, ResourceExhausted, Internal).
absl::Status FileError(int err, absl::string_view what,
                       const std::string& path);

}  // namespace ps

#endif  // PS_COMMON_CHECKSUMMED_FILE_H_
