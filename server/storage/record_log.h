// RecordLog: a write-ahead log of opaque byte records in a folder of segment
// files. The server appends each applied push to it before acknowledging the
// push; after a crash it replays the log on top of its last checkpoint, and
// it resets the log once a new checkpoint holds the records' effect.
//
// On disk: segment files `wal-000001.log`, `wal-000002.log`, ... (the number
// only grows, across Reset and reopen) and a `LOCK` file. A segment is a
// sequence of records, each
//   masked_crc  uint32, masked zlib crc32 of length + payload
//   length      uint32, payload bytes (at most kMaxRecordBytes)
//   payload     `length` bytes
// (integers little-endian; masked as in LevelDB, so a log embedded in a
// record does not hold its own checksum). A new segment is started before an
// append that would take the current one past segment_bytes.
//
// Durability: Append and AppendBatch hand each call's bytes to the kernel in
// one writev, so what they acknowledged survives the process being killed
// (kill -9). Against power loss, a background thread fdatasyncs at most every
// sync_ms when something was written; with sync_ms == 0 every append
// fdatasyncs before it returns (concurrent appends share fdatasyncs). A crash
// in the middle of a write leaves a torn record at the end of the log, which
// Replay cuts off; a crash in the middle of AppendBatch may leave a prefix of
// the batch, which Replay returns.
//
// Errors name the segment file or folder. A failed write or fdatasync is
// returned by that call and by every later Append, AppendBatch and Sync (the
// log may hold a torn record and must not acknowledge more), until a Reset
// succeeds.
//
// Thread-safety: Append, AppendBatch, Sync, Reset, bytes and records are
// thread-safe; appends are serialized and never interleave. Replay must be
// done before the first append. One RecordLog at a time may have a folder
// open (the LOCK file, also across processes).
#ifndef PS_SERVER_STORAGE_RECORD_LOG_H_
#define PS_SERVER_STORAGE_RECORD_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace ps {

struct RecordLogOptions {
  // Folder of the segment files; created (with its parents) if missing.
  // Required.
  std::string dir;
  // Group commit: the background thread fdatasyncs at most this often, and
  // only when something was written; a power loss loses at most about this
  // much. 0: every append fdatasyncs before it returns (no thread).
  // Default: 10.
  int sync_ms = 10;
  // A segment file is closed and a new one started before an append would
  // take it past this size (a larger single append gets a segment of its
  // own). Default: 64 MiB.
  int64_t segment_bytes = int64_t{64} << 20;
};

class RecordLog {
 public:
  // The largest record (1 GiB); a larger one is InvalidArgument.
  static constexpr int64_t kMaxRecordBytes = int64_t{1} << 30;

  // Opens the log in options.dir, creating the folder if missing. Appends go
  // to a new segment (or to the last one if it is empty). Does not read the
  // records: call Replay for that. InvalidArgument for bad options;
  // FailedPrecondition when dir is not a folder or another RecordLog holds
  // it; the OS error naming the path when it cannot be created or written.
  static absl::StatusOr<std::unique_ptr<RecordLog>> Open(
      const RecordLogOptions& options);

  // Final fdatasync (errors are logged), stops the sync thread.
  ~RecordLog();

  RecordLog(const RecordLog&) = delete;
  RecordLog& operator=(const RecordLog&) = delete;

  // Calls fn(record) for every complete record, oldest first, across the
  // segments; the view is valid only during the call. A bad record (torn
  // header or payload, impossible length, checksum mismatch) at the end of
  // the log, i.e. in the last segment holding bytes and followed by no valid
  // record, is what a crash in the middle of a write leaves: the segment is
  // truncated there, with a WARNING saying how many bytes were cut, and
  // Replay returns OK. A bad record anywhere else (an earlier segment, or
  // followed by a valid record) is DataLoss naming the segment file and the
  // byte offset. An error of fn stops the replay and is returned as is.
  // REQUIRES: no Append or AppendBatch was called, none runs concurrently.
  // Appending to a log whose torn tail Replay did not cut makes a later
  // Replay fail with DataLoss: replay (or Reset) a log before appending.
  absl::Status Replay(const std::function<absl::Status(absl::string_view)>& fn);

  // Appends one record. Returns once the kernel has its bytes (and, with
  // sync_ms == 0, once they are on disk). InvalidArgument for a record over
  // kMaxRecordBytes (the log is unchanged and still usable); the OS error
  // naming the segment for a failed write or sync, which then also fails
  // every later append (see above).
  absl::Status Append(absl::string_view record);

  // Appends `records` in order with one write; as Append otherwise. An
  // empty batch does nothing.
  absl::Status AppendBatch(absl::Span<const absl::string_view> records);

  // Drops every record appended or replayed so far (call it once a
  // checkpoint holding their effect is durable): starts a new segment,
  // removes the older segment files, fsyncs the folder. Clears an earlier
  // write or sync error. A crash inside Reset may leave some old segments,
  // which a later Replay returns.
  absl::Status Reset();

  // fdatasyncs everything appended so far now.
  absl::Status Sync();

  // Bytes in the live segment files (for stats).
  int64_t bytes() const;
  // Records appended and replayed since the last Reset.
  int64_t records() const;

 private:
  struct Segment;  // an open segment file (record_log.cc)

  RecordLog(RecordLogOptions options, int lock_fd);

  // Creates segment `number` and makes it current (the caller fsyncs the
  // folder).
  absl::Status StartSegmentLocked(uint64_t number)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // fdatasyncs the current segment, then starts the next one.
  absl::Status RollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the first `position` bytes ever appended durable (shares an
  // fdatasync with other callers where it can).
  absl::Status SyncTo(int64_t position) ABSL_LOCKS_EXCLUDED(mu_, sync_mu_);
  void SyncLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Replays one segment; `at_end`: no later segment holds bytes.
  absl::Status ReplaySegment(
      uint64_t number, bool at_end,
      const std::function<absl::Status(absl::string_view)>& fn,
      int64_t* replayed);
  std::string SegmentPath(uint64_t number) const;

  // Constant after construction.
  const RecordLogOptions options_;
  const int lock_fd_;  // holds the folder's LOCK (flock)

  // One fdatasync at a time; acquired before mu_.
  absl::Mutex sync_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable absl::Mutex mu_;
  // The segment appends go to; shared with a sync in flight, so a Reset or
  // roll never closes a file under an fdatasync.
  std::shared_ptr<Segment> current_ ABSL_GUARDED_BY(mu_);
  // Numbers of the live segment files, oldest first; the last is current_.
  std::vector<uint64_t> segments_ ABSL_GUARDED_BY(mu_);
  int64_t current_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // size of current_
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;          // all live segments
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  // Positions in the stream of bytes this object appended: written_ were
  // handed to the kernel, the first synced_ are durable.
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t synced_ ABSL_GUARDED_BY(mu_) = 0;
  // Counts Resets, so a failed sync of a dropped segment is not an error.
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool appended_ ABSL_GUARDED_BY(mu_) = false;  // an append was called
  absl::Status error_ ABSL_GUARDED_BY(mu_);     // sticky write/sync error
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  std::thread syncer_;  // runs SyncLoop when sync_ms > 0
};

}  // namespace ps

#endif  // PS_SERVER_STORAGE_RECORD_LOG_H_
