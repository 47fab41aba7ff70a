#include "worker/data/data_reader.h"

#include <errno.h>
#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "worker/data/gzip_reader.h"
#include "worker/data/line_parser.h"
#include "worker/data/line_source.h"
#include "worker/data/ordered_reader.h"
#include "worker/data/parser_util.h"
#include "worker/data/pipe_reader.h"
#include "worker/data/reader_shuffler.h"

namespace ps {
namespace {

// Plain files are cut into tasks of range / (8 * lookahead) bytes, within
// these bounds: small enough that the threads' tasks fit the lookahead (so
// they parse in parallel, not each waiting for the one before), large
// enough that opening a task costs nothing next to parsing it.
constexpr int64_t kMinTaskBytes = 256;
constexpr int64_t kMaxTaskBytes = int64_t{256} << 10;

int64_t RangePoint(int64_t size, int64_t part, int64_t parts) {
  return static_cast<int64_t>(static_cast<unsigned __int128>(size) * part /
                              parts);
}

// A start position must belong to this worker, epoch and file list.
absl::Status CheckStart(const ReaderOptions& options) {
  if (!options.start.has_value()) return absl::OkStatus();
  const DataPosition& p = *options.start;
  if (p.worker_rank() != options.worker_rank || p.epoch() != options.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data reader: start position is of worker ", p.worker_rank(), " epoch ",
        p.epoch(), ", this reader is worker ", options.worker_rank, " epoch ",
        options.epoch));
  }
  if (p.examples_done() < 0 || p.offset() < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data reader: start position has a negative offset (", p.offset(),
        ") or examples_done (", p.examples_done(), ")"));
  }
  const int num_files = static_cast<int>(options.files.size());
  if (p.file_index() < -1 || p.file_index() > num_files) {
    return absl::FailedPreconditionError(
        absl::StrCat("data reader: start position names file ", p.file_index(),
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

uint64_t HoldoutHash(absl::string_view line) {
  return Mix64(StringFeatureValue(StripCarriageReturn(line)));
}

absl::Status AppendGlobMatches(const std::string& pattern,
                               std::vector<std::string>* out) {
  glob_t g;
  const int rc = glob(pattern.c_str(), 0, nullptr, &g);
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out->push_back(g.gl_pathv[i]);
  }
  globfree(&g);
  if (rc == GLOB_NOSPACE) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory expanding input pattern '", pattern, "'"));
  }
  if (rc != 0 && rc != GLOB_NOMATCH) {
    return absl::InternalError(absl::StrCat(
        "read error while expanding input pattern '", pattern, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ExpandFiles(
    const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    if (IsPipePath(pattern)) {  // a command, run when read
      files.push_back(pattern);
      continue;
    }
    if (!HasGlobChars(pattern)) {
      struct stat st;
      if (stat(pattern.c_str(), &st) != 0) {
        return InputFileError(errno, "stat", pattern);
      }
      files.push_back(pattern);
      continue;
    }
    const size_t before = files.size();
    RETURN_IF_ERROR(AppendGlobMatches(pattern, &files));
    if (files.size() == before) {
      return absl::NotFoundError(
          absl::StrCat("input pattern '", pattern, "' matches no files"));
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

  if (!(options.holdout_fraction >= 0 && options.holdout_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("data reader: holdout_fraction must be in [0, 0.5], got ",
                     options.holdout_fraction));
  }
  if (options.holdout_fold < 0 ||
      (options.holdout_fraction > 0 &&
       (options.holdout_fold + 1) * options.holdout_fraction > 1 + 1e-9)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data reader: holdout_fold ", options.holdout_fold,
        " is not a fold of holdout_fraction ", options.holdout_fraction));
  }
  const DataConfig& data = options.data;
  if (data.max_line_bytes() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("data reader: max_line_bytes must be >= 1, got ",
                     data.max_line_bytes()));
  }
  if (data.gzip_max_decompressed_bytes() < 0 || data.gzip_max_ratio() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data reader: gzip_max_decompressed_bytes and gzip_max_ratio must be "
        ">= 0 (0 = no limit), got ",
        data.gzip_max_decompressed_bytes(), " and ", data.gzip_max_ratio()));
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
  const ReadCursor start = by_offset ? ReadCursor{options.start->file_index(),
                                                  options.start->offset()}
                                     : ReadCursor{0, 0};

  // Worker range of each plain file, cut into small tasks, and the worker's
  // .gz files whole; threads take tasks in order as they finish the
  // previous one.
  std::vector<ReadTask> tasks;
  int stream_index = 0;  // .gz files and commands, in list order
  for (size_t f = 0; f < options.files.size(); ++f) {
    const bool at_start = static_cast<int>(f) == start.file;
    const bool pipe = IsPipePath(options.files[f]);
    if (pipe && !HasPipeCommand(options.files[f])) {
      return absl::InvalidArgumentError(
          absl::StrCat("data reader: input '", options.files[f],
                       "' has no command after 'pipe:'"));
    }
    int64_t size = 0;  // a command's output: unknown, counts 0 in progress
    if (!pipe) {
      ASSIGN_OR_RETURN(InputFile file, InputFile::Open(options.files[f]));
      ASSIGN_OR_RETURN(size, file.Size());
    }
    if (pipe || IsGzipPath(options.files[f])) {
      if (stream_index++ % options.num_workers == options.worker_rank &&
          static_cast<int>(f) >= start.file) {
        ReadTask task;
        task.file = static_cast<int>(f);
        task.gzip = !pipe;
        task.pipe = pipe;
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
    const int64_t begin =
        std::max(at_start ? start.offset : 0,
                 RangePoint(size, options.worker_rank, options.num_workers));
    const int64_t end =
        RangePoint(size, options.worker_rank + 1, options.num_workers);
    const int64_t task_bytes =
        std::clamp((end - begin) / (8 * (2 * options.threads + 2)),
                   kMinTaskBytes, kMaxTaskBytes);
    for (int64_t at = begin; at < end; at += task_bytes) {
      ReadTask task;
      task.file = static_cast<int>(f);
      task.begin = at;
      task.end = std::min(end, at + task_bytes);
      task.bytes = task.end - task.begin;
      tasks.push_back(task);
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<LineParser> parser,
                   LineParser::Create(options.data));
  if (options.batch_size * parser->max_keys_per_example() > kMaxBatchKeys) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data reader: batch_size ", options.batch_size, " examples of up to ",
        parser->max_keys_per_example(), " keys each (",
        DataConfig::Format_Name(options.data.format()),
        options.data.format() == DataConfig::SLOT
            ? ", data.max_features_per_line"
            : "",
        ") could exceed the ", kMaxBatchKeys,
        " keys a batch holds (32-bit offsets)"));
  }
  const int64_t examples_done = by_offset ? options.start->examples_done() : 0;
  std::unique_ptr<DataReader> reader = StartOrderedReader(
      options, std::move(parser), std::move(tasks), start, examples_done);
  if (options.shuffle_buffer == 0) return reader;
  return NewShufflingReader(
      std::move(reader), options.batch_size, options.shuffle_buffer,
      ShuffleSeed(options.shuffle_seed, options.worker_rank),
      options.start.has_value() ? options.start->examples_done() : 0);
}

}  // namespace ps
