#include "common/cluster_env.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ps {

namespace {

absl::Status IntFromEnv(const std::function<const char*(const char*)>& getenv,
                        const char* name, int* out) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return absl::OkStatus();
  if (!absl::SimpleAtoi(v, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "='", v, "' is not a number"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FlagOrEnv(const std::string& flag, const char* name,
                      const std::function<const char*(const char*)>& getenv) {
  if (!flag.empty()) return flag;
  const char* v = getenv(name);
  return v == nullptr ? "" : v;
}

absl::Status ResolveClusterFlags(
    const ClusterFlags& flags,
    const std::function<const char*(const char*)>& getenv,
    ConfigOverrides* overrides, int* rank) {
  overrides->servers =
      SplitEndpoints(FlagOrEnv(flags.servers, "PS_SERVERS", getenv));
  overrides->num_workers = flags.num_workers;
  if (overrides->num_workers == 0) {
    absl::Status s =
        IntFromEnv(getenv, "PS_NUM_WORKERS", &overrides->num_workers);
    if (!s.ok()) return s;
  }
  *rank = flags.rank;
  if (*rank < 0) return IntFromEnv(getenv, "PS_RANK", rank);
  return absl::OkStatus();
}

}  // namespace ps
