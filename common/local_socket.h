// The colocated fast path: processes of one job on one host talk over
// Unix-domain sockets instead of TCP on loopback, which skips the kernel's
// TCP/IP work (segments, ACKs, the loopback device's softirq) for the same
// gRPC calls, messages and semantics.
//
// A server started with a local socket folder listens on its TCP address
// and also on DIR/server_<rank>.sock; a worker given the same folder
// connects to every server whose address is a loopback one (127.x,
// localhost, [::1]: on this host by its own address) through that socket,
// and to the others over TCP. Operators' tools and the servers' calls to
// each other keep TCP.
//
// Stateless functions; thread-safe.
#ifndef PS_COMMON_LOCAL_SOCKET_H_
#define PS_COMMON_LOCAL_SOCKET_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ps {

// The longest socket path the kernel takes (sun_path holds 108 bytes with
// its terminating NUL).
inline constexpr size_t kMaxLocalSocketPath = 107;

// DIR/server_<rank>.sock.
std::string LocalSocketPath(const std::string& dir, int server_rank);
// "unix:" + LocalSocketPath (a gRPC address).
std::string LocalSocketAddress(const std::string& dir, int server_rank);

// Whether `dir` can hold the sockets of servers 0 .. num_servers - 1: it
// exists, is a folder, and every path fits kMaxLocalSocketPath.
// InvalidArgument naming `flag`, the folder and the problem otherwise.
absl::Status CheckLocalSocketDir(const std::string& flag,
                                 const std::string& dir, int num_servers);

// The folder a process was given with --local_socket_dir (`flag_value`),
// else $PS_LOCAL_SOCKET_DIR, checked by CheckLocalSocketDir for servers
// 0 .. num_servers - 1; "" when neither is set (TCP only).
absl::StatusOr<std::string> LocalSocketDirFromFlag(
    const std::string& flag_value, int num_servers);

// Makes `path` free for a server to listen on: removes a socket file left
// by a server that is gone (nothing accepts on it). AlreadyExists when a
// live process accepts on it (another server of the same rank), and
// FailedPrecondition when it is not a socket; both name the path.
absl::Status ClaimLocalSocket(const std::string& path);

}  // namespace ps

#endif  // PS_COMMON_LOCAL_SOCKET_H_
