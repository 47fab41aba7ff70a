#include "worker/data_reader.h"

#include <errno.h>
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/gzip_reader.h"
#include "worker/line_parser.h"
#include "worker/line_source.h"
#include "worker/reader_shuffler.h"

namespace ps {
namespace {

constexpr int64_t kMinLinesForRatioCheck = 1000;
constexpr int kFlushEveryLines = 256;

// Lines starting in [begin, end) of one plain file, or a whole .gz file
// whose first skip_lines lines are dropped.
struct Task {
  int file = 0;
  bool gzip = false;
  int64_t begin = 0;  // plain files only
  int64_t end = 0;
  int64_t skip_lines = 0;  // .gz files only
  int64_t bytes = 0;       // what it counts for in progress()
};

// Where the line after a batch's last one is: a file index (files.size()
// past the end) and a byte offset (plain) or lines consumed (.gz).
struct Cursor {
  int file = 0;
  int64_t offset = 0;
};

// A queued batch and the cursor just past it.
struct Queued {
  Batch batch;
  Cursor end;
};

int64_t RangePoint(int64_t size, int64_t part, int64_t parts) {
  return static_cast<int64_t>(static_cast<unsigned __int128>(size) * part /
                              parts);
}

class FileReader final : public DataReader {
 public:
  FileReader(const ReaderOptions& options,
             std::unique_ptr<const LineParser> parser, std::vector<Task> tasks,
             Cursor start, int64_t examples_done)
      : options_(options),
        parser_(std::move(parser)),
        tasks_(std::move(tasks)),
        queue_capacity_(2 * options.threads + 2),
        cursor_(start),
        examples_done_(examples_done) {
    for (const Task& t : tasks_) total_bytes_ += t.bytes;
  }

  ~FileReader() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : threads_) t.join();
  }

  void Start() {
    absl::MutexLock lock(&mu_);
    running_ = options_.threads;
    for (int i = 0; i < options_.threads; ++i) {
      threads_.emplace_back([this] { ThreadMain(); });
    }
  }

  absl::StatusOr<bool> Next(Batch* batch) override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &FileReader::CanPop));
    if (!error_.ok()) return error_;
    if (queue_.empty()) {
      *batch = NewBatch();
      cursor_ = Cursor{static_cast<int>(options_.files.size()), 0};
      return false;
    }
    *batch = std::move(queue_.front().batch);
    cursor_ = queue_.front().end;
    examples_done_ += batch->size();
    queue_.pop_front();
    return true;
  }

  int64_t lines_read() const override { return lines_read_.load(); }

  double progress() const override {
    if (total_bytes_ == 0) return -1;
    return std::min(1.0, static_cast<double>(done_bytes_.load()) /
                             static_cast<double>(total_bytes_));
  }
  int64_t bad_lines() const override { return bad_lines_.load(); }

  absl::StatusOr<DataPosition> Position() const override {
    if (options_.threads != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data reader: positions are exact only with one reader thread, "
          "this reader has ", options_.threads));
    }
    absl::MutexLock lock(&mu_);
    DataPosition p;
    p.set_worker_rank(options_.worker_rank);
    p.set_epoch(options_.epoch);
    p.set_file_index(cursor_.file);
    if (cursor_.file < static_cast<int>(options_.files.size())) {
      p.set_file(options_.files[cursor_.file]);
    }
    p.set_offset(cursor_.offset);
    p.set_examples_done(examples_done_);
    return p;
  }

 private:
  // Counts not yet added to the shared ones.
  struct Pending {
    int64_t lines = 0;
    int64_t bad = 0;
  };

  bool CanPop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || !error_.ok() || running_ == 0;
  }
  bool CanPush() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || queue_.size() < queue_capacity_;
  }

  Batch NewBatch(bool reserve = false) const {
    Batch b;
    b.num_slots = parser_->num_slots();
    b.num_dense = parser_->num_dense();
    if (reserve) {
      const size_t n = options_.batch_size;
      b.labels.reserve(n);
      b.dense.reserve(n * b.num_dense);
      b.keys.reserve(n * b.num_slots);
      b.offsets.reserve(n * b.num_slots + 1);
    }
    return b;
  }

  void ThreadMain() {
    std::vector<char> buffer;  // shared by the thread's line sources
    Batch batch = NewBatch(/*reserve=*/true);
    Pending pending;
    absl::Status status;
    while (status.ok()) {
      size_t t = next_task_.fetch_add(1);
      if (t >= tasks_.size()) break;
      status = RunTask(tasks_[t], &buffer, &batch, &pending);
    }
    if (status.ok() && batch.size() > 0) {
      status = Push(&batch, &pending,
                    Cursor{static_cast<int>(options_.files.size()), 0});
    }
    Flush(&pending);

    absl::MutexLock lock(&mu_);
    if (!status.ok() && !absl::IsCancelled(status) && error_.ok()) {
      error_ = status;
      stop_ = true;
    }
    if (--running_ == 0 && error_.ok()) {
      error_ = RatioError(/*at_end=*/true);
    }
  }

  absl::Status RunTask(const Task& task, std::vector<char>* buffer,
                       Batch* batch, Pending* pending) {
    const std::string& path = options_.files[task.file];
    if (task.gzip) {
      ASSIGN_OR_RETURN(std::unique_ptr<GzipLineSource> lines,
                       GzipLineSource::Open(path, buffer));
      absl::string_view line;
      for (int64_t i = 0; i < task.skip_lines; ++i) {
        ASSIGN_OR_RETURN(bool more, lines->Next(&line));
        if (!more) break;
      }
      GzipLineSource* source = lines.get();
      RETURN_IF_ERROR(ParseLines(source, path, batch, pending, [&]() -> Cursor {
        return Cursor{task.file, *source->LineNumber()};
      }));
      done_bytes_.fetch_add(task.bytes);
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(InputFile file, InputFile::Open(path));
    LineSource lines(&file, task.begin, task.end, buffer);
    // Progress moves at each full batch (when the cursor is taken) by the
    // bytes of the range read since; the rest of the range at its end.
    int64_t counted = task.begin;
    RETURN_IF_ERROR(ParseLines(&lines, path, batch, pending, [&]() -> Cursor {
      const int64_t at = std::min(lines.next_offset(), task.end);
      done_bytes_.fetch_add(at - counted);
      counted = at;
      return Cursor{task.file, lines.next_offset()};
    }));
    done_bytes_.fetch_add(task.end - counted);
    return absl::OkStatus();
  }

  // `cursor()` is where the line after the one `lines` last returned is.
  template <typename CursorFn>
  absl::Status ParseLines(LineStream* lines, const std::string& path,
                          Batch* batch, Pending* pending, CursorFn cursor) {
    absl::string_view line;
    while (true) {
      ASSIGN_OR_RETURN(bool more, lines->Next(&line));
      if (!more) break;
      absl::Status parsed = parser_->Append(line, batch);
      ++pending->lines;
      if (!parsed.ok()) {
        ++pending->bad;
        RETURN_IF_ERROR(OnBadLine(lines, path, parsed.message()));
      }
      if (batch->size() >= options_.batch_size) {
        RETURN_IF_ERROR(Push(batch, pending, cursor()));
      } else if (pending->lines >= kFlushEveryLines) {
        Flush(pending);
        if (StopRequested()) return absl::CancelledError("reader stopped");
      }
    }
    return absl::OkStatus();
  }

  // Logs the first log_bad_lines bad lines and records the first one, both
  // as "file:line: reason", for the line `lines` last returned. Before any
  // thread adds a bad line to the shared count, first_bad_ is set, so a
  // ratio error always names a line.
  absl::Status OnBadLine(LineStream* lines, const std::string& path,
                         absl::string_view reason) {
    const int64_t seen = bad_seen_.fetch_add(1);
    const bool log = seen < options_.log_bad_lines;
    const bool record = !first_bad_recorded_.load();
    if (!log && !record) return absl::OkStatus();
    ASSIGN_OR_RETURN(int64_t line_number, lines->LineNumber());
    std::string where = absl::StrCat(path, ":", line_number, ": ", reason);
    if (log) LOG(WARNING) << "skipping malformed line " << where;
    if (record) {
      absl::MutexLock lock(&mu_);
      if (first_bad_.empty()) first_bad_ = where;
      first_bad_recorded_.store(true);
    }
    return absl::OkStatus();
  }

  // Queues a full batch, ending before `end`, and starts a new one;
  // Cancelled when stopping.
  absl::Status Push(Batch* batch, Pending* pending, Cursor end) {
    Flush(pending);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &FileReader::CanPush));
    if (stop_) return absl::CancelledError("reader stopped");
    queue_.push_back(Queued{std::move(*batch), end});
    *batch = NewBatch(/*reserve=*/true);
    return absl::OkStatus();
  }

  // Adds pending counts to the shared ones and checks the bad-line ratio.
  void Flush(Pending* pending) {
    if (pending->lines == 0) return;
    lines_read_.fetch_add(pending->lines);
    bad_lines_.fetch_add(pending->bad);
    const bool check = pending->bad > 0 || bad_lines_.load() > 0;
    *pending = Pending();
    if (!check) return;
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return;
    error_ = RatioError(/*at_end=*/false);
    if (!error_.ok()) stop_ = true;
  }

  bool StopRequested() {
    absl::MutexLock lock(&mu_);
    return stop_;
  }

  absl::Status RatioError(bool at_end) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t lines = lines_read_.load();
    const int64_t bad = bad_lines_.load();
    if (!at_end && lines < kMinLinesForRatioCheck) return absl::OkStatus();
    if (bad == 0 ||
        static_cast<double>(bad) <=
            options_.max_bad_line_ratio * static_cast<double>(lines)) {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "too many malformed lines: ", bad, " of ", lines, " (ratio ",
        static_cast<double>(bad) / static_cast<double>(lines),
        ") exceed max_bad_line_ratio ", options_.max_bad_line_ratio,
        "; first bad line: ", first_bad_));
  }

  const ReaderOptions options_;
  const std::unique_ptr<const LineParser> parser_;
  const std::vector<Task> tasks_;
  const size_t queue_capacity_;
  std::vector<std::thread> threads_;  // started in Start(), joined in ~

  std::atomic<size_t> next_task_{0};
  int64_t total_bytes_ = 0;  // of every task; constant after construction
  std::atomic<int64_t> done_bytes_{0};
  std::atomic<int64_t> lines_read_{0};
  std::atomic<int64_t> bad_lines_{0};
  std::atomic<int64_t> bad_seen_{0};  // bad lines met, flushed or not
  std::atomic<bool> first_bad_recorded_{false};

  mutable absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  // Past the last example Next returned, and the epoch's examples so far.
  Cursor cursor_ ABSL_GUARDED_BY(mu_);
  int64_t examples_done_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::string first_bad_ ABSL_GUARDED_BY(mu_);
};

// A start position must belong to this worker, epoch and file list.
absl::Status CheckStart(const ReaderOptions& options) {
  if (!options.start.has_value()) return absl::OkStatus();
  const DataPosition& p = *options.start;
  if (p.worker_rank() != options.worker_rank || p.epoch() != options.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data reader: start position is of worker ", p.worker_rank(),
        " epoch ", p.epoch(), ", this reader is worker ", options.worker_rank,
        " epoch ", options.epoch));
  }
  if (p.examples_done() < 0 || p.offset() < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data reader: start position has a negative offset (", p.offset(),
        ") or examples_done (", p.examples_done(), ")"));
  }
  const int num_files = static_cast<int>(options.files.size());
  if (p.file_index() < -1 || p.file_index() > num_files) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data reader: start position names file ", p.file_index(),
        ", the reader has ", num_files, " files"));
  }
  if (p.file_index() >= 0 && p.file_index() < num_files &&
      p.file() != options.files[p.file_index()]) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data reader: start position names '", p.file(), "' as file ",
        p.file_index(), ", the reader's file ", p.file_index(), " is '",
        options.files[p.file_index()], "'"));
  }
  if (p.file_index() == -1 && options.shuffle_buffer == 0) {
    return absl::FailedPreconditionError(
        "data reader: start position counts examples of a shuffled epoch "
        "(file_index -1), but this reader does not shuffle");
  }
  if (p.file_index() >= 0 && options.shuffle_buffer > 0) {
    return absl::FailedPreconditionError(
        "data reader: start position is a file offset, but this reader "
        "shuffles (it resumes by example count)");
  }
  return absl::OkStatus();
}

bool HasGlobChars(const std::string& s) {
  return s.find_first_of("*?[\\") != std::string::npos;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandFiles(
    const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    if (!HasGlobChars(pattern)) {
      struct stat st;
      if (stat(pattern.c_str(), &st) != 0) {
        return InputFileError(errno, "stat", pattern);
      }
      files.push_back(pattern);
      continue;
    }
    glob_t g;
    int rc = glob(pattern.c_str(), 0, nullptr, &g);
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) files.push_back(g.gl_pathv[i]);
    }
    globfree(&g);
    if (rc == GLOB_NOMATCH) {
      return absl::NotFoundError(
          absl::StrCat("input pattern '", pattern, "' matches no files"));
    }
    if (rc == GLOB_NOSPACE) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "out of memory expanding input pattern '", pattern, "'"));
    }
    if (rc != 0) {
      return absl::InternalError(absl::StrCat(
          "read error while expanding input pattern '", pattern, "'"));
    }
  }
  return files;
}

absl::StatusOr<std::unique_ptr<DataReader>> DataReader::Open(
    const ReaderOptions& options) {
  if (options.files.empty()) {
    return absl::InvalidArgumentError("data reader: no input files");
  }
  if (options.num_workers < 1 || options.worker_rank < 0 ||
      options.worker_rank >= options.num_workers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data reader: worker_rank ", options.worker_rank,
        " is not in [0, num_workers = ", options.num_workers, ")"));
  }
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data reader: batch_size must be >= 1, got ", options.batch_size));
  }
  if (options.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data reader: threads must be >= 1, got ", options.threads));
  }
  if (!(options.max_bad_line_ratio >= 0 && options.max_bad_line_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("data reader: max_bad_line_ratio must be in [0, 1], got ",
                     options.max_bad_line_ratio));
  }

  if (options.shuffle_buffer < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("data reader: shuffle_buffer must be >= 0, got ",
                     options.shuffle_buffer));
  }

  RETURN_IF_ERROR(CheckStart(options));
  // Without shuffling, a start position is entered by file and offset; with
  // it, the epoch is replayed and examples_done examples dropped.
  const bool by_offset = options.start.has_value() &&
                         options.start->file_index() >= 0 &&
                         options.shuffle_buffer == 0;
  const Cursor start =
      by_offset ? Cursor{options.start->file_index(), options.start->offset()}
                : Cursor{0, 0};

  // Worker range of each plain file, cut into one sub-range per thread, and
  // the worker's .gz files whole; threads take tasks in order as they finish
  // the previous one.
  std::vector<Task> tasks;
  int gzip_index = 0;
  for (size_t f = 0; f < options.files.size(); ++f) {
    ASSIGN_OR_RETURN(InputFile file, InputFile::Open(options.files[f]));
    ASSIGN_OR_RETURN(const int64_t size, file.Size());
    const bool at_start = static_cast<int>(f) == start.file;
    if (IsGzipPath(options.files[f])) {
      if (gzip_index++ % options.num_workers == options.worker_rank &&
          static_cast<int>(f) >= start.file) {
        Task task;
        task.file = static_cast<int>(f);
        task.gzip = true;
        task.skip_lines = at_start ? start.offset : 0;
        task.bytes = size;
        tasks.push_back(task);
      }
      continue;
    }
    if (static_cast<int>(f) < start.file) continue;
    if (at_start && start.offset > size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data reader: start position offset ", start.offset,
          " is past the end of '", options.files[f], "' (", size,
          " bytes): the file changed since the position was taken"));
    }
    const int64_t begin = std::max(
        at_start ? start.offset : 0,
        RangePoint(size, options.worker_rank, options.num_workers));
    const int64_t end =
        RangePoint(size, options.worker_rank + 1, options.num_workers);
    for (int t = 0; t < options.threads; ++t) {
      Task task;
      task.file = static_cast<int>(f);
      task.begin = begin + RangePoint(end - begin, t, options.threads);
      task.end = begin + RangePoint(end - begin, t + 1, options.threads);
      task.bytes = task.end - task.begin;
      if (task.begin < task.end) tasks.push_back(task);
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<LineParser> parser,
                   LineParser::Create(options.data));
  const int64_t examples_done =
      by_offset ? options.start->examples_done() : 0;
  auto reader = std::make_unique<FileReader>(
      options, std::move(parser), std::move(tasks), start, examples_done);
  reader->Start();
  if (options.shuffle_buffer == 0) {
    return std::unique_ptr<DataReader>(std::move(reader));
  }
  return NewShufflingReader(
      std::move(reader), options.batch_size, options.shuffle_buffer,
      ShuffleSeed(options.shuffle_seed, options.worker_rank),
      options.start.has_value() ? options.start->examples_done() : 0);
}

}  // namespace ps
