// RecordLog (server/storage/record_log.h): records come back in order and
// bit-equal across segments and reopens; a torn or garbage tail is cut and
// the log goes on; corruption elsewhere is DataLoss naming the file and
// offset; Reset drops everything and numbering continues; concurrent appends
// come back once each, whole; bad records, options and folders are refused;
// a failed write fails every later append; what a process killed with
// SIGKILL had appended is all replayed.
#include "server/storage/record_log.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::ReadFile;
using testing_util::StatusIs;
using testing_util::TempDir;

namespace fs = std::filesystem;

// `n` bytes derived from `seed`, zeros and all byte values included.
std::string Bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() % 3 == 0 ? 0 : rng());
  return s;
}

// The segment files of `dir`, sorted by name.
std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("wal-", 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<RecordLog> MustOpen(const RecordLogOptions& options) {
  absl::StatusOr<std::unique_ptr<RecordLog>> log = RecordLog::Open(options);
  EXPECT_OK(log);
  return log.ok() ? std::move(*log) : nullptr;
}

// Opens the log and replays it into *records.
absl::Status OpenAndReplay(const RecordLogOptions& options,
                           std::vector<std::string>* records,
                           std::unique_ptr<RecordLog>* log_out = nullptr) {
  absl::StatusOr<std::unique_ptr<RecordLog>> log = RecordLog::Open(options);
  if (!log.ok()) return log.status();
  records->clear();
  absl::Status status = (*log)->Replay([&](absl::string_view record) {
    records->emplace_back(record);
    return absl::OkStatus();
  });
  if (log_out != nullptr) *log_out = std::move(*log);
  return status;
}

void AppendBytes(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void FlipByte(const std::string& path, int64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(offset);
  char c;
  f.get(c);
  f.seekp(offset);
  f.put(static_cast<char>(c ^ 0x5a));
  ASSERT_TRUE(f.good()) << path;
}

class RecordLogSyncTest : public ::testing::TestWithParam<int> {};

TEST_P(RecordLogSyncTest, ReplaysInOrderBitEqualAcrossSegments) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.Path("wal/nested");  // created
  options.sync_ms = GetParam();
  options.segment_bytes = 1000;
  // Awkward sizes: empty, tiny, one over a segment.
  const std::vector<size_t> sizes = {0, 1, 7, 65, 300, 999, 2000, 8, 0, 513};
  std::vector<std::string> want;
  int64_t want_bytes = 0;
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    ASSERT_NE(log, nullptr);
    for (int round = 0; round < 3; ++round) {
      for (size_t i = 0; i < sizes.size(); ++i) {
        want.push_back(Bytes(sizes[i], round * 100 + i));
        ASSERT_OK(log->Append(want.back()));
        want_bytes += 8 + static_cast<int64_t>(sizes[i]);
      }
      std::vector<std::string> batch = {Bytes(40, round), "", Bytes(333, 7)};
      ASSERT_OK(log->AppendBatch({batch[0], batch[1], batch[2]}));
      want.insert(want.end(), batch.begin(), batch.end());
      want_bytes += 3 * 8 + 40 + 333;
    }
    ASSERT_OK(log->Sync());
    EXPECT_EQ(log->records(), static_cast<int64_t>(want.size()));
    EXPECT_EQ(log->bytes(), want_bytes);
  }
  const std::vector<std::string> segments = Segments(options.dir);
  EXPECT_GE(segments.size(), 5u);
  EXPECT_EQ(segments.front(), "wal-000001.log");
  int64_t on_disk = 0;
  for (const std::string& name : segments) {
    on_disk += static_cast<int64_t>(fs::file_size(options.dir + "/" + name));
  }
  EXPECT_EQ(on_disk, want_bytes);

  std::vector<std::string> got;
  std::unique_ptr<RecordLog> log;
  ASSERT_OK(OpenAndReplay(options, &got, &log));
  EXPECT_TRUE(got == want) << "got " << got.size() << " records, want "
                           << want.size();
  EXPECT_EQ(log->records(), static_cast<int64_t>(want.size()));
  EXPECT_EQ(log->bytes(), want_bytes);
  // Appends after a reopen go to a new segment and replay after the rest.
  ASSERT_OK(log->Append("after reopen"));
  log.reset();
  ASSERT_OK(OpenAndReplay(options, &got));
  want.push_back("after reopen");
  EXPECT_TRUE(got == want);
}

INSTANTIATE_TEST_SUITE_P(SyncMs, RecordLogSyncTest, ::testing::Values(0, 10),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("SyncMs", info.param);
                         });

TEST(RecordLogTest, ReopenWithoutAppendsAddsNoSegment) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  for (int i = 0; i < 3; ++i) MustOpen(options);
  EXPECT_THAT(Segments(tmp.path()), ElementsAre("wal-000001.log"));
}

// The last segment cut by `cut` bytes (into the last payload, into its
// header) or grown by garbage: the complete records come back, the tail is
// cut, and appends after it replay on the next open.
struct TailCase {
  std::string name;
  int cut = 0;          // bytes removed from the end
  std::string garbage;  // bytes appended
};

void PrintTo(const TailCase& c, std::ostream* os) { *os << c.name; }

class RecordLogTailTest : public ::testing::TestWithParam<TailCase> {};

TEST_P(RecordLogTailTest, BadTailIsCutAndLogGoesOn) {
  const TailCase& c = GetParam();
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  options.segment_bytes = 250;
  std::vector<std::string> want;
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    for (int i = 0; i < 10; ++i) {
      want.push_back(Bytes(100, i));
      ASSERT_OK(log->Append(want.back()));
    }
  }
  const std::vector<std::string> segments = Segments(tmp.path());
  ASSERT_EQ(segments.size(), 5u);  // two records a segment
  const std::string last = tmp.Path(segments.back());
  const int64_t size = static_cast<int64_t>(fs::file_size(last));
  if (c.cut > 0) {
    fs::resize_file(last, size - c.cut);
    want.pop_back();
  }
  AppendBytes(last, c.garbage);

  std::vector<std::string> got;
  std::unique_ptr<RecordLog> log;
  ASSERT_OK(OpenAndReplay(options, &got, &log));
  EXPECT_TRUE(got == want) << "got " << got.size() << " records";
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(last)),
            c.cut > 0 ? size - 108 : size);
  EXPECT_EQ(log->records(), static_cast<int64_t>(want.size()));
  ASSERT_OK(log->Append("next 1"));
  ASSERT_OK(log->Append("next 2"));
  log.reset();
  ASSERT_OK(OpenAndReplay(options, &got));
  want.push_back("next 1");
  want.push_back("next 2");
  EXPECT_TRUE(got == want) << "got " << got.size() << " records";
}

INSTANTIATE_TEST_SUITE_P(
    Tails, RecordLogTailTest,
    ::testing::Values(TailCase{"IntoPayload", 3, ""},
                      TailCase{"IntoHeader", 105, ""},
                      TailCase{"RandomGarbage", 0, Bytes(100, 42)},
                      TailCase{"Zeros", 0, std::string(4096, '\0')},
                      TailCase{"TornAndGarbage", 50, Bytes(17, 43)}),
    [](const ::testing::TestParamInfo<TailCase>& info) {
      return info.param.name;
    });

TEST(RecordLogTest, FlippedByteInAnEarlierRecordIsDataLoss) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    for (int i = 0; i < 3; ++i) ASSERT_OK(log->Append(Bytes(100, i)));
  }
  const std::string path = tmp.Path("wal-000001.log");
  FlipByte(path, 108 + 8 + 50);  // the second record's payload
  std::vector<std::string> got;
  EXPECT_THAT(OpenAndReplay(options, &got),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path), HasSubstr("byte offset 108 "),
                             HasSubstr("checksum mismatch"))));
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(fs::file_size(path), 3u * 108);  // nothing cut
}

TEST(RecordLogTest, CorruptLengthFollowedByValidRecordsIsDataLoss) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    for (int i = 0; i < 3; ++i) ASSERT_OK(log->Append(Bytes(100, i)));
  }
  const std::string path = tmp.Path("wal-000001.log");
  FlipByte(path, 108 + 6);  // the second record's length: now past the end
  std::vector<std::string> got;
  EXPECT_THAT(OpenAndReplay(options, &got),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path), HasSubstr("byte offset 108 "),
                             HasSubstr("runs past the end"),
                             HasSubstr("valid record follows at byte "
                                       "offset 216"))));
  EXPECT_EQ(fs::file_size(path), 3u * 108);
}

TEST(RecordLogTest, BadTailOfAnEarlierSegmentIsDataLoss) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  options.segment_bytes = 250;
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    for (int i = 0; i < 4; ++i) ASSERT_OK(log->Append(Bytes(100, i)));
  }
  const std::string first = tmp.Path("wal-000001.log");
  fs::resize_file(first, 2 * 108 - 1);
  std::vector<std::string> got;
  EXPECT_THAT(OpenAndReplay(options, &got),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(first), HasSubstr("byte offset 108 "),
                             HasSubstr("later segments hold records"))));
}

TEST(RecordLogTest, ReplayStopsAtTheCallbacksError) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    for (const char* r : {"a", "b", "c"}) ASSERT_OK(log->Append(r));
  }
  std::unique_ptr<RecordLog> log = MustOpen(options);
  std::vector<std::string> got;
  EXPECT_THAT(log->Replay([&](absl::string_view r) {
    got.emplace_back(r);
    return r == "b" ? absl::AbortedError("stop at b") : absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kAborted, "stop at b"));
  EXPECT_THAT(got, ElementsAre("a", "b"));
}

TEST(RecordLogTest, ReplayAfterAppendIsRefused) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  std::unique_ptr<RecordLog> log = MustOpen(options);
  ASSERT_OK(log->Append("x"));
  EXPECT_THAT(log->Replay([](absl::string_view) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("after an append")));
}

TEST(RecordLogTest, ResetDropsEverythingAndNumberingContinues) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  options.segment_bytes = 250;
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    for (int i = 0; i < 5; ++i) ASSERT_OK(log->Append(Bytes(100, i)));
    ASSERT_EQ(Segments(tmp.path()).size(), 3u);
    ASSERT_OK(log->Reset());
    EXPECT_THAT(Segments(tmp.path()), ElementsAre("wal-000004.log"));
    EXPECT_EQ(log->bytes(), 0);
    EXPECT_EQ(log->records(), 0);
    ASSERT_OK(log->Append("after reset 1"));
    ASSERT_OK(log->Append("after reset 2"));
    EXPECT_EQ(log->records(), 2);
  }
  std::vector<std::string> got;
  std::unique_ptr<RecordLog> log;
  ASSERT_OK(OpenAndReplay(options, &got, &log));
  EXPECT_THAT(got, ElementsAre("after reset 1", "after reset 2"));
  // Numbering continues across the reopen and another Reset.
  ASSERT_OK(log->Reset());
  EXPECT_THAT(Segments(tmp.path()), ElementsAre("wal-000006.log"));
  ASSERT_OK(log->Append("after second reset"));
  log.reset();
  ASSERT_OK(OpenAndReplay(options, &got));
  EXPECT_THAT(got, ElementsAre("after second reset"));
  EXPECT_THAT(Segments(tmp.path()),
              ElementsAre("wal-000006.log", "wal-000007.log"));
}

TEST(RecordLogTest, ConcurrentAppendsReplayOnceEachWhole) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  options.sync_ms = 1;
  options.segment_bytes = 16 << 10;  // rolls under contention
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  {
    std::unique_ptr<RecordLog> log = MustOpen(options);
    std::atomic<bool> stop_syncing{false};
    std::thread syncer([&] {
      while (!stop_syncing) {
        EXPECT_OK(log->Sync());
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Thread, index, then filler that repeats the thread id, so a
          // record mixed with another's bytes does not parse.
          std::string r = absl::StrFormat("%d %d ", t, i);
          r.append(static_cast<size_t>((i * 37 + t * 11) % 300), 'a' + t);
          if (i % 5 == 0) {
            const std::string r2 = r + "+";
            EXPECT_OK(log->AppendBatch({r, r2}));
          } else {
            EXPECT_OK(log->Append(r));
          }
        }
      });
    }
    for (std::thread& th : threads) th.join();
    stop_syncing = true;
    syncer.join();
    EXPECT_EQ(log->records(), kThreads * (kPerThread + kPerThread / 5));
  }
  std::vector<std::string> got;
  ASSERT_OK(OpenAndReplay(options, &got));
  ASSERT_EQ(got.size(), kThreads * (kPerThread + kPerThread / 5));
  std::vector<int> next(kThreads, 0);
  std::vector<bool> plus_next(kThreads, false);
  for (const std::string& r : got) {
    int t, i;
    ASSERT_EQ(sscanf(r.c_str(), "%d %d ", &t, &i), 2) << r;
    ASSERT_TRUE(t >= 0 && t < kThreads) << r;
    std::string want = absl::StrFormat("%d %d ", t, i);
    want.append(static_cast<size_t>((i * 37 + t * 11) % 300), 'a' + t);
    if (plus_next[t]) {
      // The second record of a batch comes right after the first.
      ASSERT_EQ(r, want + "+");
      ASSERT_EQ(i, next[t] - 1);
      plus_next[t] = false;
      continue;
    }
    ASSERT_EQ(r, want);
    ASSERT_EQ(i, next[t]) << "thread " << t << "'s records out of order";
    plus_next[t] = (i % 5 == 0);
    ++next[t];
  }
  EXPECT_THAT(next,
              ElementsAre(kPerThread, kPerThread, kPerThread, kPerThread));
}

TEST(RecordLogTest, RecordOverTheLimitIsRefused) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  std::unique_ptr<RecordLog> log = MustOpen(options);
  // A 1 GiB + 1 view over untouched (never allocated) zero pages.
  const size_t n = static_cast<size_t>(RecordLog::kMaxRecordBytes) + 1;
  void* p = mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  const absl::string_view huge(static_cast<const char*>(p), n);
  EXPECT_THAT(log->Append(huge),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(tmp.path()), HasSubstr("1073741825"))));
  EXPECT_THAT(log->AppendBatch({"fine", huge}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("record 1 of the batch")));
  munmap(p, n);
  // Nothing was written and the log still works.
  EXPECT_EQ(log->records(), 0);
  ASSERT_OK(log->Append("fine"));
  log.reset();
  std::vector<std::string> got;
  ASSERT_OK(OpenAndReplay(options, &got));
  EXPECT_THAT(got, ElementsAre("fine"));
}

TEST(RecordLogTest, DirThatIsAFileIsRefused) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.Write("file", "not a folder");
  EXPECT_THAT(
      RecordLog::Open(options),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr(options.dir), HasSubstr("not a directory"))));
  options.dir = tmp.Path("file/wal");
  EXPECT_THAT(
      RecordLog::Open(options),
      StatusIs(absl::StatusCode::kNotFound,
               AllOf(HasSubstr(options.dir), HasSubstr("Not a directory"))));
}

TEST(RecordLogTest, BadOptionsAreRefused) {
  TempDir tmp;
  RecordLogOptions options;
  EXPECT_THAT(
      RecordLog::Open(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dir is empty")));
  options.dir = tmp.path();
  options.sync_ms = -1;
  EXPECT_THAT(RecordLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sync_ms must be >= 0, got -1")));
  options.sync_ms = 0;
  options.segment_bytes = 0;
  EXPECT_THAT(RecordLog::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("segment_bytes must be > 0")));
}

TEST(RecordLogTest, SecondOpenOfTheSameDirIsRefused) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  std::unique_ptr<RecordLog> log = MustOpen(options);
  EXPECT_THAT(RecordLog::Open(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("in use by another RecordLog")));
  log.reset();
  EXPECT_OK(RecordLog::Open(options));
}

// A write that fails (here: past RLIMIT_FSIZE, EFBIG after a short write)
// fails every later append and sync with the same error, until a Reset.
TEST(RecordLogTest, FailedWriteFailsLaterAppendsUntilReset) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  options.sync_ms = 0;
  std::unique_ptr<RecordLog> log = MustOpen(options);
  ASSERT_OK(log->Append(Bytes(100, 1)));

  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct sigaction ignore = {}, old_action;
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGXFSZ, &ignore, &old_action), 0);
  struct rlimit limit = saved;
  limit.rlim_cur = 150;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  const absl::Status failed = log->Append(Bytes(100, 2));
  const absl::Status later = log->Append("small");
  const absl::Status sync = log->Sync();
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
  ASSERT_EQ(sigaction(SIGXFSZ, &old_action, nullptr), 0);

  EXPECT_THAT(failed,
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("cannot append to record log segment"),
                             HasSubstr(tmp.Path("wal-000001.log")),
                             HasSubstr("File too large"))));
  EXPECT_EQ(later, failed);
  EXPECT_EQ(sync, failed);
  EXPECT_EQ(log->Append("still refused"), failed);
  // The next checkpoint's Reset drops the torn segment and clears it.
  ASSERT_OK(log->Reset());
  ASSERT_OK(log->Append("after reset"));
  log.reset();
  std::vector<std::string> got;
  ASSERT_OK(OpenAndReplay(options, &got));
  EXPECT_THAT(got, ElementsAre("after reset"));
}

// Runs `child` in a forked process and returns its wait status.
template <typename Fn>
int RunChild(Fn child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child();
    _exit(0);
  }
  int wstatus = 0;
  EXPECT_EQ(waitpid(pid, &wstatus, 0), pid);
  return wstatus;
}

std::string KillRecord(int i) {
  return absl::StrCat("push ", i, " ", Bytes(static_cast<size_t>(i % 97), i));
}

TEST(RecordLogTest, AppendedRecordsSurviveSigkill) {
  TempDir tmp;
  RecordLogOptions options;
  options.dir = tmp.path();
  options.sync_ms = 10000;  // no fdatasync before the kill
  options.segment_bytes = 4096;
  constexpr int kRecords = 300;
  const int wstatus = RunChild([&] {
    absl::StatusOr<std::unique_ptr<RecordLog>> log = RecordLog::Open(options);
    if (!log.ok()) _exit(2);
    for (int i = 0; i < kRecords; ++i) {
      if (!(*log)->Append(KillRecord(i)).ok()) _exit(3);
    }
    raise(SIGKILL);
  });
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exit status " << wstatus;
  ASSERT_EQ(WTERMSIG(wstatus), SIGKILL);
  std::vector<std::string> got;
  ASSERT_OK(OpenAndReplay(options, &got));
  ASSERT_EQ(got.size(), static_cast<size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i) ASSERT_EQ(got[i], KillRecord(i)) << i;
}

// Killed while appending 1 MiB records, at several delays after an
// acknowledgement (so some kills land inside a write): every acknowledged
// record comes back, in order, followed by at most what was in flight; a
// torn one is cut.
TEST(RecordLogTest, AcknowledgedRecordsSurviveSigkillMidAppend) {
  const std::string big = Bytes(1 << 20, 9);
  int torn = 0;
  const std::vector<int> delays_us = {0, 150, 300, 500, 800, 1200};
  for (int delay_us : delays_us) {
    SCOPED_TRACE(absl::StrCat("kill ", delay_us, " us after acknowledgement"));
    TempDir tmp;
    RecordLogOptions options;
    options.dir = tmp.path();
    options.sync_ms = 10000;
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      close(pipe_fds[0]);
      absl::StatusOr<std::unique_ptr<RecordLog>> log = RecordLog::Open(options);
      if (!log.ok()) _exit(2);
      for (int32_t i = 0;; ++i) {
        std::string r = absl::StrCat(i, ":");
        r += big;
        if (!(*log)->Append(r).ok()) _exit(3);
        if (write(pipe_fds[1], &i, sizeof(i)) != sizeof(i)) _exit(4);
      }
    }
    close(pipe_fds[1]);
    int32_t acked = -1;
    for (int32_t i; acked < 20 && read(pipe_fds[0], &i, sizeof(i)) ==
                                      static_cast<ssize_t>(sizeof(i));) {
      acked = i;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    close(pipe_fds[0]);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exit status " << wstatus;
    ASSERT_GE(acked, 20);

    std::unique_ptr<RecordLog> log = MustOpen(options);
    const int64_t bytes_before = log->bytes();
    std::vector<std::string> got;
    ASSERT_OK(log->Replay([&](absl::string_view r) {
      got.emplace_back(r);
      return absl::OkStatus();
    }));
    if (log->bytes() < bytes_before) ++torn;
    // The child may have appended more after the last one read here.
    ASSERT_GE(got.size(), static_cast<size_t>(acked) + 1);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(got[i] == absl::StrCat(i, ":") + big) << "record " << i;
    }
  }
  // Timing decides how many kills tore a write; none is not a failure.
  RecordProperty("torn_tails_cut", torn);
  std::printf("torn tails cut in %d of %zu kills\n", torn, delays_us.size());
}

}  // namespace
}  // namespace ps
