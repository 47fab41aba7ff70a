// The one place absl::Status and grpc::Status are converted. Used only by the
// service layer (server/service/ps_service.cc,
// server/coordinator/coordinator.cc) and the RPC client
// (worker/client/ps_client.cc). The canonical codes map 1:1.
#ifndef PS_COMMON_GRPC_STATUS_H_
#define PS_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ps {

grpc::Status ToGrpcStatus(const absl::Status& status);

// `peer` names the other end ("server 1 (127.0.0.1:5000)") and is prefixed to
// the message so errors say which peer failed.
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view peer,
                            absl::string_view method);

}  // namespace ps

#endif  // PS_COMMON_GRPC_STATUS_H_
