#include "common/local_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/cluster_env.h"

namespace ps {

std::string LocalSocketPath(const std::string& dir, int server_rank) {
  return absl::StrCat(dir, "/server_", server_rank, ".sock");
}

std::string LocalSocketAddress(const std::string& dir, int server_rank) {
  return absl::StrCat("unix:", LocalSocketPath(dir, server_rank));
}

absl::Status CheckLocalSocketDir(const std::string& flag,
                                 const std::string& dir, int num_servers) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": cannot use folder '", dir, "': ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", dir, "' is not a folder"));
  }
  const std::string longest = LocalSocketPath(dir, num_servers - 1);
  if (longest.size() > kMaxLocalSocketPath) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": the socket path '", longest, "' has ", longest.size(),
        " bytes; the kernel takes at most ", kMaxLocalSocketPath,
        " (use a shorter folder, such as one made by mktemp -d)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LocalSocketDirFromFlag(
    const std::string& flag_value, int num_servers) {
  const std::string dir =
      FlagOrEnv(flag_value, "PS_LOCAL_SOCKET_DIR", std::getenv);
  if (!dir.empty()) {
    absl::Status usable =
        CheckLocalSocketDir("--local_socket_dir", dir, num_servers);
    if (!usable.ok()) return usable;
  }
  return dir;
}

absl::Status ClaimLocalSocket(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot use socket path '", path, "': ", std::strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' exists and is not a socket: not removing it"));
  }
  if (path.size() > kMaxLocalSocketPath) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket path '", path, "' is too long"));
  }
  // Someone accepting on it: a server of the same rank still running.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket(): ", std::strerror(errno)));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr),
                              sizeof(addr)) == 0;
  ::close(fd);
  if (live) {
    return absl::AlreadyExistsError(
        absl::StrCat("another process accepts connections on '", path,
                     "' (a server of the same rank still running?)"));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot remove the stale socket '", path, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace ps
