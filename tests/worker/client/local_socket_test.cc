// The colocated fast path (common/local_socket.h): a server listening on its
// Unix-domain socket beside TCP, a client that reaches it there, and the
// checks on the socket folder and on a socket path already taken.
#include "common/local_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/ps_server.h"
#include "tests/testing/free_port.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::FreePort;
using testing_util::StatusIs;

constexpr int kDim = 2;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// A socket bound to `path`, listening when `listen`; the caller closes it.
int BindSocket(const std::string& path, bool listen) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)),
            0)
      << std::strerror(errno);
  if (listen) {
    EXPECT_EQ(::listen(fd, 4), 0);
  }
  return fd;
}

TEST(LocalSocketTest, PathsNameTheRank) {
  EXPECT_EQ(LocalSocketPath("/tmp/d", 3), "/tmp/d/server_3.sock");
  EXPECT_EQ(LocalSocketAddress("/tmp/d", 0), "unix:/tmp/d/server_0.sock");
}

TEST(LocalSocketTest, FolderMustExistBeAFolderAndKeepPathsShort) {
  testing_util::TempDir temp;
  const std::string& dir = temp.path();
  EXPECT_TRUE(CheckLocalSocketDir("--local_socket_dir", dir, 4).ok());
  EXPECT_THAT(CheckLocalSocketDir("--local_socket_dir", dir + "/nope", 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--local_socket_dir: cannot use folder")));
  const std::string file = dir + "/file";
  std::ofstream(file) << "x";
  EXPECT_THAT(CheckLocalSocketDir("--local_socket_dir", file, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is not a folder")));
  std::string deep = dir + "/" + std::string(90, 'd');
  ASSERT_EQ(::mkdir(deep.c_str(), 0700), 0);
  EXPECT_THAT(CheckLocalSocketDir("--local_socket_dir", deep, 10),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the kernel takes at most 107")));
}

TEST(LocalSocketTest, FolderComesFromTheFlagElseTheEnvironmentAndIsChecked) {
  testing_util::TempDir temp;
  ::unsetenv("PS_LOCAL_SOCKET_DIR");
  EXPECT_EQ(LocalSocketDirFromFlag("", 2).value(), "");  // TCP only
  EXPECT_EQ(LocalSocketDirFromFlag(temp.path(), 2).value(), temp.path());
  ::setenv("PS_LOCAL_SOCKET_DIR", (temp.path() + "/nope").c_str(), 1);
  EXPECT_THAT(LocalSocketDirFromFlag("", 2).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--local_socket_dir: cannot use folder")));
  // The flag wins over the environment.
  EXPECT_EQ(LocalSocketDirFromFlag(temp.path(), 2).value(), temp.path());
  ::unsetenv("PS_LOCAL_SOCKET_DIR");
}

TEST(LocalSocketTest, ClaimRemovesAStaleSocketAndRefusesALiveOneOrAFile) {
  testing_util::TempDir temp;
  const std::string& dir = temp.path();
  const std::string path = LocalSocketPath(dir, 0);
  EXPECT_TRUE(ClaimLocalSocket(path).ok());  // nothing there
  // Left by a server that died: bound, nobody accepting.
  ::close(BindSocket(path, /*listen=*/false));
  ASSERT_TRUE(Exists(path));
  EXPECT_TRUE(ClaimLocalSocket(path).ok());
  EXPECT_FALSE(Exists(path));
  // A live listener keeps its socket.
  const int live = BindSocket(path, /*listen=*/true);
  EXPECT_THAT(ClaimLocalSocket(path),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("another process accepts connections")));
  EXPECT_TRUE(Exists(path));
  ::close(live);
  ::unlink(path.c_str());
  std::ofstream(path) << "not a socket";
  EXPECT_THAT(ClaimLocalSocket(path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is not a socket")));
}

TEST(LocalSocketTest, ClientReachesALoopbackServerThroughItsSocket) {
  testing_util::TempDir temp;
  const std::string& dir = temp.path();
  JobConfig config = SmallJobConfig(1, 1, kDim, 8);
  PsServerOptions server_options;
  server_options.config = config;
  server_options.listen_address = "127.0.0.1:0";
  server_options.local_socket_dir = dir;
  auto server = PsServer::Start(server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(Exists(LocalSocketPath(dir, 0)));

  // The client is told a TCP port nothing listens on: only the socket can
  // answer its calls.
  config.mutable_cluster()->set_servers(0,
                                        absl::StrCat("127.0.0.1:", FreePort()));
  PsClientOptions options = PsClientOptions::FromConfig(config, 0);
  options.connect_timeout_sec = 5;
  options.server_retry_sec = 0;
  options.local_socket_dir = dir;
  auto client = PsClient::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  const std::vector<uint64_t> keys = {1, 2, 3};
  const std::vector<float> grads = {1, 1, 2, 2, 3, 3};
  (*client)->PushAsync(0, kDim, keys, grads, 0, DenseBlocks{0, 8, 1}, {}, 1);
  ASSERT_TRUE((*client)->WaitPushes(0).ok());
  std::vector<float> values(keys.size() * kDim, 0.0f);
  ASSERT_TRUE(
      (*client)->PullSparse(0, kDim, keys, absl::MakeSpan(values), 2).ok());
  // One SGD step of lr 0.5 from zero rows.
  EXPECT_EQ(values, (std::vector<float>{-0.5f, -0.5f, -1, -1, -1.5f, -1.5f}));

  // Without the folder the same client options go to the dead TCP port.
  options.local_socket_dir.clear();
  options.connect_timeout_sec = 1;
  EXPECT_FALSE(PsClient::Connect(options).ok());

  (*server)->Shutdown();
  EXPECT_FALSE(Exists(LocalSocketPath(dir, 0)));  // removed at shutdown
}

TEST(LocalSocketTest, ASecondServerOfTheSameRankDoesNotTakeTheSocket) {
  testing_util::TempDir temp;
  const std::string& dir = temp.path();
  PsServerOptions options;
  options.config = SmallJobConfig(1, 1, kDim, 8);
  options.listen_address = "127.0.0.1:0";
  options.local_socket_dir = dir;
  auto first = PsServer::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = PsServer::Start(options);
  EXPECT_THAT(second.status(), StatusIs(absl::StatusCode::kAlreadyExists,
                                        HasSubstr("server_0.sock")));
  EXPECT_TRUE(Exists(LocalSocketPath(dir, 0)));
}

}  // namespace
}  // namespace ps
