#include "common/channel_args.h"

#include <grpc/grpc.h>

#include <algorithm>
#include <cstdint>

namespace ps {

namespace {

int Millis(absl::Duration d) {
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, INT32_MAX));
}

}  // namespace

void SetClientKeepalive(const KeepaliveOptions& options,
                        grpc::ChannelArguments* args) {
  args->SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options.time));
  args->SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options.timeout));
  args->SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // 0: no limit. gRPC's default (2) stops pinging an idle connection after
  // two pings, which defeats keepalive between calls.
  args->SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
}

void SetServerKeepalive(const KeepaliveOptions& options,
                        grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      Millis(options.time / 2));
}

}  // namespace ps
