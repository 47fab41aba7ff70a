// The cluster identity of a process, from its flags and, where a flag is not
// given, from the environment a cluster manager sets: PS_SERVERS
// ("host:port,..."), PS_NUM_WORKERS and PS_RANK. Used by the main() files;
// the environment comes in through `getenv` so nothing here reads globals.
// Thread-safe.
#ifndef PS_COMMON_CLUSTER_ENV_H_
#define PS_COMMON_CLUSTER_ENV_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "common/config.h"

namespace ps {

struct ClusterFlags {
  std::string servers;  // empty: PS_SERVERS
  int num_workers = 0;  // 0: PS_NUM_WORKERS
  int rank = -1;        // < 0: PS_RANK
};

// `flag` when not empty, else the environment variable `name` when set, else
// "".
std::string FlagOrEnv(const std::string& flag, const char* name,
                      const std::function<const char*(const char*)>& getenv);

// Fills overrides->servers / num_workers and *rank. InvalidArgument naming
// the variable and its value when a number does not parse.
absl::Status ResolveClusterFlags(
    const ClusterFlags& flags,
    const std::function<const char*(const char*)>& getenv,
    ConfigOverrides* overrides, int* rank);

}  // namespace ps

#endif  // PS_COMMON_CLUSTER_ENV_H_
