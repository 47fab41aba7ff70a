// A free TCP port on loopback, for tests that must name a server's address
// before it starts (a client retrying a server that comes back on the same
// port; a job's --servers list given to processes started later).
#ifndef PS_TESTS_TESTING_FREE_PORT_H_
#define PS_TESTS_TESTING_FREE_PORT_H_

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace ps {
namespace testing_util {

// A port on 127.0.0.1 that nothing listens on now: bound as port 0, read
// back and closed again. Another process may take it before the caller
// binds it, which is possible but unlikely. On failure the test fails and
// the result is 0. Thread-safe.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    ADD_FAILURE() << "FreePort: socket: " << strerror(errno);
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok =
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (!ok) ADD_FAILURE() << "FreePort: bind: " << strerror(errno);
  close(fd);
  return ok ? ntohs(addr.sin_port) : 0;
}

}  // namespace testing_util
}  // namespace ps

#endif  // PS_TESTS_TESTING_FREE_PORT_H_
