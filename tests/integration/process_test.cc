// The real binaries as separate processes on loopback: ps_datagen,
// ps_server x2 and ps_worker x2 from one config file, as the local launcher
// runs them; plus how they fail on a bad config and on bad data.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace ps {
namespace {

using ::testing::HasSubstr;

// The build folder: this test runs from <build>/tests/.
std::string BinDir() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  std::string path(self, n);
  for (int i = 0; i < 2; ++i) path = path.substr(0, path.rfind('/'));
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// A free loopback port (closed again; a race with other processes is
// possible but unlikely).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Starts `argv` with stdout and stderr to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  return rc == 0 ? pid : -1;
}

// Exit code of `pid`, or -1 (after killing it) when it runs past `timeout`.
int WaitExit(pid_t pid, absl::Duration timeout) {
  if (pid <= 0) return -1;
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(Bin("ps_server").c_str(), X_OK), 0) << Bin("ps_server");
    dir_ = absl::StrCat(::testing::TempDir(), "/process_test_",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    std::string cmd = "rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  std::string Bin(const std::string& name) const {
    return BinDir() + (name == "ps_server" ? "/server/" : "/worker/") + name;
  }

  // Servers and workers of `config_path`; returns the workers' exit codes
  // and sets servers_exit_.
  std::vector<int> RunJob(const std::string& config_path, int servers,
                          int workers) {
    std::vector<std::string> endpoints;
    for (int i = 0; i < servers; ++i) {
      endpoints.push_back(absl::StrCat("127.0.0.1:", FreePort()));
    }
    std::string list = absl::StrJoin(endpoints, ",");
    std::vector<pid_t> server_pids;
    for (int i = 0; i < servers; ++i) {
      server_pids.push_back(
          Spawn({Bin("ps_server"), "--config", config_path, "--rank",
                 absl::StrCat(i), "--servers", list, "--num_workers",
                 absl::StrCat(workers)},
                absl::StrCat(dir_, "/server_", i, ".log")));
    }
    std::vector<pid_t> worker_pids;
    for (int j = 0; j < workers; ++j) {
      worker_pids.push_back(Spawn(
          {Bin("ps_worker"), "--config", config_path, "--rank",
           absl::StrCat(j), "--servers", list, "--num_workers",
           absl::StrCat(workers), "--result_file",
           absl::StrCat(dir_, "/worker_", j, ".json")},
          absl::StrCat(dir_, "/worker_", j, ".log")));
    }
    std::vector<int> codes;
    for (pid_t pid : worker_pids) codes.push_back(WaitExit(pid, absl::Minutes(3)));
    servers_exit_.clear();
    for (pid_t pid : server_pids) {
      servers_exit_.push_back(WaitExit(pid, absl::Seconds(20)));
    }
    return codes;
  }

  std::string dir_;
  std::vector<int> servers_exit_;
};

constexpr char kJob[] = R"pb(
cluster { num_workers: 2 }
sparse_tables { name: "emb" dim: 4 }
model { type: DNN sparse_table: "emb" hidden_units: 16 }
data {
  batch_size: 256
  generate { output_dir: "data" train_rows: 40000 eval_rows: 5000 }
}
training { log_every_steps: 50 }
)pb";

TEST_F(ProcessTest, GeneratesTrainsEvaluatesAndStopsCleanly) {
  const std::string config = dir_ + "/job.pbtxt";
  WriteFile(config, kJob);
  pid_t gen = Spawn({Bin("ps_datagen"), "--config", config},
                    dir_ + "/datagen.log");
  ASSERT_EQ(WaitExit(gen, absl::Minutes(1)), 0) << ReadFile(dir_ + "/datagen.log");
  EXPECT_THAT(ReadFile(dir_ + "/data/oracle.json"), HasSubstr("oracle_auc"));

  std::vector<int> codes = RunJob(config, 2, 2);
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(codes[j], 0) << ReadFile(absl::StrCat(dir_, "/worker_", j, ".log"));
  }
  // The coordinator stopped both servers once the workers finished.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(servers_exit_[i], 0)
        << ReadFile(absl::StrCat(dir_, "/server_", i, ".log"));
    EXPECT_THAT(ReadFile(absl::StrCat(dir_, "/server_", i, ".log")),
                HasSubstr("stopped cleanly"));
  }
  std::string result = ReadFile(dir_ + "/worker_0.json");
  EXPECT_THAT(result, HasSubstr("\"eval_examples\": 5000"));
  EXPECT_THAT(ReadFile(dir_ + "/worker_1.json"), HasSubstr("\"examples\": "));
}

TEST_F(ProcessTest, BadConfigIsRefusedWithFileLineAndField) {
  const std::string config = dir_ + "/job.pbtxt";
  std::string job = kJob;
  job.replace(job.find("batch_size"), 10, "batchsize");
  WriteFile(config, job);
  pid_t pid = Spawn({Bin("ps_server"), "--config", config, "--rank", "0",
                     "--servers", "127.0.0.1:1"},
                    dir_ + "/server.log");
  EXPECT_EQ(WaitExit(pid, absl::Seconds(20)), 2);
  std::string log = ReadFile(dir_ + "/server.log");
  EXPECT_THAT(log, HasSubstr(config + ":6:"));
  EXPECT_THAT(log, HasSubstr("no field named \"batchsize\""));
}

TEST_F(ProcessTest, TooManyBadLinesStopTheWorkerAndTheJob) {
  std::string data;
  for (int i = 0; i < 3000; ++i) {
    if (i % 10 == 3) {
      data += "garbage line\n";
    } else {
      // label, 13 missing integers, C1 set, C2..C26 missing.
      data += absl::StrCat(i % 2, std::string(13, '\t'), "\t1a2b3c4d",
                           std::string(25, '\t'), "\n");
    }
  }
  WriteFile(dir_ + "/train.tsv", data);
  const std::string config = dir_ + "/job.pbtxt";
  WriteFile(config, R"pb(
cluster { num_workers: 1 }
sparse_tables { name: "emb" dim: 4 }
model { type: DNN sparse_table: "emb" }
data { train_files: "train.tsv" max_bad_line_ratio: 0.05 }
)pb");
  std::vector<int> codes = RunJob(config, 1, 1);
  EXPECT_EQ(codes[0], 1);
  std::string log = ReadFile(dir_ + "/worker_0.log");
  EXPECT_THAT(log, HasSubstr(dir_ + "/train.tsv:4"));
  EXPECT_THAT(log, HasSubstr("0.05"));
  // The worker told the coordinator, which stopped the server.
  EXPECT_EQ(servers_exit_[0], 0) << ReadFile(dir_ + "/server_0.log");
}

}  // namespace
}  // namespace ps
