// Fuzz target: PsHandler::Pull (server/service/ps_handler.h), with the
// input as a serialized PullRequest, against the server of handler_fuzz.h.
//
// A request must be answered or refused with InvalidArgument,
// FailedPrecondition or ResourceExhausted; an answer must carry one row of
// the table's dim per key asked, finite, and per dense table asked its
// segment and whole size.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "proto/ps.pb.h"
#include "tests/fuzz/handler_fuzz.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  ps::fuzz::Handler();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::PullRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return -1;
  ps::fuzz::ResetHandler();
  ps::PullResponse response;
  const absl::Status status = ps::fuzz::Handler().Pull(request, &response);
  if (!status.ok()) {
    CHECK(absl::IsInvalidArgument(status) ||
          absl::IsFailedPrecondition(status) ||
          absl::IsResourceExhausted(status))
        << status;
    return 0;
  }
  static constexpr int kDims[] = {4, 1};
  size_t floats = 0;
  for (const ps::SparseSegment& seg : request.sparse()) {
    CHECK_LT(seg.table_id(), 2u);
    floats += size_t{seg.num_keys()} * kDims[seg.table_id()];
  }
  CHECK_EQ(response.values().size(), floats * sizeof(float));
  for (size_t i = 0; i < floats; ++i) {
    float v;
    std::memcpy(&v, response.values().data() + i * sizeof(float), sizeof(v));
    CHECK(std::isfinite(v)) << "row value " << i;
  }
  CHECK_EQ(response.dense_size(), request.dense_tables_size());
  CHECK_EQ(response.dense_table_sizes_size(), request.dense_tables_size());
  uint64_t dense = 0;
  for (const ps::DenseSegment& seg : response.dense()) {
    dense += seg.num_values();
  }
  CHECK_EQ(response.dense_values().size(), dense * sizeof(float));
  return 0;
}
