// RecordLog (see record_log.h).
#include "server/storage/record_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/checksummed_file.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the record log is little-endian; add byte swaps here");

constexpr int64_t kHeaderBytes = 8;
constexpr uint32_t kMaskDelta = 0xa282ead8u;
// How many checksummed bytes Replay may spend looking for a valid record
// after a bad one in the last segment (a torn 1 GiB payload has many
// candidate offsets); past it the bad record is taken for a torn tail.
constexpr int64_t kSearchBudgetBytes = int64_t{256} << 20;

// zlib's crc32 returns 0 for a null buffer (an empty view's data()), so
// empty input must not reach it.
uint32_t Crc(uint32_t crc, const char* data, size_t n) {
  if (n == 0) return crc;
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(data), n));
}

uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

void PutU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The stored checksum of a record: over its length field and payload.
uint32_t RecordCrc(const char* length_field, const char* payload, size_t n) {
  return Mask(Crc(Crc(0, length_field, 4), payload, n));
}

void EncodeHeader(absl::string_view record, char* header) {
  PutU32(header + 4, static_cast<uint32_t>(record.size()));
  PutU32(header, RecordCrc(header + 4, record.data(), record.size()));
}

// Whether a valid record starts at `offset` of the `size` bytes at `data`;
// if not, `reason` (may be null) says why.
bool ValidRecordAt(const char* data, int64_t size, int64_t offset,
                   std::string* reason) {
  const int64_t left = size - offset;
  if (left < kHeaderBytes) {
    if (reason != nullptr) {
      *reason = absl::StrCat("incomplete header: ", left, " of ", kHeaderBytes,
                             " bytes");
    }
    return false;
  }
  const uint32_t length = GetU32(data + offset + 4);
  if (length > RecordLog::kMaxRecordBytes) {
    if (reason != nullptr) {
      *reason = absl::StrCat("length ", length, " is over the limit of ",
                             RecordLog::kMaxRecordBytes);
    }
    return false;
  }
  if (length > left - kHeaderBytes) {
    if (reason != nullptr) {
      *reason =
          absl::StrCat("length ", length, " runs past the end of the file (",
                       left - kHeaderBytes, " bytes left)");
    }
    return false;
  }
  if (GetU32(data + offset) !=
      RecordCrc(data + offset + 4, data + offset + kHeaderBytes, length)) {
    if (reason != nullptr) *reason = "checksum mismatch";
    return false;
  }
  return true;
}

// The offset of the first valid record starting at or after `from`; -1 when
// there is none, or when the search ran out of budget (*exhausted set).
int64_t FindValidRecord(const char* data, int64_t size, int64_t from,
                        bool* exhausted) {
  int64_t budget = kSearchBudgetBytes;
  for (int64_t p = from; p + kHeaderBytes <= size; ++p) {
    const uint32_t length = GetU32(data + p + 4);
    if (length > RecordLog::kMaxRecordBytes ||
        length > size - p - kHeaderBytes) {
      continue;
    }
    budget -= 4 + static_cast<int64_t>(length);
    if (budget < 0) {
      *exhausted = true;
      return -1;
    }
    if (ValidRecordAt(data, size, p, nullptr)) return p;
  }
  return -1;
}

std::string SegmentName(uint64_t number) {
  return absl::StrFormat("wal-%06d.log", number);
}

// The number of a segment file name ("wal-000042.log"); false for another
// file.
bool ParseSegmentName(absl::string_view name, uint64_t* number) {
  if (!absl::ConsumePrefix(&name, "wal-") ||
      !absl::ConsumeSuffix(&name, ".log") || name.size() < 6 ||
      !std::all_of(name.begin(), name.end(), absl::ascii_isdigit)) {
    return false;
  }
  return absl::SimpleAtoi(name, number);
}

int Fdatasync(int fd) {
  int rc;
  do {
    rc = fdatasync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// Writes all of iov[0, count) to fd, looping over short writes and EINTR.
absl::Status WriteAll(int fd, const std::string& path, struct iovec* iov,
                      int count) {
  while (count > 0) {
    const ssize_t w = writev(fd, iov, count);
    if (w < 0) {
      if (errno == EINTR) continue;
      return FileError(errno, "append to record log segment", path);
    }
    size_t done = static_cast<size_t>(w);
    while (count > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
  return absl::OkStatus();
}

// Cuts the file at `path` to `size` bytes and fsyncs it.
absl::Status Truncate(const std::string& path, int64_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open for truncation", path);
  absl::Status status;
  int rc;
  do {
    rc = ftruncate(fd, size);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    status = FileError(errno, "truncate", path);
  } else if (fsync(fd) != 0) {
    status = FileError(errno, "fsync", path);
  }
  close(fd);
  return status;
}

struct Unmap {
  size_t size;
  void operator()(const char* p) const { munmap(const_cast<char*>(p), size); }
};
using Mapping = std::unique_ptr<const char, Unmap>;

}  // namespace

// An open segment file; closed when the last holder lets go.
struct RecordLog::Segment {
  Segment(uint64_t number, std::string path, int fd)
      : number(number), path(std::move(path)), fd(fd) {}
  ~Segment() { close(fd); }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const uint64_t number;
  const std::string path;
  const int fd;  // O_WRONLY | O_APPEND
};

absl::StatusOr<std::unique_ptr<RecordLog>> RecordLog::Open(
    const RecordLogOptions& options) {
  const std::string& dir = options.dir;
  if (dir.empty()) {
    return absl::InvalidArgumentError("record log: options.dir is empty");
  }
  if (options.sync_ms < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "record log '", dir, "': sync_ms must be >= 0, got ", options.sync_ms));
  }
  if (options.segment_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("record log '", dir, "': segment_bytes must be > 0, got ",
                     options.segment_bytes));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "record log dir '", dir, "' exists and is not a directory"));
    }
  } else if (errno != ENOENT) {
    return FileError(errno, "stat record log dir", dir);
  } else {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return FileError(ec.value(), "create record log dir", dir);
  }

  const std::string lock_path = dir + "/LOCK";
  const int lock_fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return FileError(errno, "create", lock_path);
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "record log dir '", dir, "' is in use by another RecordLog (",
          lock_path, " is locked)"));
    }
    return FileError(err, "lock", lock_path);
  }
  std::unique_ptr<RecordLog> log(new RecordLog(options, lock_fd));

  std::vector<uint64_t> numbers;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    uint64_t number;
    if (ParseSegmentName(it->path().filename().string(), &number)) {
      numbers.push_back(number);
    }
  }
  if (ec) return FileError(ec.value(), "list record log dir", dir);
  std::sort(numbers.begin(), numbers.end());
  int64_t bytes = 0;
  int64_t last_size = 0;
  for (uint64_t number : numbers) {
    const std::string path = log->SegmentPath(number);
    if (stat(path.c_str(), &st) != 0) return FileError(errno, "stat", path);
    bytes += st.st_size;
    last_size = st.st_size;
  }

  absl::MutexLock lock(&log->mu_);
  log->segments_ = numbers;
  log->bytes_ = bytes;
  if (!numbers.empty() && last_size == 0) {
    // Append to the empty last segment rather than leave it behind.
    const std::string path = log->SegmentPath(numbers.back());
    const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return FileError(errno, "open record log segment", path);
    log->current_ = std::make_shared<Segment>(numbers.back(), path, fd);
  } else {
    RETURN_IF_ERROR(
        log->StartSegmentLocked(numbers.empty() ? 1 : numbers.back() + 1));
    RETURN_IF_ERROR(SyncPath(dir));
  }
  if (options.sync_ms > 0) {
    log->syncer_ = std::thread([raw = log.get()] { raw->SyncLoop(); });
  }
  return log;
}

RecordLog::RecordLog(RecordLogOptions options, int lock_fd)
    : options_(std::move(options)), lock_fd_(lock_fd) {}

RecordLog::~RecordLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (syncer_.joinable()) syncer_.join();
  bool unsynced;
  int64_t position;
  {
    absl::MutexLock lock(&mu_);
    unsynced = current_ != nullptr && error_.ok() && synced_ < written_;
    position = written_;
  }
  if (unsynced) {
    const absl::Status status = SyncTo(position);
    LOG_IF(ERROR, !status.ok()) << "record log: final sync failed: " << status;
  }
  {
    absl::MutexLock lock(&mu_);
    current_.reset();
  }
  close(lock_fd_);
}

std::string RecordLog::SegmentPath(uint64_t number) const {
  return absl::StrCat(options_.dir, "/", SegmentName(number));
}

absl::Status RecordLog::StartSegmentLocked(uint64_t number) {
  const std::string path = SegmentPath(number);
  int fd;
  do {
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC,
              0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return FileError(errno, "create record log segment", path);
  current_ = std::make_shared<Segment>(number, path, fd);
  segments_.push_back(number);
  current_bytes_ = 0;
  return absl::OkStatus();
}

absl::Status RecordLog::RollLocked() {
  // Everything before the new segment must be durable once a sync of the
  // new one is: sync the old one now.
  if (synced_ < written_) {
    if (Fdatasync(current_->fd) != 0) {
      return FileError(errno, "fdatasync record log segment", current_->path);
    }
    synced_ = written_;
  }
  RETURN_IF_ERROR(StartSegmentLocked(current_->number + 1));
  return SyncPath(options_.dir);
}

absl::Status RecordLog::Replay(
    const std::function<absl::Status(absl::string_view)>& fn) {
  std::vector<uint64_t> numbers;
  {
    absl::MutexLock lock(&mu_);
    if (appended_) {
      return absl::FailedPreconditionError(
          absl::StrCat("record log '", options_.dir,
                       "': Replay called after an append; replay first"));
    }
    numbers = segments_;
  }
  // The log ends in the last segment that holds bytes.
  std::vector<int64_t> sizes;
  for (uint64_t number : numbers) {
    const std::string path = SegmentPath(number);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return FileError(errno, "stat", path);
    sizes.push_back(st.st_size);
  }
  size_t end = numbers.size();
  while (end > 0 && sizes[end - 1] == 0) --end;

  int64_t replayed = 0;
  absl::Status status;
  for (size_t i = 0; i < end && status.ok(); ++i) {
    if (sizes[i] == 0) continue;
    status = ReplaySegment(numbers[i], i + 1 == end, fn, &replayed);
  }
  absl::MutexLock lock(&mu_);
  records_ = replayed;
  return status;
}

absl::Status RecordLog::ReplaySegment(
    uint64_t number, bool at_end,
    const std::function<absl::Status(absl::string_view)>& fn,
    int64_t* replayed) {
  const std::string path = SegmentPath(number);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError(errno, "open record log segment", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return FileError(err, "stat", path);
  }
  const int64_t size = st.st_size;
  if (size == 0) {
    close(fd);
    return absl::OkStatus();
  }
  void* addr =
      mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  close(fd);
  if (addr == MAP_FAILED) return FileError(err, "map record log segment", path);
  Mapping map(static_cast<const char*>(addr), Unmap{static_cast<size_t>(size)});
  madvise(addr, static_cast<size_t>(size), MADV_SEQUENTIAL);

  const char* data = map.get();
  int64_t offset = 0;
  std::string reason;
  while (offset < size && ValidRecordAt(data, size, offset, &reason)) {
    const uint32_t length = GetU32(data + offset + 4);
    RETURN_IF_ERROR(
        fn(absl::string_view(data + offset + kHeaderBytes, length)));
    ++*replayed;
    offset += kHeaderBytes + length;
  }
  if (offset == size) return absl::OkStatus();

  const std::string bad =
      absl::StrCat("record log segment '", path, "' is corrupt at byte offset ",
                   offset, " (", reason, ")");
  if (!at_end) {
    return absl::DataLossError(absl::StrCat(
        bad, "; later segments hold records, so it is not a torn final write"));
  }
  bool exhausted = false;
  const int64_t next = FindValidRecord(data, size, offset + 1, &exhausted);
  if (next >= 0) {
    return absl::DataLossError(
        absl::StrCat(bad, "; a valid record follows at byte offset ", next,
                     ", so it is not a torn final write"));
  }
  map.reset();
  const int64_t cut = size - offset;
  LOG(WARNING) << "record log: cutting the torn tail of '" << path
               << "': " << cut << " bytes at byte offset " << offset << " ("
               << reason << "), left by a crash in the middle of a write"
               << (exhausted ? "; the search for valid records after it gave "
                               "up after 256 MiB of candidates"
                             : "");
  RETURN_IF_ERROR(Truncate(path, offset));
  absl::MutexLock lock(&mu_);
  bytes_ -= cut;
  return absl::OkStatus();
}

absl::Status RecordLog::Append(absl::string_view record) {
  return AppendBatch(absl::MakeConstSpan(&record, 1));
}

absl::Status RecordLog::AppendBatch(
    absl::Span<const absl::string_view> records) {
  if (records.empty()) return absl::OkStatus();
  int64_t bytes = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const int64_t size = static_cast<int64_t>(records[i].size());
    if (size > kMaxRecordBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "record log '", options_.dir, "': record ", i, " of the batch has ",
          size, " bytes, over the limit of ", kMaxRecordBytes, " (1 GiB)"));
    }
    bytes += kHeaderBytes + size;
  }
  // Headers and the iovecs outside the lock; many small records go as one
  // buffer (writev takes at most IOV_MAX pieces).
  std::string headers(kHeaderBytes * records.size(), '\0');
  for (size_t i = 0; i < records.size(); ++i) {
    EncodeHeader(records[i], &headers[kHeaderBytes * i]);
  }
  std::string joined;
  std::vector<struct iovec> iov;
  if (2 * records.size() <= IOV_MAX) {
    iov.reserve(2 * records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      iov.push_back({&headers[kHeaderBytes * i], kHeaderBytes});
      iov.push_back({const_cast<char*>(records[i].data()), records[i].size()});
    }
  } else {
    joined.reserve(static_cast<size_t>(bytes));
    for (size_t i = 0; i < records.size(); ++i) {
      joined.append(headers, kHeaderBytes * i, kHeaderBytes);
      joined.append(records[i].data(), records[i].size());
    }
    iov.push_back({joined.data(), joined.size()});
  }

  int64_t position;
  {
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return error_;
    appended_ = true;
    if (current_bytes_ > 0 && current_bytes_ + bytes > options_.segment_bytes) {
      absl::Status status = RollLocked();
      if (!status.ok()) {
        error_ = status;
        return status;
      }
    }
    absl::Status status = WriteAll(current_->fd, current_->path, iov.data(),
                                   static_cast<int>(iov.size()));
    if (!status.ok()) {
      error_ = status;
      return status;
    }
    current_bytes_ += bytes;
    bytes_ += bytes;
    records_ += static_cast<int64_t>(records.size());
    written_ += bytes;
    position = written_;
  }
  if (options_.sync_ms == 0) return SyncTo(position);
  return absl::OkStatus();
}

absl::Status RecordLog::SyncTo(int64_t position) {
  absl::MutexLock sync_lock(&sync_mu_);
  std::shared_ptr<Segment> segment;
  int64_t target;
  int64_t generation;
  {
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return error_;
    if (synced_ >= position) return absl::OkStatus();  // another sync did it
    segment = current_;
    target = written_;
    generation = generation_;
  }
  // Earlier segments were synced when they were rolled over.
  const int rc = Fdatasync(segment->fd);
  const int err = errno;
  absl::MutexLock lock(&mu_);
  if (rc != 0) {
    if (generation != generation_) return absl::OkStatus();  // Reset dropped it
    error_ = FileError(err, "fdatasync record log segment", segment->path);
    return error_;
  }
  synced_ = std::max(synced_, target);
  return absl::OkStatus();
}

absl::Status RecordLog::Sync() {
  int64_t position;
  {
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return error_;
    position = written_;
  }
  return SyncTo(position);
}

void RecordLog::SyncLoop() {
  const absl::Duration every = absl::Milliseconds(options_.sync_ms);
  while (true) {
    int64_t position;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), every);
      if (stop_) return;
      if (!error_.ok() || synced_ >= written_) continue;
      position = written_;
    }
    const absl::Status status = SyncTo(position);
    LOG_IF(ERROR, !status.ok())
        << "record log: background sync failed (appends now fail): " << status;
  }
}

absl::Status RecordLog::Reset() {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> old = std::move(segments_);
  segments_.clear();
  const uint64_t next =
      std::max(old.empty() ? 0 : old.back(), current_->number) + 1;
  if (absl::Status status = StartSegmentLocked(next); !status.ok()) {
    segments_ = std::move(old);  // unchanged: appends go where they went
    return status;
  }
  // From here the dropped records are gone whatever fails.
  ++generation_;
  synced_ = written_;
  records_ = 0;
  bytes_ = 0;
  absl::Status status;
  std::vector<uint64_t> kept;
  for (uint64_t number : old) {
    const std::string path = SegmentPath(number);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      if (status.ok()) status = FileError(errno, "remove", path);
      kept.push_back(number);
      struct stat st;
      if (stat(path.c_str(), &st) == 0) bytes_ += st.st_size;
    }
  }
  kept.push_back(next);
  segments_ = std::move(kept);
  if (status.ok()) status = SyncPath(options_.dir);
  if (status.ok()) error_ = absl::OkStatus();
  return status;
}

int64_t RecordLog::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

int64_t RecordLog::records() const {
  absl::MutexLock lock(&mu_);
  return records_;
}

}  // namespace ps
