// Reads a worker's share of the training or eval files into batches.
//
// Sharding: every file is cut into num_workers byte ranges of equal size;
// worker j reads the lines that start inside range j (a line starting exactly
// at a range's first byte belongs to it), so every line is read by exactly
// one worker, computed alike by all workers without talking. Inside a
// worker, `threads` parser threads each take a sub-range; batches come out of
// a bounded queue (order across threads is not fixed when threads > 1).
//
// Malformed lines are skipped and counted; the first `log_bad_lines` are
// logged with file and line number. When more than max_bad_line_ratio of the
// lines read so far are bad (checked after 1000 lines and at the end), Next
// returns an InvalidArgument error naming the ratio and the first bad line.
// Next() is called from one thread.
#ifndef PS_WORKER_DATA_READER_H_
#define PS_WORKER_DATA_READER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/batch.h"
#include "worker/criteo_parser.h"

namespace ps {

struct ReaderOptions {
  std::vector<std::string> files;  // already glob-expanded
  int worker_rank = 0;
  int num_workers = 1;
  int batch_size = 512;
  int threads = 1;
  double max_bad_line_ratio = 0.01;
  int log_bad_lines = 5;
  CriteoOptions criteo;
};

// Expands globs in order; a pattern matching nothing is a NotFound error
// naming it. Plain paths must exist.
absl::StatusOr<std::vector<std::string>> ExpandFiles(
    const std::vector<std::string>& patterns);

class DataReader {
 public:
  // Opens the files (NotFound naming a missing one) and starts the threads.
  static absl::StatusOr<std::unique_ptr<DataReader>> Open(
      const ReaderOptions& options);
  virtual ~DataReader() = default;

  // Fills `batch` (cleared first) with up to batch_size examples. Returns
  // false once the data is exhausted (batch then empty), or an error.
  virtual absl::StatusOr<bool> Next(Batch* batch) = 0;

  virtual int64_t lines_read() const = 0;  // good + bad so far
  virtual int64_t bad_lines() const = 0;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_READER_H_
