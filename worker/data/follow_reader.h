// Training on files as they arrive (data.follow): a DataReader over the files
// that match data.train_files now and later, in name order, as Paddle's
// day/hour passes or a stream job's output folders feed a trainer.
//
// The reader reads the files matching the patterns when it opens (sharded
// among workers as DataReader does); when they are exhausted it lists the
// patterns again every poll interval and reads the files that appeared, and
// so on. It ends (Next returns false) once the done file exists and no
// unread file is left (the done file is checked before the listing, so a
// file that landed before it is always read), or once Stop is called.
//
// Producers must make a file appear whole: write it under a name the
// patterns do not match (a glob skips names starting with '.', so
// `.part-7.tsv.tmp`) and rename it into place. New files must sort after the
// ones already read: a file that appears before (in name order) one already
// read, or a file read earlier that disappears, is a FailedPrecondition
// error naming it, since a resume could no longer find its place.
//
// Positions are those of a DataReader over the files matching at that
// moment (file index, name and offset), so a checkpoint taken while
// following resumes at the same line of the same file: the resumed reader
// lists the patterns again (the files read before are a prefix of that list)
// and enters it there. Shuffling and several epochs are not supported
// (the job config refuses them with data.follow). progress() is -1: the
// input has no known end.
#ifndef PS_WORKER_DATA_FOLLOW_READER_H_
#define PS_WORKER_DATA_FOLLOW_READER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/data/data_reader.h"

namespace ps {

struct FollowOptions {
  // Glob patterns of the input files (data.train_files); a pattern matching
  // nothing yet is not an error.
  std::vector<std::string> patterns;
  // How often to list the patterns while waiting for files.
  absl::Duration poll = absl::Seconds(1);
  // The file whose existence ends the input; empty: only Stop ends it.
  std::string done_file;
};

class FollowReader : public DataReader {
 public:
  // `reader` holds everything but the files (options.files is ignored);
  // options.start, if set, is where to resume. InvalidArgument when shuffle
  // is on; errors of DataReader::Open.
  static absl::StatusOr<std::unique_ptr<FollowReader>> Open(
      const ReaderOptions& reader, const FollowOptions& follow);

  // Ends the input: Next returns false from now on (a waiting Next at once);
  // thread-safe.
  virtual void Stop() = 0;
  // Files read (or being read) so far, in order.
  virtual std::vector<std::string> files() const = 0;
};

// Ends the input of every FollowReader of the process, as Stop does (a
// waiting Next sees it within a poll interval): async-signal-safe, for a
// worker's SIGTERM/SIGINT handler.
void StopAllFollowReaders();

// The files matching `patterns` now, sorted by name, without duplicates;
// plain paths that do not exist and patterns that match nothing give none.
absl::StatusOr<std::vector<std::string>> ListFollowedFiles(
    const std::vector<std::string>& patterns);

}  // namespace ps

#endif  // PS_WORKER_DATA_FOLLOW_READER_H_
