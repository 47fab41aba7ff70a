// The LineParser of format SLOT: `label token token ...`.
//
// Tokens are separated by runs of spaces or TABs (leading and trailing ones
// ignored, a trailing '\r' too). The label is "0" or "1". A token is either
//   slot:key     slot a decimal in [0, num_slots), key a decimal uint64;
//                any number of keys per slot, tokens in any order; or
//   d<i>:value   dense feature i in [0, num_dense), value a finite decimal
//                float, at most once per line; absent features are 0.
// A line may carry at most max_features_per_line tokens after the label.
// The key of `s:k` is FeatureKey(hash_seed, s, k). In the example, the keys
// of a slot keep the order of their tokens; a slot without tokens has none.
// E.g. with num_slots 3, num_dense 1: "1 0:17 2:5 d0:0.25 2:9".
//
// Errors name the token by its 1-based position (the label is token 1):
//   "token 3 '7:1': slot 7 is not in [0, num_slots = 3)".
// Immutable; thread-safe.
#ifndef PS_WORKER_DATA_SLOT_PARSER_H_
#define PS_WORKER_DATA_SLOT_PARSER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "worker/data/batch.h"
#include "worker/data/line_parser.h"

namespace ps {

struct SlotOptions {
  int num_slots = 1;  // REQUIRES: >= 1
  int num_dense = 0;  // REQUIRES: >= 0
  uint64_t hash_seed = 0;
  // The most features (tokens after the label) a line may have: a line with
  // more is malformed. REQUIRES: >= 1. Default: 4096.
  int max_features_per_line = 4096;
};

class SlotParser final : public LineParser {
 public:
  explicit SlotParser(const SlotOptions& options) : options_(options) {}

  int num_slots() const override { return options_.num_slots; }
  int num_dense() const override { return options_.num_dense; }
  int64_t max_keys_per_example() const override {
    return options_.max_features_per_line;
  }
  absl::Status Append(absl::string_view line, Batch* batch) const override;

 private:
  const SlotOptions options_;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_SLOT_PARSER_H_
