// What every line-parser fuzz target checks (worker/data/line_parser.h):
// the input is split into lines as a reader splits a file, each line goes
// through LineParser::Append, and the batch must keep the parser's
// contract: a refused line leaves it unchanged; an accepted one adds one
// example with a 0/1 label, num_dense finite dense values and num_slots
// offsets that never decrease and end at the key count.
#ifndef PS_TESTS_FUZZ_PARSER_FUZZ_H_
#define PS_TESTS_FUZZ_PARSER_FUZZ_H_

#include <cmath>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/data/batch.h"
#include "worker/data/line_parser.h"

namespace ps {
namespace fuzz {

inline void CheckParserOnLines(const LineParser& parser,
                               absl::string_view data) {
  Batch batch;
  batch.num_slots = parser.num_slots();
  batch.num_dense = parser.num_dense();
  for (absl::string_view line : Lines(data)) {
    const size_t examples = batch.labels.size();
    const size_t dense = batch.dense.size();
    const size_t offsets = batch.offsets.size();
    const size_t keys = batch.keys.size();
    const absl::Status status = parser.Append(line, &batch);
    if (!status.ok()) {
      CHECK(absl::IsInvalidArgument(status)) << status;
      CHECK(!status.message().empty());
      CHECK_EQ(batch.labels.size(), examples) << "refused line changed batch";
      CHECK_EQ(batch.dense.size(), dense) << "refused line changed batch";
      CHECK_EQ(batch.offsets.size(), offsets) << "refused line changed batch";
      CHECK_EQ(batch.keys.size(), keys) << "refused line changed batch";
      parser.IsHeader(line);
      continue;
    }
    CHECK_EQ(batch.labels.size(), examples + 1);
    CHECK(batch.labels.back() == 0.0f || batch.labels.back() == 1.0f);
    CHECK_EQ(batch.dense.size(), dense + batch.num_dense);
    for (size_t i = dense; i < batch.dense.size(); ++i) {
      CHECK(std::isfinite(batch.dense[i])) << "dense " << i - dense;
    }
    CHECK_EQ(batch.offsets.size(), offsets + batch.num_slots);
    for (size_t i = offsets; i < batch.offsets.size(); ++i) {
      CHECK_GE(batch.offsets[i], batch.offsets[i - 1]);
    }
    CHECK_EQ(batch.offsets.back(), batch.keys.size());
  }
}

}  // namespace fuzz
}  // namespace ps

#endif  // PS_TESTS_FUZZ_PARSER_FUZZ_H_
