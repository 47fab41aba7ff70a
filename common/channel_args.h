// gRPC keepalive for every connection of a job: the arguments each client
// channel sets (RpcSecurity::Channel applies them to every channel it makes)
// and the matching policy each server sets (PsServer), so that the clients'
// pings are accepted instead of being answered with GOAWAY "too_many_pings".
//
// Why: without keepalive a connection to a host that stopped answering (a
// SIGSTOPped server, a partition, a powered-off machine) looks healthy until
// TCP gives up, minutes later; every call on it waits for its deadline. With
// keepalive the channel notices within time + timeout and reconnects, so
// calls fail fast with UNAVAILABLE (which workers retry).
//
// Stateless functions; thread-safe.
#ifndef PS_COMMON_CHANNEL_ARGS_H_
#define PS_COMMON_CHANNEL_ARGS_H_

#include <grpcpp/server_builder.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/time/time.h"

namespace ps {

struct KeepaliveOptions {
  // A client pings a connection idle for this long, with or without calls
  // in flight. Short enough that a dead peer is noticed well inside
  // rpc_timeout_ms (60 s), long enough that the pings cost nothing (one
  // HTTP/2 frame each way). Default: 10 s.
  absl::Duration time = absl::Seconds(10);
  // A ping not acknowledged within this long closes the connection (calls on
  // it fail with UNAVAILABLE). Generous for a loaded server, whose gRPC
  // threads answer pings even while handlers are busy. Default: 10 s.
  absl::Duration timeout = absl::Seconds(10);
};

// Sets on `args` keepalive pings every options.time, timing out after
// options.timeout, also while no call is in flight (a worker parked between
// calls, ps_ctl's idle channel), and with no limit on pings between data
// frames. REQUIRES: `args` does not set these arguments already.
void SetClientKeepalive(const KeepaliveOptions& options,
                        grpc::ChannelArguments* args);

// Sets on `builder` the policy that accepts the pings of clients configured
// with the same `options`: pings without calls are permitted, and pings as
// often as every options.time / 2 (half, so that timer jitter never counts
// as abuse) are not "too many".
void SetServerKeepalive(const KeepaliveOptions& options,
                        grpc::ServerBuilder* builder);

}  // namespace ps

#endif  // PS_COMMON_CHANNEL_ARGS_H_
