// The format-agnostic side of reading: a LineParser turns one text line into
// one example appended to a Batch. DataReader only splits files into lines
// and hands them to the parser that LineParser::Create picks from the data
// config, so a new format is a new LineParser and nothing else.
//
// Implementations: CriteoParser (worker/data/criteo_parser.h), SlotParser
// (worker/data/slot_parser.h), MovieLensParser
// (worker/data/movielens_parser.h), AvazuParser (worker/data/avazu_parser.h).
//
// Thread-safety: a parser is immutable after creation; Append is const and
// may be called from any number of threads at once.
#ifndef PS_WORKER_DATA_LINE_PARSER_H_
#define PS_WORKER_DATA_LINE_PARSER_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/config.pb.h"
#include "worker/data/batch.h"

namespace ps {

class LineParser {
 public:
  // The parser of data.format, configured by the format's fields of `data`
  // (int_features, hash_seed, num_slots, num_dense, max_features_per_line,
  // movielens_*_file; other fields are not read). Side files (MovieLens) are
  // loaded here, once; their errors name the file and line. InvalidArgument for
  // a format or field value the parser cannot use.
  static absl::StatusOr<std::unique_ptr<LineParser>> Create(
      const DataConfig& data);

  virtual ~LineParser() = default;

  // The shape of every example; equals InputShapeOf(data) of the config the
  // parser was created from.
  virtual int num_slots() const = 0;
  virtual int num_dense() const = 0;

  // The most keys Append adds for one example. With batch_size it bounds
  // the keys of a batch, whose offsets are 32-bit (kMaxBatchKeys).
  virtual int64_t max_keys_per_example() const = 0;

  // Parses `line` (without its '\n'; a trailing '\r' is ignored) and appends
  // one example to `batch`. On a malformed line returns InvalidArgument with
  // the reason (no file or line number: the caller adds them) and leaves
  // `batch` unchanged.
  // REQUIRES: batch->num_slots == num_slots(), batch->num_dense == num_dense().
  virtual absl::Status Append(absl::string_view line, Batch* batch) const = 0;

  // Whether `line`, which Append refused, is the format's header line
  // (a CSV's column names), which readers skip without counting it bad.
  virtual bool IsHeader(absl::string_view line) const { return false; }
};

}  // namespace ps

#endif  // PS_WORKER_DATA_LINE_PARSER_H_
