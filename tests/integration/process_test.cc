// The real binaries as separate processes on loopback: ps_datagen,
// ps_server x2 and ps_worker x2 from one config file, as the local launcher
// runs them; how they fail on a bad config and on bad data; and a job whose
// worker, then server, is killed with SIGKILL and restarted with --resume.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/free_port.h"
#include "tests/testing/temp_dir.h"

extern char** environ;

namespace ps {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::FreePort;
using testing_util::ReadFile;
using testing_util::TempDir;

// The build folder: this test runs from <build>/tests/.
std::string BinDir() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  std::string path(self, n);
  for (int i = 0; i < 2; ++i) path = path.substr(0, path.rfind('/'));
  return path;
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
  }

  std::string Bin(const std::string& name) const {
    return BinDir() +
           (name == "ps_server"   ? "/server/"
            : name == "ps_worker" ? "/worker/"
                                  : "/tools/") +
           name;
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
      server_pids.push_back(Spawn(
          {Bin("ps_server"), "--config", config_path, "--rank", absl::StrCat(i),
           "--servers", list, "--num_workers", absl::StrCat(workers)},
          absl::StrCat(dir_, "/server_", i, ".log")));
    }
    std::vector<pid_t> worker_pids;
    for (int j = 0; j < workers; ++j) {
      worker_pids.push_back(Spawn(
          {Bin("ps_worker"), "--config", config_path, "--rank", absl::StrCat(j),
           "--servers", list, "--num_workers", absl::StrCat(workers),
           "--result_file", absl::StrCat(dir_, "/worker_", j, ".json")},
          absl::StrCat(dir_, "/worker_", j, ".log")));
    }
    std::vector<int> codes;
    for (pid_t pid : worker_pids)
      codes.push_back(WaitExit(pid, absl::Minutes(3)));
    servers_exit_.clear();
    for (pid_t pid : server_pids) {
      servers_exit_.push_back(WaitExit(pid, absl::Seconds(20)));
    }
    return codes;
  }

  TempDir temp_dir_;
  const std::string dir_ = temp_dir_.path();
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
  const std::string config = temp_dir_.Write("job.pbtxt", kJob);
  pid_t gen =
      Spawn({Bin("ps_datagen"), "--config", config}, dir_ + "/datagen.log");
  ASSERT_EQ(WaitExit(gen, absl::Minutes(1)), 0)
      << ReadFile(dir_ + "/datagen.log");
  EXPECT_THAT(ReadFile(dir_ + "/data/oracle.json"), HasSubstr("oracle_auc"));

  std::vector<int> codes = RunJob(config, 2, 2);
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(codes[j], 0) << ReadFile(
        absl::StrCat(dir_, "/worker_", j, ".log"));
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
  std::string job = kJob;
  job.replace(job.find("batch_size"), 10, "batchsize");
  const std::string config = temp_dir_.Write("job.pbtxt", job);
  pid_t pid = Spawn({Bin("ps_server"), "--config", config, "--rank", "0",
                     "--servers", "127.0.0.1:1"},
                    dir_ + "/server.log");
  EXPECT_EQ(WaitExit(pid, absl::Seconds(20)), 2);
  std::string log = ReadFile(dir_ + "/server.log");
  EXPECT_THAT(log, HasSubstr(config + ":6:"));
  EXPECT_THAT(log, HasSubstr("no field named \"batchsize\""));
}

// ps_datagen answers bad usage and a bad config as the other binaries do:
// exit status 2 and a message naming the problem; a generator that cannot
// write its files exits 1.
// common/cli.h: every binary prints its version and build, lists its own
// flags (not the libraries') for --help and --helpshort, exits 0 after
// them and 2 on a flag it does not know; ps_ctl reads PS_SERVERS.
TEST_F(ProcessTest, EveryBinaryFollowsTheCommandLineConventions) {
  const std::string log = dir_ + "/cli.log";
  const std::pair<const char*, const char*> binaries[] = {
      {"ps_server", "--rank"},
      {"ps_worker", "--rank"},
      {"ps_datagen", "--data_dir"},
      {"ps_ctl", "--servers"}};
  for (const auto& [name, own_flag] : binaries) {
    SCOPED_TRACE(name);
    EXPECT_EQ(WaitExit(Spawn({Bin(name), "--version"}, log), absl::Seconds(20)),
              0);
    EXPECT_THAT(ReadFile(log), ::testing::MatchesRegex(absl::StrCat(
                                   name,
                                   " [0-9]+\\.[0-9]+\\.[0-9]+ \\(git [^,]+, .+ "
                                   "build\\)\n")));
    for (const char* help : {"--help", "--helpshort"}) {
      EXPECT_EQ(WaitExit(Spawn({Bin(name), help}, log), absl::Seconds(20)), 0)
          << help;
      const std::string text = ReadFile(log);
      EXPECT_THAT(text, HasSubstr(own_flag)) << help;
      EXPECT_THAT(text, HasSubstr("exit codes: 0 ok, 1 failure, 2")) << help;
      // Flags of RocksDB's tools and of glog stay out of it.
      EXPECT_THAT(text, Not(HasSubstr("block_cache_trace"))) << help;
      EXPECT_THAT(text, Not(HasSubstr("alsologtostderr"))) << help;
      EXPECT_THAT(text, Not(HasSubstr("No modules matched"))) << help;
    }
    EXPECT_EQ(
        WaitExit(Spawn({Bin(name), "--no_such_flag"}, log), absl::Seconds(20)),
        2);
    EXPECT_THAT(ReadFile(log), HasSubstr("no_such_flag"));
  }
  EXPECT_EQ(
      WaitExit(Spawn({Bin("ps_server"), "--rank=abc"}, log), absl::Seconds(20)),
      2);
  EXPECT_THAT(ReadFile(log), HasSubstr("'abc'"));

  // ps_ctl without --servers takes PS_SERVERS: a server that is not there
  // is a failure naming it (1), not a usage error (2).
  ASSERT_EQ(setenv("PS_SERVERS", "127.0.0.1:1", 1), 0);
  const int rc =
      WaitExit(Spawn({Bin("ps_ctl"), "--timeout_ms", "2000", "health"}, log),
               absl::Seconds(20));
  unsetenv("PS_SERVERS");
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(ReadFile(log), HasSubstr("server 0 (127.0.0.1:1)"));
  EXPECT_EQ(WaitExit(Spawn({Bin("ps_ctl"), "health"}, log), absl::Seconds(20)),
            2);
  EXPECT_THAT(ReadFile(log), HasSubstr("--servers (or PS_SERVERS)"));
}

TEST_F(ProcessTest, DatagenExitsTwoOnBadUsageAndOneWhenGenerationFails) {
  const std::string log = dir_ + "/datagen.log";
  EXPECT_EQ(WaitExit(Spawn({Bin("ps_datagen")}, log), absl::Seconds(20)), 2);
  EXPECT_THAT(ReadFile(log), HasSubstr("--config is required"));

  std::string job = kJob;
  job.replace(job.find("batch_size"), 10, "batchsize");
  const std::string bad = temp_dir_.Write("bad.pbtxt", job);
  EXPECT_EQ(WaitExit(Spawn({Bin("ps_datagen"), "--config", bad}, log),
                     absl::Seconds(20)),
            2);
  EXPECT_THAT(ReadFile(log), HasSubstr("no field named \"batchsize\""));

  const std::string plain =
      temp_dir_.Write("plain.pbtxt",
                      "sparse_tables { name: \"e\" dim: 1 }\n"
                      "model { type: LR sparse_table: \"e\" }\n"
                      "data { train_files: \"x.tsv\" }\n");
  EXPECT_EQ(WaitExit(Spawn({Bin("ps_datagen"), "--config", plain}, log),
                     absl::Seconds(20)),
            2);
  EXPECT_THAT(ReadFile(log), HasSubstr("data.generate is not set"));

  // A data folder under a regular file cannot be created.
  const std::string file = temp_dir_.Write("not_a_dir", "x");
  const std::string gen =
      temp_dir_.Write("gen.pbtxt",
                      "sparse_tables { name: \"e\" dim: 1 }\n"
                      "model { type: LR sparse_table: \"e\" }\n"
                      "data { generate { output_dir: \"" +
                          file + "/sub\" train_rows: 10 eval_rows: 10 } }\n");
  EXPECT_EQ(WaitExit(Spawn({Bin("ps_datagen"), "--config", gen}, log),
                     absl::Seconds(20)),
            1);
  EXPECT_THAT(ReadFile(log), HasSubstr(file));
}

// Worker 1 of 2 reads only malformed lines (its byte range of the file)
// with max_bad_line_ratio 0: it stops, naming the file and line, and exits
// non-zero; worker 0 succeeds; the coordinator still ends the job, and both
// servers exit 3 (the job failed), server 0's log naming the failed worker.
TEST_F(ProcessTest, AFailedWorkerFailsTheJobAndEveryServerExitsNonZero) {
  // 1500 good lines, then 1500 bad ones of the same length (49 bytes), so
  // the byte ranges of 2 workers split the file between them.
  std::string data;
  for (int i = 0; i < 1500; ++i) {
    // label, 13 missing integers, C1 set, C2..C26 missing.
    data += absl::StrCat(i % 2, std::string(13, '\t'), "\t1a2b3c4d",
                         std::string(25, '\t'), "\n");
  }
  const std::string bad = "garbage line" + std::string(36, 'x') + "\n";
  ASSERT_EQ(bad.size(), data.size() / 1500);
  for (int i = 0; i < 1500; ++i) data += bad;
  temp_dir_.Write("train.tsv", data);
  const std::string config = temp_dir_.Write("job.pbtxt", R"pb(
cluster { num_workers: 2 }
sparse_tables { name: "emb" dim: 4 }
model { type: DNN sparse_table: "emb" }
data { train_files: "train.tsv" max_bad_line_ratio: 0 }
)pb");
  std::vector<int> codes = RunJob(config, 2, 2);
  const std::string worker1 = ReadFile(dir_ + "/worker_1.log");
  EXPECT_EQ(codes[0], 0) << ReadFile(dir_ + "/worker_0.log");
  EXPECT_EQ(codes[1], 1) << worker1;
  EXPECT_THAT(worker1, HasSubstr("worker 1 failed: "));
  EXPECT_THAT(worker1, HasSubstr(dir_ + "/train.tsv:1501"));
  EXPECT_THAT(worker1, HasSubstr("max_bad_line_ratio 0"));
  // The worker told the coordinator, which stopped both servers with the
  // job's outcome.
  ASSERT_EQ(servers_exit_.size(), 2u);
  const std::string server0 = ReadFile(dir_ + "/server_0.log");
  const std::string server1 = ReadFile(dir_ + "/server_1.log");
  EXPECT_EQ(servers_exit_[0], 3) << server0;
  EXPECT_EQ(servers_exit_[1], 3) << server1;
  EXPECT_THAT(server0, HasSubstr("job failed: worker 1: too many malformed "
                                 "lines"));
  EXPECT_THAT(server0, HasSubstr(dir_ + "/train.tsv:1501"));
  EXPECT_THAT(server0, HasSubstr("(1 of 2 workers failed)"));
  EXPECT_THAT(server1, HasSubstr("server 1 stopped: job failed: worker 1: "));
  EXPECT_THAT(server1, Not(HasSubstr("stopped cleanly")));
}

// Occurrences of `what` in the file at `path`.
int CountIn(const std::string& path, const std::string& what) {
  const std::string text = ReadFile(path);
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// Blocks until `path` holds `what` at least `times` times; false after
// `timeout`.
bool WaitFor(const std::string& path, const std::string& what, int times,
             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (CountIn(path, what) >= times) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

constexpr char kCheckpointedJob[] = R"pb(
cluster {
  num_workers: 2
  heartbeat_ms: 200
  worker_timeout_ms: 1500
  server_retry_sec: 60
}
sparse_tables { name: "emb" dim: 8 }
model { type: DNN sparse_table: "emb" hidden_units: 32 }
data {
  batch_size: 256
  generate {
    output_dir: "data"
    seed: 3
    train_rows: 160000
    eval_rows: 20000
    vocab_size: 400
    num_interactions: 0
  }
}
training { log_every_steps: 50 }
checkpoint { dir: "ckpt" every_steps: 40 keep: 3 }
)pb";

// A job's servers and workers as processes; one of each can be killed and
// started again.
struct Job {
  std::vector<std::string> endpoints;
  std::vector<pid_t> servers, workers;
};

TEST_F(ProcessTest, KilledWorkerAndServerResumeAndTheJobReachesTheSameAuc) {
  const std::string config = temp_dir_.Write("job.pbtxt", kCheckpointedJob);
  pid_t gen =
      Spawn({Bin("ps_datagen"), "--config", config}, dir_ + "/datagen.log");
  ASSERT_EQ(WaitExit(gen, absl::Minutes(1)), 0)
      << ReadFile(dir_ + "/datagen.log");

  auto log = [&](const std::string& run, const std::string& who) {
    return absl::StrCat(dir_, "/", run, "_", who, ".log");
  };
  auto start_server = [&](Job& job, const std::string& run, int i,
                          bool resume) {
    std::vector<std::string> argv = {Bin("ps_server"),
                                     "--config",
                                     config,
                                     "--rank",
                                     absl::StrCat(i),
                                     "--servers",
                                     absl::StrJoin(job.endpoints, ","),
                                     "--checkpoint_dir",
                                     absl::StrCat(dir_, "/ckpt-", run)};
    if (resume) argv.push_back("--resume");
    // A restarted server appends to its own log.
    return Spawn(argv,
                 log(run, absl::StrCat("server_", i, resume ? "_again" : "")));
  };
  auto start_worker = [&](Job& job, const std::string& run, int j,
                          bool resume) {
    std::vector<std::string> argv = {
        Bin("ps_worker"),
        "--config",
        config,
        "--rank",
        absl::StrCat(j),
        "--servers",
        absl::StrJoin(job.endpoints, ","),
        "--result_file",
        absl::StrCat(dir_, "/", run, "_worker_", j, ".json")};
    if (resume) argv.push_back("--resume");
    return Spawn(argv,
                 log(run, absl::StrCat("worker_", j, resume ? "_again" : "")));
  };
  auto start = [&](const std::string& run) {
    Job job;
    for (int i = 0; i < 2; ++i) {
      job.endpoints.push_back(absl::StrCat("127.0.0.1:", FreePort()));
    }
    for (int i = 0; i < 2; ++i)
      job.servers.push_back(start_server(job, run, i, false));
    for (int j = 0; j < 2; ++j)
      job.workers.push_back(start_worker(job, run, j, false));
    return job;
  };
  auto finish = [&](Job& job, const std::string& run) {
    for (int j = 0; j < 2; ++j) {
      EXPECT_EQ(WaitExit(job.workers[j], absl::Minutes(3)), 0)
          << run << " worker " << j;
    }
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(WaitExit(job.servers[i], absl::Seconds(30)), 0)
          << run << " server " << i;
    }
    const std::string result =
        ReadFile(absl::StrCat(dir_, "/", run, "_worker_0.json"));
    const size_t at = result.find("\"eval_auc\": ");
    EXPECT_NE(at, std::string::npos) << result;
    return at == std::string::npos
               ? 0.0
               : std::strtod(result.c_str() + at + 12, nullptr);
  };

  Job base = start("whole");
  const double whole_auc = finish(base, "whole");
  ASSERT_GT(whole_auc, 0.7);

  // Worker 1 killed after a checkpoint and started again: it continues from
  // its checkpointed position while worker 0 trains on.
  Job w = start("worker_kill");
  ASSERT_TRUE(WaitFor(log("worker_kill", "server_0"), "checkpoint round", 2,
                      absl::Minutes(1)))
      << ReadFile(log("worker_kill", "server_0"));
  ASSERT_TRUE(WaitFor(log("worker_kill", "server_0"), " complete: ", 1,
                      absl::Minutes(1)));
  kill(w.workers[1], SIGKILL);
  waitpid(w.workers[1], nullptr, 0);
  absl::SleepFor(absl::Seconds(2));  // the coordinator notices it is gone
  w.workers[1] = start_worker(w, "worker_kill", 1, true);
  const double worker_kill_auc = finish(w, "worker_kill");
  EXPECT_THAT(ReadFile(log("worker_kill", "worker_1_again")),
              HasSubstr("resuming from"));
  EXPECT_THAT(ReadFile(log("worker_kill", "server_0")),
              HasSubstr("registered again (restarted)"));
  EXPECT_NEAR(worker_kill_auc, whole_auc, 0.005);

  // Server 1 killed after a checkpoint: workers retry it, naming it, until
  // it is back; its new incarnation makes the whole job roll back to the
  // checkpoint (every server reloads it, every worker rewinds to its
  // position there), and the job finishes.
  // Starts run `run`, kills server `i` once the first checkpoint is
  // complete, and starts it again (with or without --resume).
  auto kill_server_after_checkpoint = [&](const std::string& run, int i,
                                          bool resume) {
    Job job = start(run);
    EXPECT_TRUE(
        WaitFor(log(run, "server_0"), " complete: ", 1, absl::Minutes(1)))
        << ReadFile(log(run, "server_0"));
    kill(job.servers[i], SIGKILL);
    waitpid(job.servers[i], nullptr, 0);
    job.servers[i] = start_server(job, run, i, resume);
    return job;
  };
  Job s = kill_server_after_checkpoint("server_kill", 1, true);
  const double server_kill_auc = finish(s, "server_kill");
  EXPECT_THAT(ReadFile(log("server_kill", "server_1_again")),
              HasSubstr("resuming from"));
  const std::string w0 = ReadFile(log("server_kill", "worker_0")) +
                         ReadFile(log("server_kill", "worker_1"));
  EXPECT_THAT(w0, HasSubstr("does not answer"));
  EXPECT_THAT(w0, HasSubstr(s.endpoints[1]));
  EXPECT_THAT(w0, HasSubstr(": starting over (generation "));
  EXPECT_THAT(ReadFile(log("server_kill", "server_0")),
              HasSubstr("job rolled back to "));
  EXPECT_NEAR(server_kill_auc, whole_auc, 0.005);

  // Restarted without --resume (as a pod restarts), its shard would come
  // back fresh: the job rolls back to the checkpoint all the same.
  Job f = kill_server_after_checkpoint("server_fresh", 1, false);
  const double server_fresh_auc = finish(f, "server_fresh");
  // (Its log is server_1's, started again.)
  EXPECT_THAT(ReadFile(log("server_fresh", "server_1")),
              Not(HasSubstr("resuming from")));
  EXPECT_THAT(ReadFile(log("server_fresh", "server_1")),
              HasSubstr("server 1: reloaded "));
  EXPECT_NEAR(server_fresh_auc, whole_auc, 0.005);

  // Server 0, the coordinator, killed after a checkpoint and restarted with
  // --resume: its new run refuses the workers' calls of the old one, the
  // job rolls back to the checkpoint, and finishes.
  Job c = kill_server_after_checkpoint("coordinator_kill", 0, true);
  const double coordinator_kill_auc = finish(c, "coordinator_kill");
  EXPECT_THAT(ReadFile(log("coordinator_kill", "server_0_again")),
              HasSubstr("job rolled back to "));
  EXPECT_NEAR(coordinator_kill_auc, whole_auc, 0.005);
}

}  // namespace
}  // namespace ps
