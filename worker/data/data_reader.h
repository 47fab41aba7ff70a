// Reads a worker's share of the training or eval files into batches.
//
// Sharding (computed alike by all workers without talking; every line is
// read by exactly one worker):
//  - A plain file is cut into num_workers byte ranges of equal size; worker
//    j reads the lines that start inside range j (a line starting exactly at
//    a range's first byte belongs to it).
//  - A gzip file (name ending in ".gz") cannot be split, so it is read whole
//    by one worker: the k-th stream of `files` (k = 0, 1, ... counting .gz
//    files and commands only, in list order) goes to worker k % num_workers.
//    With fewer streams than workers, some workers get none of them.
//  - A command, `pipe:CMD` (worker/data/pipe_reader.h), is such a stream
//    too: its standard output is read whole by one worker. It counts for
//    nothing in progress() (its size is unknown).
// Inside a worker, `threads` parser threads each take a task (a small piece
// of the worker's range of a plain file, or a whole .gz file) in order as
// they finish the previous one, a bounded number of tasks ahead of Next; a
// .gz file is decompressed by one thread into blocks of lines that any
// thread parses.
// Next hands the examples out in file and line order, in batches of
// batch_size (the last one of the share may be smaller): the batches are
// the same whatever `threads` is.
//
// Lines are parsed by the LineParser of `data` (worker/data/line_parser.h), so
// the reader does not know the format. A line the parser calls a header (a
// CSV's column names) is skipped and not counted. Malformed lines are
// skipped and counted, and so is a line longer than data.max_line_bytes
// (never held whole: a reader thread's line buffer stays under
// max(1 MiB, max_line_bytes + 1) bytes; such a line counts as read on both
// sides of a holdout split, its text being unknown);
// the first `log_bad_lines` are logged as "file:line: reason", with exact
// line numbers in plain and .gz files alike. When more than
// max_bad_line_ratio of the lines read so far are bad (checked after 1000
// lines and at the end), Next returns an InvalidArgument error naming the
// ratio and the first bad line. A .gz file past
// data.gzip_max_decompressed_bytes or data.gzip_max_ratio is a
// ResourceExhausted error naming it (worker/data/gzip_reader.h).
//
// With shuffle_buffer > 0, Next draws its examples from a buffer of that many
// (worker/data/reader_shuffler.h) seeded with ShuffleSeed(shuffle_seed,
// worker_rank): the same files and options give the same order.
//
// Positions (for checkpoints; proto/checkpoint.proto DataPosition). After
// each Next, Position() says where the next example not yet returned is:
//  - without shuffling: (file_index, file, offset) with offset the byte
//    offset of the line after the last example returned in a plain file,
//    or the count of lines of a .gz file or a command's output up to that
//    example (a resume runs the command again and skips them); file_index ==
//    files.size() once the worker's share is exhausted. (Bad, header or
//    held-out lines right after that example are read again on a resume.)
//  - with shuffle_buffer > 0: file_index -1 and examples_done only.
// A reader opened with the same files, worker_rank, num_workers, epoch and
// shuffle settings and `start` = that position returns exactly the examples
// the first one had not returned yet, in the same order and batches, with
// any number of threads: a plain file is entered at the offset, a .gz file
// is decompressed and its first `offset` lines skipped, a shuffled epoch is
// replayed from its start and its first examples_done examples dropped.
// examples_done counts the examples of the epoch returned so far,
// continuing from the start position's.
//
// Next() is called from one thread at a time; Position() may be called from
// any thread.
#ifndef PS_WORKER_DATA_DATA_READER_H_
#define PS_WORKER_DATA_DATA_READER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "worker/data/batch.h"

namespace ps {

struct ReaderOptions {
  std::vector<std::string> files;  // already glob-expanded
  int worker_rank = 0;
  int num_workers = 1;
  int batch_size = 512;
  int threads = 1;
  double max_bad_line_ratio = 0.01;
  int log_bad_lines = 5;
  // The line format: LineParser::Create(data) parses the lines, so only
  // format, int_features, hash_seed, num_slots, num_dense,
  // max_features_per_line and movielens_*_file are read, and the input
  // limits max_line_bytes, gzip_max_decompressed_bytes and gzip_max_ratio
  // (the fields above stand for the rest). batch_size times the parser's
  // max_keys_per_example must not exceed kMaxBatchKeys. Default: CRITEO with
  // LOG_BUCKET integers, hash seed 0, the limits' defaults.
  DataConfig data;
  // Examples held for shuffling; 0 = no shuffling. Default: 0.
  int shuffle_buffer = 0;
  // Seed of the shuffle, combined with worker_rank. Default: 0.
  uint64_t shuffle_seed = 0;
  // The pass over the files this reader makes; recorded in positions.
  // Default: 0.
  int epoch = 0;
  // Lines held out for evaluation (data.eval_holdout_fraction): a line is
  // held out when HoldoutHash(line) / 2^64 is in [holdout_fold,
  // holdout_fold + 1) * holdout_fraction. With a
  // fraction > 0 the reader skips held-out lines, or, with held_out, reads
  // only them; skipped lines are not counted as read. Default: 0, none.
  double holdout_fraction = 0;
  bool held_out = false;
  // The share held out is [holdout_fold, holdout_fold + 1) * fraction of
  // the hash range (data.eval_holdout_fold). Default: 0.
  int holdout_fold = 0;
  // Where to start: a position a reader of the same files, worker, epoch and
  // shuffle settings gave (see above). Default: none, the start of the
  // worker's share.
  std::optional<DataPosition> start;
};

// The hash that places a line on the training or the held-out side (see
// ReaderOptions::holdout_fraction): of its text without a trailing '\r'.
// Part of the data split: do not change.
uint64_t HoldoutHash(absl::string_view line);

// Appends the paths matching glob `pattern` to `out`, in glob's (sorted)
// order; none when nothing matches. ResourceExhausted or Internal naming the
// pattern when glob fails.
absl::Status AppendGlobMatches(const std::string& pattern,
                               std::vector<std::string>* out);

// Expands globs in order; a pattern matching nothing is a NotFound error
// naming it. Plain paths must exist. `pipe:` commands are kept as they are.
absl::StatusOr<std::vector<std::string>> ExpandFiles(
    const std::vector<std::string>& patterns);

class DataReader {
 public:
  // Opens the files (NotFound naming a missing one), creates the parser
  // (loading its side files; their errors name file and line) and starts
  // the threads. A `start` position that does not fit the options (other
  // epoch or worker, a file index out of range, another file at that index,
  // an offset past the file's end) is FailedPrecondition naming both sides.
  static absl::StatusOr<std::unique_ptr<DataReader>> Open(
      const ReaderOptions& options);
  virtual ~DataReader() = default;

  // Fills `batch` (replaced) with up to batch_size examples. Returns false
  // once the data is exhausted (batch then empty), or an error (which
  // sticks: later calls return it again).
  virtual absl::StatusOr<bool> Next(Batch* batch) = 0;

  virtual int64_t lines_read() const = 0;  // good + bad so far
  virtual int64_t bad_lines() const = 0;

  // Where the next example not yet returned by Next is (see above).
  virtual absl::StatusOr<DataPosition> Position() const = 0;

  // The fraction of this reader's input read so far, in [0, 1], by bytes:
  // each piece of a plain file once parsed, a .gz file once read whole.
  // Counts what the reading threads have read, which runs a little ahead of
  // Next. -1 when the reader has no input. For progress lines and their
  // ETA; thread-safe.
  virtual double progress() const = 0;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_DATA_READER_H_
