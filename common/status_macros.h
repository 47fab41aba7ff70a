// Tiny stand-ins for absl's status_macros.h, which Debian 12's Abseil lacks.
//
//   RETURN_IF_ERROR(expr);               returns the Status if not ok
//   ASSIGN_OR_RETURN(auto x, StatusOr);  unwraps or returns the Status
#ifndef PS_COMMON_STATUS_MACROS_H_
#define PS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PS_STATUS_CONCAT_INNER_(a, b) a##b
#define PS_STATUS_CONCAT_(a, b) PS_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status ps_status_ = (expr);      \
    if (!ps_status_.ok()) return ps_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr)                                         \
  PS_ASSIGN_OR_RETURN_IMPL_(PS_STATUS_CONCAT_(ps_statusor_, __LINE__), lhs, \
                            expr)

#define PS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

// Marks a Status that is dropped on purpose; greppable.
#define PS_IGNORE_STATUS(expr) static_cast<void>(expr)

#endif  // PS_COMMON_STATUS_MACROS_H_
