// Reading the standard output of a command as input lines: an input "file"
// written `pipe:CMD` in data.train_files or data.eval_files (as users feed
// trainers from `hdfs dfs -cat ...`, an object store's CLI or a decoder).
//
// CMD runs as `/bin/sh -c CMD` in the worker's working directory, with the
// worker's environment plus PS_PIPE_WORKER_RANK and PS_PIPE_NUM_WORKERS, in
// a process group of its own. Its standard error goes to the worker's (its
// log). Like a .gz file a command's output cannot be entered in the middle,
// so each `pipe:` entry is read whole by one worker (worker/data/data_reader.h
// assigns them with the .gz files), and a checkpoint position inside it is a
// count of lines: a resumed worker runs the command again and skips that many
// lines, so the command must print the same lines again (a listing in a
// fixed order, not a live tail).
//
// The command must exit with status 0 after its last line: any other exit
// status, or death by a signal, is a DataLoss error naming the command, the
// status and the lines read (its output may be incomplete). A line longer
// than max_line_bytes is dropped and reported (LineStream::too_long) as for
// files. Destroying a source whose command still runs (a reader stopped
// early) closes its output, sends SIGTERM to its process group and, if it
// has not exited a second later, SIGKILL, then reaps it.
//
// Thread-safety: a PipeLineSource is not thread-safe; distinct sources may be
// used from distinct threads.
#ifndef PS_WORKER_DATA_PIPE_READER_H_
#define PS_WORKER_DATA_PIPE_READER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/pipe_path.h"  // IsPipePath, PipeCommand
#include "worker/data/line_source.h"

namespace ps {

class PipeLineSource final : public StreamLineSource {
 public:
  // Starts the command of `path` (a pipe path with a non-empty command).
  // `*buffer` (may be empty) must outlive the source. The rank and count go
  // to the command's environment. InvalidArgument for an empty command;
  // Internal when the command cannot be started (naming it and the OS
  // error).
  static absl::StatusOr<std::unique_ptr<PipeLineSource>> Open(
      const std::string& path, std::vector<char>* buffer,
      int64_t max_line_bytes = kDefaultMaxLineBytes, int worker_rank = 0,
      int num_workers = 1);

  PipeLineSource(const PipeLineSource&) = delete;
  PipeLineSource& operator=(const PipeLineSource&) = delete;
  ~PipeLineSource() override;

  // Next (StreamLineSource) gives the lines of the command's output; at
  // its end, the command's exit status decides between false (0) and
  // DataLoss (see the top).

 private:
  PipeLineSource(pid_t pid, int fd, std::string path, std::vector<char>* buffer,
                 int64_t max_line_bytes);

  absl::StatusOr<size_t> Read(char* dst, size_t n) override;
  // Reaps the command after the end of its output; its exit status as a
  // Status.
  absl::Status Reap();

  pid_t pid_;  // -1 once reaped
  int fd_;     // read end of the command's standard output; -1 once closed
  const std::string path_;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_PIPE_READER_H_
