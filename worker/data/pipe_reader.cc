#include "worker/data/pipe_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

extern char** environ;

namespace ps {
namespace {

// How long a command gets to exit after SIGTERM before SIGKILL.
constexpr auto kTermGrace = std::chrono::seconds(1);

absl::Status SpawnError(absl::string_view what, int err,
                        absl::string_view path) {
  return absl::InternalError(absl::StrCat("cannot start input command '",
                                          PipeCommand(path), "' (", what,
                                          "): ", strerror(err)));
}

// Closes both ends of a pipe (those not -1).
void ClosePipe(int fds[2]) {
  for (int i = 0; i < 2; ++i) {
    if (fds[i] >= 0) close(fds[i]);
    fds[i] = -1;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PipeLineSource>> PipeLineSource::Open(
    const std::string& path, std::vector<char>* buffer, int64_t max_line_bytes,
    int worker_rank, int num_workers) {
  if (!HasPipeCommand(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", path, "' is not a command: write pipe:COMMAND"));
  }
  int fds[2] = {-1, -1};
  if (pipe2(fds, O_CLOEXEC) != 0) return SpawnError("pipe", errno, path);

  // The environment: the worker's, plus its rank and count.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (absl::StartsWith(*e, "PS_PIPE_WORKER_RANK=") ||
        absl::StartsWith(*e, "PS_PIPE_NUM_WORKERS=")) {
      continue;
    }
    env_strings.emplace_back(*e);
  }
  env_strings.push_back(absl::StrCat("PS_PIPE_WORKER_RANK=", worker_rank));
  env_strings.push_back(absl::StrCat("PS_PIPE_NUM_WORKERS=", num_workers));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  // Standard output to the pipe (dup2 clears its close-on-exec flag);
  // standard input from /dev/null, so a command never reads the worker's.
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  // A process group of its own (the destructor signals all of it), default
  // dispositions for the signals a worker may ignore or block (an ignored
  // SIGPIPE would survive exec), and no blocked signals.
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSIGMASK);
  char sh[] = "/bin/sh";
  char dash_c[] = "-c";
  std::string command_arg(PipeCommand(path));
  char* argv[] = {sh, dash_c, command_arg.data(), nullptr};
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  fds[1] = -1;
  if (rc != 0) {
    ClosePipe(fds);
    return SpawnError("posix_spawn /bin/sh", rc, path);
  }
  return std::unique_ptr<PipeLineSource>(
      new PipeLineSource(pid, fds[0], path, buffer, max_line_bytes));
}

PipeLineSource::PipeLineSource(pid_t pid, int fd, std::string path,
                               std::vector<char>* buffer,
                               int64_t max_line_bytes)
    : StreamLineSource(buffer, max_line_bytes),
      pid_(pid),
      fd_(fd),
      path_(std::move(path)) {}

PipeLineSource::~PipeLineSource() {
  if (fd_ >= 0) close(fd_);  // a writing command now gets SIGPIPE
  if (pid_ <= 0) return;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) return;
  kill(-pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kTermGrace;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(-pid_, SIGKILL);
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

absl::StatusOr<size_t> PipeLineSource::Read(char* dst, size_t n) {
  while (true) {
    const ssize_t got = read(fd_, dst, n);
    if (got >= 0) {
      if (got == 0) RETURN_IF_ERROR(Reap());
      return static_cast<size_t>(got);
    }
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("cannot read the output of input command '",
                       PipeCommand(path_), "': ", strerror(errno)));
    }
  }
}

absl::Status PipeLineSource::Reap() {
  if (pid_ <= 0) return absl::OkStatus();
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  pid_ = -1;
  if (r < 0) {
    return absl::InternalError(absl::StrCat("cannot wait for input command '",
                                            PipeCommand(path_),
                                            "': ", strerror(errno)));
  }
  const std::string lines =
      absl::StrCat(" after ", lines_returned(),
                   " lines, so its output may be incomplete (its standard "
                   "error is in this worker's log)");
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    const int code = WEXITSTATUS(status);
    return absl::DataLossError(absl::StrCat(
        "input command '", PipeCommand(path_), "' exited with status ", code,
        code == 127 ? " (command not found?)" : "", lines));
  }
  if (WIFSIGNALED(status)) {
    return absl::DataLossError(absl::StrCat(
        "input command '", PipeCommand(path_), "' was killed by signal ",
        WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")", lines));
  }
  return absl::OkStatus();
}

}  // namespace ps
