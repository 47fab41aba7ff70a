// Parsing of Criteo-format lines into Batch examples.
//
// A line is 40 TAB-separated fields: label (0 or 1), I1..I13 (decimal
// integers, may be negative), C1..C26 (hex strings of at most 16 digits); an
// empty field is a missing value. A trailing '\r' is ignored.
// Slots: with LOG_BUCKET, slots 0..12 are I1..I13 and 13..38 are C1..C26, one
// key each (missing is its own key); with NORMALIZE, slots 0..25 are C1..C26
// and the 13 integers become dense features log(1 + max(v, 0)) (missing = 0).
// CriteoParser is the LineParser of format CRITEO.
// Stateless and thread-safe.
#ifndef PS_WORKER_DATA_CRITEO_PARSER_H_
#define PS_WORKER_DATA_CRITEO_PARSER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/config.pb.h"
#include "worker/data/batch.h"
#include "worker/data/line_parser.h"

namespace ps {

struct CriteoOptions {
  DataConfig::IntFeatures int_features = DataConfig::LOG_BUCKET;
  uint64_t hash_seed = 0;
};

int CriteoNumSlots(const CriteoOptions& options);
int CriteoNumDense(const CriteoOptions& options);

// The bucket of integer value v under LOG_BUCKET: v for v <= 2, else
// floor(ln(v)^2).
int64_t CriteoLogBucket(int64_t v);

// Parses `line` and appends one example to `batch` (whose num_slots and
// num_dense must match `options`). On a malformed line returns
// InvalidArgument naming the field and the problem, e.g.
// "field 6 (I5): 'x1' is not an integer", and leaves `batch` unchanged.
absl::Status AppendCriteoExample(absl::string_view line,
                                 const CriteoOptions& options, Batch* batch);

class CriteoParser final : public LineParser {
 public:
  explicit CriteoParser(const CriteoOptions& options) : options_(options) {}

  int num_slots() const override { return CriteoNumSlots(options_); }
  int num_dense() const override { return CriteoNumDense(options_); }
  int64_t max_keys_per_example() const override { return num_slots(); }
  absl::Status Append(absl::string_view line, Batch* batch) const override {
    return AppendCriteoExample(line, options_, batch);
  }

 private:
  const CriteoOptions options_;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_CRITEO_PARSER_H_
