#include "worker/data/ordered_reader.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/data/gzip_reader.h"
#include "worker/data/line_parser.h"
#include "worker/data/line_source.h"
#include "worker/data/parser_util.h"
#include "worker/data/pipe_reader.h"

namespace ps {
namespace {

constexpr int64_t kMinLinesForRatioCheck = 1000;
constexpr int kFlushEveryLines = 256;
// A .gz file is read by one thread (decompressing cannot be split) into
// blocks of about this many bytes of text, which any thread parses.
constexpr size_t kRawBlockBytes = size_t{128} << 10;
// Blocks (parsed or not) the .gz tasks past the one Next reads may hold in
// all: 16 MiB of text, so that their threads read ahead while Next is busy
// with an earlier file.
constexpr size_t kMaxQueuedGzipBlocks = 128;

// Examples of one task in line order, and where the line after each is in
// the task's file (a byte offset, or lines consumed for .gz). A .gz task
// queues its text first (kRaw: `raw`, whole lines each ending in '\n', after
// `lines_before` lines of the file); a thread then parses it (kParsing)
// into examples (kParsed). Only kParsed chunks go to Next.
struct Chunk {
  enum State { kParsed, kRaw, kParsing };
  State state = kParsed;
  Batch examples;
  std::vector<int64_t> after;
  std::string raw;
  int64_t lines_before = 0;
};

// What the threads have read of one task and not yet handed to Next.
struct TaskOutput {
  std::deque<Chunk> chunks;
  bool done = false;
};

// The lines of a .gz block, numbered in its file.
class BlockLines final : public LineStream {
 public:
  BlockLines(absl::string_view text, int64_t lines_before)
      : text_(text), number_(lines_before) {}
  absl::StatusOr<bool> Next(absl::string_view* line) override {
    if (pos_ >= text_.size()) return false;
    size_t newline = text_.find('\n', pos_);
    if (newline == absl::string_view::npos) newline = text_.size();
    *line = text_.substr(pos_, newline - pos_);
    pos_ = newline + 1;
    ++number_;
    return true;
  }
  absl::StatusOr<int64_t> LineNumber() override { return number_; }
  int64_t number() const { return number_; }

 private:
  const absl::string_view text_;
  size_t pos_ = 0;
  int64_t number_;  // of the line last returned: the lines consumed
};

// Appends examples [from, from + count) of `src` to `dst`.
void AppendExamples(const Batch& src, int from, int count, Batch* dst) {
  const int64_t ns = src.num_slots, nd = src.num_dense;
  dst->labels.insert(dst->labels.end(), src.labels.begin() + from,
                     src.labels.begin() + from + count);
  dst->dense.insert(dst->dense.end(), src.dense.begin() + from * nd,
                    src.dense.begin() + (from + count) * nd);
  const uint32_t key_begin = src.offsets[from * ns];
  const uint32_t key_end = src.offsets[(from + count) * ns];
  // DataReader::Open refuses a batch_size whose batches could overflow.
  CHECK_LE(static_cast<int64_t>(dst->keys.size()) + (key_end - key_begin),
           kMaxBatchKeys);
  // Each offset moves by the same amount (uint32 arithmetic wraps alike).
  const uint32_t shift = static_cast<uint32_t>(dst->keys.size()) - key_begin;
  dst->keys.insert(dst->keys.end(), src.keys.begin() + key_begin,
                   src.keys.begin() + key_end);
  const size_t at = dst->offsets.size();
  const int64_t pairs = count * ns;
  dst->offsets.resize(at + pairs);
  uint32_t* to = dst->offsets.data() + at;
  const uint32_t* from_offsets = src.offsets.data() + from * ns + 1;
  for (int64_t p = 0; p < pairs; ++p) to[p] = from_offsets[p] + shift;
}

// Threads take tasks in order: a plain task is parsed into one chunk; a .gz
// task is decompressed into blocks of text that any thread parses (threads
// with nothing else to do, and a thread whose task has queued its share).
// Next hands the examples out in task order, cut into batches of
// batch_size, so the batches, their order and the positions are the same
// for any number of threads. A thread starts no task more than `lookahead_`
// tasks past the one Next reads; the .gz task Next reads queues at most
// threads + 2 blocks, later ones kMaxQueuedGzipBlocks together. So memory
// stays bounded and progress() runs only a little ahead of Next.
class FileReader final : public DataReader {
 public:
  FileReader(const ReaderOptions& options,
             std::unique_ptr<const LineParser> parser,
             std::vector<ReadTask> tasks, ReadCursor start,
             int64_t examples_done)
      : options_(options),
        parser_(std::move(parser)),
        tasks_(std::move(tasks)),
        lookahead_(2 * options.threads + 2),
        gzip_queued_blocks_(options.threads + 2),
        holdout_(options.holdout_fraction > 0),
        holdout_lo_(
            HoldoutThreshold(options.holdout_fold * options.holdout_fraction)),
        holdout_hi_(HoldoutThreshold((options.holdout_fold + 1) *
                                     options.holdout_fraction)),
        gzip_limits_(LimitsOf(options.data)),
        outputs_(lookahead_),
        cursor_(start),
        examples_done_(examples_done) {
    for (const ReadTask& t : tasks_) total_bytes_ += t.bytes;
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
    {
      absl::MutexLock lock(&mu_);
      if (!error_.ok()) return error_;  // an error sticks
    }
    *batch = NewBatch(/*reserve=*/true);
    ReadCursor last;
    while (batch->size() < options_.batch_size) {
      if (taking_pos_ == taking_.examples.size()) {
        absl::MutexLock lock(&mu_);
        ASSIGN_OR_RETURN(bool more, TakeChunk());
        if (!more) break;
      }
      const int n = std::min(options_.batch_size - batch->size(),
                             taking_.examples.size() - taking_pos_);
      AppendExamples(taking_.examples, taking_pos_, n, batch);
      taking_pos_ += n;
      last = ReadCursor{taking_file_, taking_.after[taking_pos_ - 1]};
    }
    absl::MutexLock lock(&mu_);
    if (batch->size() == 0) {
      cursor_ = ReadCursor{static_cast<int>(options_.files.size()), 0};
      return false;
    }
    cursor_ = last;
    examples_done_ += batch->size();
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

  // A .gz block a thread is parsing.
  struct Claim {
    size_t task = 0;
    Chunk* chunk = nullptr;
  };

  static GzipLimits LimitsOf(const DataConfig& data) {
    GzipLimits limits;
    limits.max_line_bytes = data.max_line_bytes();
    limits.max_decompressed_bytes = data.gzip_max_decompressed_bytes();
    limits.max_ratio = data.gzip_max_ratio();
    return limits;
  }

  // fraction * 2^64 as a hash bound, at least 1 for any fraction > 0;
  // nullopt for the end of the range (fraction >= 1).
  static std::optional<uint64_t> HoldoutThreshold(double fraction) {
    if (!(fraction > 0)) return 0;
    const double bound = std::ceil(std::ldexp(fraction, 64));
    if (bound >= std::ldexp(1.0, 64)) return std::nullopt;
    return std::max<uint64_t>(1, static_cast<uint64_t>(bound));
  }

  // Whether a line's hash falls in the held-out share.
  bool HeldOut(uint64_t hash) const {
    return *holdout_lo_ <= hash &&
           (!holdout_hi_.has_value() || hash < *holdout_hi_);
  }

  // The output of task t (only tasks in [current_task_, current_task_ +
  // lookahead_) have one, so a ring of lookahead_ serves them all).
  TaskOutput& OutputOf(size_t t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outputs_[t % lookahead_];
  }
  const TaskOutput& OutputOf(size_t t) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outputs_[t % lookahead_];
  }

  // Next may go on: an error, the current task's next chunk parsed or its
  // end, or (past the last task) every thread finished, so that the final
  // ratio check has run.
  bool CanTake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!error_.ok()) return true;
    if (current_task_ >= tasks_.size()) return running_ == 0;
    const TaskOutput& out = OutputOf(current_task_);
    if (out.chunks.empty()) return out.done;
    return out.chunks.front().state == Chunk::kParsed;
  }

  // Moves the current task's next chunk with examples into taking_,
  // passing tasks that are done; false once every task is. The reader's
  // error, if any.
  absl::StatusOr<bool> TakeChunk() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (true) {
      mu_.Await(absl::Condition(this, &FileReader::CanTake));
      if (!error_.ok()) return error_;
      if (current_task_ >= tasks_.size()) return false;
      TaskOutput& out = OutputOf(current_task_);
      if (!out.chunks.empty()) {
        Chunk chunk = std::move(out.chunks.front());
        out.chunks.pop_front();
        if (tasks_[current_task_].stream()) --gzip_queued_;
        if (chunk.examples.size() == 0) continue;  // only bad lines
        taking_ = std::move(chunk);
        taking_pos_ = 0;
        taking_file_ = tasks_[current_task_].file;
        return true;
      }
      // Done: its slot serves task current_task_ + lookahead_ next, which a
      // thread may start now.
      out.done = false;
      ++current_task_;
    }
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

  Chunk EmptyParsedChunk() const {
    Chunk chunk;  // kParsed
    chunk.examples = NewBatch(/*reserve=*/true);
    return chunk;
  }

  // A thread may go on: stopping, a .gz block to parse, a task to start, or
  // nothing left to do (every task read, no block waiting).
  bool ThreadCanGo() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stop_ || raw_blocks_ > 0) return true;
    if (next_task_ < tasks_.size()) {
      return next_task_ < current_task_ + lookahead_;
    }
    return tasks_finished_ == tasks_.size();
  }

  void ThreadMain() {
    std::vector<char> buffer;  // shared by the thread's line sources
    Pending pending;
    absl::Status status;
    while (status.ok()) {
      size_t t = 0;
      Claim claim;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &FileReader::ThreadCanGo));
        if (stop_) {
          status = absl::CancelledError("reader stopped");
          break;
        }
        if (raw_blocks_ > 0) {
          claim = ClaimBlock();
        } else if (next_task_ < tasks_.size()) {
          t = next_task_++;
        } else {
          break;  // nothing left
        }
      }
      if (claim.chunk != nullptr) {
        status = ParseBlock(claim, &pending);
        continue;
      }
      status = RunTask(t, &buffer, &pending);
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        OutputOf(t).done = true;
        ++tasks_finished_;
      }
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

  absl::Status RunTask(size_t t, std::vector<char>* buffer, Pending* pending) {
    const ReadTask& task = tasks_[t];
    const std::string& path = options_.files[task.file];
    if (task.stream()) {
      std::unique_ptr<LineStream> lines;
      if (task.pipe) {
        ASSIGN_OR_RETURN(
            lines,
            PipeLineSource::Open(path, buffer, gzip_limits_.max_line_bytes,
                                 options_.worker_rank, options_.num_workers));
      } else {
        ASSIGN_OR_RETURN(lines,
                         GzipLineSource::Open(path, buffer, gzip_limits_));
      }
      absl::string_view line;
      int64_t consumed = 0;
      while (consumed < task.skip_lines) {
        ASSIGN_OR_RETURN(bool more, lines->Next(&line));
        if (!more) break;
        ++consumed;
      }
      // Whole lines in blocks; parsed by whichever thread is free.
      Chunk block;
      auto start_block = [&] {
        block = Chunk();
        block.state = Chunk::kRaw;
        block.lines_before = consumed;
        block.raw.reserve(kRawBlockBytes + 256);
      };
      start_block();
      while (true) {
        ASSIGN_OR_RETURN(bool more, lines->Next(&line));
        if (!more) break;
        if (lines->too_long()) {
          // Not put in a block (its text is gone): counted here, and the
          // block ends so the next one numbers its lines after it.
          RETURN_IF_ERROR(Queue(t, &block, pending));
          RETURN_IF_ERROR(OnTooLongLine(lines.get(), path, pending));
          ++consumed;
          start_block();
          continue;
        }
        block.raw.append(line.data(), line.size());
        block.raw.push_back('\n');
        ++consumed;
        if (block.raw.size() >= kRawBlockBytes) {
          RETURN_IF_ERROR(Queue(t, &block, pending));
          start_block();
        }
      }
      done_bytes_.fetch_add(task.bytes);
      return Queue(t, &block, pending);
    }
    ASSIGN_OR_RETURN(InputFile file, InputFile::Open(path));
    LineSource lines(&file, task.begin, task.end, buffer,
                     gzip_limits_.max_line_bytes);
    // A plain task is small (kMaxTaskBytes): one chunk.
    Chunk chunk = EmptyParsedChunk();
    RETURN_IF_ERROR(ParseLines(&lines, path, &chunk, pending,
                               [&] { return lines.next_offset(); }));
    done_bytes_.fetch_add(task.bytes);
    return Queue(t, &chunk, pending);
  }

  // The first .gz block no thread parses yet, lowest task first, now
  // claimed. REQUIRES: raw_blocks_ > 0.
  Claim ClaimBlock() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t t = current_task_; t < next_task_; ++t) {
      for (Chunk& chunk : OutputOf(t).chunks) {
        if (chunk.state == Chunk::kRaw) {
          chunk.state = Chunk::kParsing;
          --raw_blocks_;
          return Claim{t, &chunk};
        }
      }
    }
    LOG(FATAL) << "data reader: " << raw_blocks_
               << " blocks counted, none found";
    return Claim();
  }

  // Parses a claimed block (its chunk stays in place: Next takes only
  // parsed chunks, and a deque keeps its elements where they are).
  absl::Status ParseBlock(const Claim& claim, Pending* pending) {
    const std::string& path = options_.files[tasks_[claim.task].file];
    BlockLines lines(claim.chunk->raw, claim.chunk->lines_before);
    Chunk parsed = EmptyParsedChunk();
    absl::Status status = ParseLines(&lines, path, &parsed, pending,
                                     [&] { return lines.number(); });
    Flush(pending);
    absl::MutexLock lock(&mu_);
    if (!status.ok() && !absl::IsCancelled(status) && error_.ok()) {
      // Before the partial chunk is published, so Next never takes it.
      error_ = status;
      stop_ = true;
    }
    claim.chunk->examples = std::move(parsed.examples);
    claim.chunk->after = std::move(parsed.after);
    claim.chunk->raw = std::string();
    claim.chunk->state = Chunk::kParsed;
    return status;
  }

  // Parses every line of `lines` into `chunk`; after(), where the line after
  // the one `lines` last returned is.
  template <typename AfterFn>
  absl::Status ParseLines(LineStream* lines, const std::string& path,
                          Chunk* chunk, Pending* pending, AfterFn after) {
    absl::string_view line;
    int since_check = 0;
    while (true) {
      ASSIGN_OR_RETURN(bool more, lines->Next(&line));
      if (!more) break;
      if (++since_check >= kFlushEveryLines) {
        since_check = 0;
        Flush(pending);
        if (StopRequested()) return absl::CancelledError("reader stopped");
      }
      if (lines->too_long()) {  // bad whichever side of a holdout it is on
        RETURN_IF_ERROR(OnTooLongLine(lines, path, pending));
        continue;
      }
      if (static_cast<int64_t>(chunk->examples.keys.size()) +
              parser_->max_keys_per_example() >
          kMaxBatchKeys) {
        // A chunk is a few hundred KiB of text: cannot happen.
        ASSIGN_OR_RETURN(int64_t line_number, lines->LineNumber());
        return absl::InternalError(
            absl::StrCat(path, ":", line_number, ": ", kMaxBatchKeys,
                         " keys read since the last batch: the reader's "
                         "batches would overflow"));
      }
      if (holdout_ && HeldOut(HoldoutHash(line)) != options_.held_out) {
        continue;  // on the other side of the split
      }
      absl::Status parsed = parser_->Append(line, &chunk->examples);
      if (!parsed.ok() && parser_->IsHeader(line)) continue;  // not data
      ++pending->lines;
      if (parsed.ok()) {
        chunk->after.push_back(after());
      } else {
        ++pending->bad;
        RETURN_IF_ERROR(OnBadLine(lines, path, parsed.message()));
      }
    }
    return absl::OkStatus();
  }

  // Counts the line `lines` last returned, too long to keep, as bad.
  absl::Status OnTooLongLine(LineStream* lines, const std::string& path,
                             Pending* pending) {
    ++pending->lines;
    ++pending->bad;
    return OnBadLine(lines, path,
                     absl::StrCat("line is longer than data.max_line_bytes = ",
                                  gzip_limits_.max_line_bytes,
                                  " bytes (skipped to its end)"));
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

  // Whether task t may queue another chunk: a plain task always (one chunk
  // per task); a .gz task while it holds fewer than threads + 2 when Next
  // reads it, else while the later .gz tasks hold fewer than
  // kMaxQueuedGzipBlocks together.
  bool HasRoom(size_t t) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!tasks_[t].stream()) return true;
    if (t == current_task_) {
      return OutputOf(t).chunks.size() < gzip_queued_blocks_;
    }
    // gzip_queued_ counts the current task's chunks too, if it is a .gz one.
    const size_t current = tasks_[current_task_].stream()
                               ? OutputOf(current_task_).chunks.size()
                               : 0;
    return gzip_queued_ - current < kMaxQueuedGzipBlocks;
  }

  // Hands `chunk` (parsed examples, or a .gz block) to task t's output.
  // While it has no room (HasRoom), parses waiting blocks (of any task),
  // else waits; Cancelled when stopping.
  absl::Status Queue(size_t t, Chunk* chunk, Pending* pending) {
    Flush(pending);
    if (chunk->state == Chunk::kRaw ? chunk->raw.empty()
                                    : chunk->examples.size() == 0) {
      return absl::OkStatus();
    }
    while (true) {
      Claim claim;
      {
        absl::MutexLock lock(&mu_);
        auto may_go = [this, t]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || HasRoom(t) || raw_blocks_ > 0;
        };
        mu_.Await(absl::Condition(&may_go));
        if (stop_) return absl::CancelledError("reader stopped");
        if (HasRoom(t)) {
          if (chunk->state == Chunk::kRaw) ++raw_blocks_;
          if (tasks_[t].stream()) ++gzip_queued_;
          OutputOf(t).chunks.push_back(std::move(*chunk));
          *chunk = Chunk();
          return absl::OkStatus();
        }
        claim = ClaimBlock();  // no room: parse meanwhile
      }
      RETURN_IF_ERROR(ParseBlock(claim, pending));
    }
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
  const std::vector<ReadTask> tasks_;
  const size_t lookahead_;
  const size_t gzip_queued_blocks_;
  const bool holdout_;  // a split: skip one side
  // The held-out share of the hash range: [lo, hi), hi nullopt for 2^64.
  const std::optional<uint64_t> holdout_lo_;
  const std::optional<uint64_t> holdout_hi_;
  const GzipLimits gzip_limits_;      // max_line_bytes for plain files too
  std::vector<std::thread> threads_;  // started in Start(), joined in ~

  int64_t total_bytes_ = 0;  // of every task; constant after construction
  std::atomic<int64_t> done_bytes_{0};
  std::atomic<int64_t> lines_read_{0};
  std::atomic<int64_t> bad_lines_{0};
  std::atomic<int64_t> bad_seen_{0};  // bad lines met, flushed or not
  std::atomic<bool> first_bad_recorded_{false};

  // The chunk Next takes examples from (Next's thread only).
  Chunk taking_;
  int taking_pos_ = 0;
  int taking_file_ = 0;

  mutable absl::Mutex mu_;
  size_t next_task_ ABSL_GUARDED_BY(mu_) = 0;     // the next one to start
  size_t current_task_ ABSL_GUARDED_BY(mu_) = 0;  // the one Next reads
  size_t tasks_finished_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t raw_blocks_ ABSL_GUARDED_BY(mu_) = 0;  // .gz blocks unclaimed
  size_t gzip_queued_ ABSL_GUARDED_BY(mu_) = 0;  // chunks of .gz tasks
  std::vector<TaskOutput> outputs_ ABSL_GUARDED_BY(mu_);  // see OutputOf
  // Past the last example Next returned, and the epoch's examples so far.
  ReadCursor cursor_ ABSL_GUARDED_BY(mu_);
  int64_t examples_done_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::string first_bad_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<DataReader> StartOrderedReader(
    const ReaderOptions& options, std::unique_ptr<const LineParser> parser,
    std::vector<ReadTask> tasks, ReadCursor start, int64_t examples_done) {
  auto reader = std::make_unique<FileReader>(
      options, std::move(parser), std::move(tasks), start, examples_done);
  reader->Start();
  return reader;
}

}  // namespace ps
