// Incarnation ids: a random nonzero 64-bit id that a process (a server's
// state, a worker) picks when it starts, so that peers can tell it from an
// earlier run of the same rank (proto/ps.proto RequestHeader).
// Thread-safe.
#ifndef PS_COMMON_INCARNATION_H_
#define PS_COMMON_INCARNATION_H_

#include <cstdint>
#include <random>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ps {

// A new id: entropy mixed with the time, never 0 (0 means "unknown").
inline uint64_t NewIncarnationId() {
  std::random_device entropy;
  uint64_t id = 0;
  while (id == 0) {
    id = (uint64_t{entropy()} << 32) ^ entropy() ^
         static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  }
  return id;
}

}  // namespace ps

#endif  // PS_COMMON_INCARNATION_H_
