// Packing of keys and floats into the `bytes` fields of ps.proto.
//
// The wire format is little-endian; on little-endian hosts (all we build
// for) packing is a memcpy. Unpack functions check sizes and return
// InvalidArgument naming `what` on a mismatch.
#ifndef PS_COMMON_PACKING_H_
#define PS_COMMON_PACKING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/base/config.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

#ifndef ABSL_IS_LITTLE_ENDIAN
#error "the wire format assumes a little-endian host"
#endif

namespace ps {

template <typename T>
void PackTo(absl::Span<const T> values, std::string* out) {
  out->resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out->data(), values.data(), out->size());
}

template <typename T>
std::string Pack(absl::Span<const T> values) {
  std::string out;
  PackTo(values, &out);
  return out;
}

// A read-only view of packed values; valid while `bytes` lives.
// Returns InvalidArgument when the size is not a multiple of sizeof(T).
template <typename T>
absl::StatusOr<absl::Span<const T>> ViewPacked(const std::string& bytes,
                                               absl::string_view what) {
  if (bytes.size() % sizeof(T) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", bytes.size(), " bytes is not a multiple of ", sizeof(T)));
  }
  // std::string storage is suitably aligned for 8-byte types (operator new).
  return absl::Span<const T>(reinterpret_cast<const T*>(bytes.data()),
                             bytes.size() / sizeof(T));
}

}  // namespace ps

#endif  // PS_COMMON_PACKING_H_
