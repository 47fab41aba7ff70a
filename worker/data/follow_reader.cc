#include "worker/data/follow_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {
namespace {

// Set by StopAllFollowReaders (a signal handler); never cleared.
std::atomic<bool> stop_all{false};
static_assert(std::atomic<bool>::is_always_lock_free);

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

class FollowReaderImpl final : public FollowReader {
 public:
  FollowReaderImpl(const ReaderOptions& options, FollowOptions follow)
      : options_(options), follow_(std::move(follow)) {}

  // Opens the reader of the files there now, at options_.start.
  absl::Status Start() {
    ASSIGN_OR_RETURN(std::vector<std::string> files,
                     ListFollowedFiles(follow_.patterns));
    if (options_.start.has_value()) {
      const DataPosition& p = *options_.start;
      if (p.file_index() > static_cast<int64_t>(files.size()) ||
          (p.file_index() == static_cast<int64_t>(files.size()) &&
           !p.file().empty())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "data.follow: the resume position is in input file ",
            p.file_index(), " '", p.file(), "', but only ", files.size(),
            " files match data.train_files now: files read before have "
            "disappeared"));
      }
    } else {
      DataPosition p;
      p.set_worker_rank(options_.worker_rank);
      p.set_epoch(options_.epoch);
      p.set_file_index(0);
      options_.start = p;
    }
    return OpenAt(std::move(files), *options_.start);
  }

  absl::StatusOr<bool> Next(Batch* batch) override {
    if (!error_.ok()) return error_;
    absl::StatusOr<bool> more = NextOrError(batch);
    if (!more.ok()) error_ = more.status();
    return more;
  }

  int64_t lines_read() const override {
    absl::MutexLock lock(&mu_);
    return lines_before_ + (inner_ ? inner_->lines_read() : 0);
  }
  int64_t bad_lines() const override {
    absl::MutexLock lock(&mu_);
    return bad_before_ + (inner_ ? inner_->bad_lines() : 0);
  }
  absl::StatusOr<DataPosition> Position() const override {
    absl::MutexLock lock(&mu_);
    if (inner_ == nullptr) return next_start_;
    return inner_->Position();
  }
  double progress() const override { return -1; }

  void Stop() override {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  std::vector<std::string> files() const override {
    absl::MutexLock lock(&mu_);
    return files_;
  }

 private:
  // A reader over `files` entered at `start`. A start past the end of an
  // earlier, shorter list (file_index == its size, no name) is the first
  // new file's beginning.
  absl::Status OpenAt(std::vector<std::string> files, DataPosition start) {
    if (start.file_index() >= 0 &&
        start.file_index() < static_cast<int64_t>(files.size()) &&
        start.file().empty()) {
      start.set_file(files[start.file_index()]);
      start.set_offset(0);
    }
    ReaderOptions options = options_;
    options.files = files;
    options.start = start;
    std::unique_ptr<DataReader> reader;
    if (files.empty()) {
      // Nothing yet: no reader; the position stays the start.
    } else {
      ASSIGN_OR_RETURN(reader, DataReader::Open(options));
    }
    absl::MutexLock lock(&mu_);
    if (inner_ != nullptr) {
      lines_before_ += inner_->lines_read();
      bad_before_ += inner_->bad_lines();
    }
    inner_ = std::move(reader);
    files_ = std::move(files);
    next_start_ = start;
    return absl::OkStatus();
  }

  // The files read so far must still be the first ones, in order.
  absl::Status CheckPrefix(const std::vector<std::string>& files) const {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < files_.size(); ++i) {
      if (i >= files.size() || files[i] != files_[i]) {
        const std::string& was = files_[i];
        if (!Exists(was)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "data.follow: input file '", was,
              "' was read and has disappeared; a resume could not find its "
              "place"));
        }
        return absl::FailedPreconditionError(absl::StrCat(
            "data.follow: input file '", files[i],
            "' appeared after later files were read (it sorts before '", was,
            "'); new files must sort after those already read"));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> NextOrError(Batch* batch) {
    while (true) {
      DataReader* inner;
      {
        absl::MutexLock lock(&mu_);
        if (stop_ || stop_all.load()) {
          // Stopped: the input ends here; the position stays where it is.
          batch->Clear();
          return false;
        }
        inner = inner_.get();
      }
      if (inner != nullptr) {
        ASSIGN_OR_RETURN(bool more, inner->Next(batch));
        if (more) return true;
      }
      // Exhausted: the done file first, then the listing, so a file that
      // landed before the done file is read.
      const bool done = !follow_.done_file.empty() && Exists(follow_.done_file);
      ASSIGN_OR_RETURN(std::vector<std::string> files,
                       ListFollowedFiles(follow_.patterns));
      RETURN_IF_ERROR(CheckPrefix(files));
      DataPosition start;
      size_t known;
      {
        absl::MutexLock lock(&mu_);
        known = files_.size();
        if (inner_ != nullptr) {
          ASSIGN_OR_RETURN(start, inner_->Position());
        } else {
          start = next_start_;
        }
      }
      if (files.size() > known) {
        LOG(INFO) << "data.follow: " << files.size() - known
                  << " new input file(s), from " << files[known];
        start.set_file_index(static_cast<int64_t>(known));
        start.clear_file();
        RETURN_IF_ERROR(OpenAt(std::move(files), start));
        continue;
      }
      batch->Clear();
      if (done) {
        LOG(INFO) << "data.follow: done file " << follow_.done_file
                  << " found and every input file read";
        return false;
      }
      // Waits a poll interval, or less when Stop is called.
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_), follow_.poll);
    }
  }

  ReaderOptions options_;
  const FollowOptions follow_;
  absl::Status error_;  // sticks; used by Next's thread only

  mutable absl::Mutex mu_;
  std::unique_ptr<DataReader> inner_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> files_ ABSL_GUARDED_BY(mu_);
  DataPosition next_start_ ABSL_GUARDED_BY(mu_);  // with no inner_
  int64_t lines_before_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t bad_before_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

void StopAllFollowReaders() { stop_all.store(true); }

absl::StatusOr<std::vector<std::string>> ListFollowedFiles(
    const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    std::vector<std::string> matches;
    RETURN_IF_ERROR(AppendGlobMatches(pattern, &matches));
    for (std::string& path : matches) {
      struct stat st;
      // Folders are not input; a file that went away is not listed.
      if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        files.push_back(std::move(path));
      }
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

absl::StatusOr<std::unique_ptr<FollowReader>> FollowReader::Open(
    const ReaderOptions& reader, const FollowOptions& follow) {
  if (reader.shuffle_buffer > 0) {
    return absl::InvalidArgumentError(
        "data.follow reads files as they arrive and cannot shuffle "
        "(data.shuffle_buffer must be 0)");
  }
  if (follow.patterns.empty()) {
    return absl::InvalidArgumentError("data.follow: no input patterns");
  }
  if (follow.poll <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "data.follow: the poll interval must be positive");
  }
  auto impl = std::make_unique<FollowReaderImpl>(reader, follow);
  RETURN_IF_ERROR(impl->Start());
  return impl;
}

}  // namespace ps
