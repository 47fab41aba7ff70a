// The parallel, ordered reader behind DataReader::Open
// (worker/data/data_reader.h), which cuts a worker's share of the files into
// tasks and hands them here.
//
// Threads take tasks in order: a plain task is parsed into one chunk; a .gz
// task is decompressed into blocks of text that any thread parses. Next
// hands the examples out in task order, cut into batches of batch_size, so
// the batches, their order and the positions are the same for any number
// of threads. Memory stays bounded: a thread starts no task more than
// 2 * threads + 2 tasks past the one Next reads, and .gz text queued ahead
// is capped, and so is each thread's line buffer (data.max_line_bytes). Bad
// lines (too long ones included) are counted and the first ones logged; past
// options.max_bad_line_ratio the reader fails naming the first bad line.
//
// Thread-safety: as every DataReader, one caller thread; the reader's own
// threads stop when it is destroyed.
#ifndef PS_WORKER_DATA_ORDERED_READER_H_
#define PS_WORKER_DATA_ORDERED_READER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "worker/data/data_reader.h"
#include "worker/data/line_parser.h"

namespace ps {

// Lines starting in [begin, end) of one plain file, or a whole stream (a .gz
// file or a command's output, worker/data/pipe_reader.h) whose first
// skip_lines lines are dropped.
struct ReadTask {
  int file = 0;
  bool gzip = false;  // a .gz file
  bool pipe = false;  // a pipe:COMMAND
  int64_t begin = 0;  // plain files only
  int64_t end = 0;
  int64_t skip_lines = 0;  // streams only
  int64_t bytes = 0;       // what it counts for in progress()

  // Read whole, as one stream of lines.
  bool stream() const { return gzip || pipe; }
};

// Where the line after an example is: a file index (files.size() past the
// end) and a byte offset (plain) or lines consumed (.gz, pipe).
struct ReadCursor {
  int file = 0;
  int64_t offset = 0;
};

// Starts options.threads threads reading `tasks` (in order) with `parser`.
// `start` is where the first task starts (the reader's position until the
// first batch) and `examples_done` the examples of the epoch before it.
// REQUIRES: options passed DataReader::Open's checks; tasks in file order.
std::unique_ptr<DataReader> StartOrderedReader(
    const ReaderOptions& options, std::unique_ptr<const LineParser> parser,
    std::vector<ReadTask> tasks, ReadCursor start, int64_t examples_done);

}  // namespace ps

#endif  // PS_WORKER_DATA_ORDERED_READER_H_
