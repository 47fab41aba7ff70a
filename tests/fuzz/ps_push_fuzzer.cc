// Fuzz target: PsHandler::Push (server/service/ps_handler.h), with the
// input as a serialized PushRequest, against the server of handler_fuzz.h.
//
// A push must be applied or refused with InvalidArgument,
// FailedPrecondition or ResourceExhausted. Exactly once: the same request
// sent again after it was applied must be acknowledged as a duplicate, and
// after it was refused must be refused again. Then every row of the tables
// must still be finite (a pull of the pushed keys, and the dense table).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "proto/ps.pb.h"
#include "tests/fuzz/handler_fuzz.h"

namespace {

void CheckFiniteBytes(const std::string& bytes, const char* what) {
  for (size_t i = 0; i + sizeof(float) <= bytes.size(); i += sizeof(float)) {
    float v;
    std::memcpy(&v, bytes.data() + i, sizeof(v));
    CHECK(std::isfinite(v)) << what << " value " << i / sizeof(float);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  ps::fuzz::Handler();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::PushRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return -1;
  ps::fuzz::ResetHandler();
  ps::PsHandler& handler = ps::fuzz::Handler();
  ps::PushResponse response;
  const absl::Status status = handler.Push(request, &response);
  ps::PushResponse again;
  const absl::Status repeat = handler.Push(request, &again);
  if (!status.ok()) {
    CHECK(absl::IsInvalidArgument(status) ||
          absl::IsFailedPrecondition(status) ||
          absl::IsResourceExhausted(status))
        << status;
    CHECK(!repeat.ok()) << "refused once (" << status << "), then applied";
    return 0;
  }
  CHECK(!response.duplicate()) << "a fresh server called a push a repeat";
  CHECK(repeat.ok()) << repeat;
  CHECK(again.duplicate()) << "a push applied twice";

  ps::PullRequest pull;
  pull.set_keys(request.keys());
  *pull.mutable_sparse() = request.sparse();
  pull.add_dense_tables(0);
  ps::PullResponse pulled;
  const absl::Status read = handler.Pull(pull, &pulled);
  CHECK(read.ok()) << "a push was applied, a pull of its keys fails: " << read;
  // Steps are bounded and updates below 2^50 (request_bounds_test): no
  // push, however wild its step or finite gradients, makes a row infinite
  // (corpus: regress-push-max-step, regress-push-inf).
  CheckFiniteBytes(pulled.values(), "row");
  CheckFiniteBytes(pulled.dense_values(), "dense");
  return 0;
}
