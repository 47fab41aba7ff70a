// Input from a command's standard output (`pipe:CMD`): the lines of the
// source, the command's failures as errors naming it, a stopped reader
// ending its command, and DataReader treating a command like a .gz file
// (read whole by one worker, resumed by line count). Lines are in the SLOT
// format, "label 0:id 1:id*3", so an example's slot-0 key names its line.
#include "worker/data/pipe_reader.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/data_reader.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::NumberedLineKeys;
using testing_util::NumberedLines;
using testing_util::Sorted;
using testing_util::StatusIs;

// Every line of a pipe source, or its error.
absl::StatusOr<std::vector<std::string>> ReadPipe(const std::string& path) {
  std::vector<char> buffer;
  ASSIGN_OR_RETURN(std::unique_ptr<PipeLineSource> source,
                   PipeLineSource::Open(path, &buffer));
  std::vector<std::string> lines;
  absl::string_view line;
  while (true) {
    ASSIGN_OR_RETURN(bool more, source->Next(&line));
    if (!more) break;
    lines.emplace_back(line);
    ASSIGN_OR_RETURN(int64_t number, source->LineNumber());
    EXPECT_EQ(number, static_cast<int64_t>(lines.size()));
  }
  return lines;
}

ReaderOptions SlotOptions() {
  ReaderOptions options;
  options.data.set_format(DataConfig::SLOT);
  options.data.set_num_slots(2);
  options.batch_size = 7;
  return options;
}

// The slot-0 keys a reader of `options` returns (testing_util::
// ReadSlotZeroKeys).
absl::StatusOr<std::vector<uint64_t>> ReadKeys(
    const ReaderOptions& options, int max_batches = -1,
    DataPosition* position = nullptr) {
  ASSIGN_OR_RETURN(std::unique_ptr<DataReader> reader,
                   DataReader::Open(options));
  return testing_util::ReadSlotZeroKeys(reader.get(), max_batches, position);
}

using PipeReaderTest = testing_util::TempDirTest;

TEST_F(PipeReaderTest, PipePaths) {
  EXPECT_TRUE(IsPipePath("pipe:cat a"));
  EXPECT_FALSE(IsPipePath("a/pipe:cat"));
  EXPECT_FALSE(IsPipePath("cat a"));
  EXPECT_EQ(PipeCommand("pipe:cat a | head"), "cat a | head");
}

TEST_F(PipeReaderTest, LinesOfTheCommandsOutput) {
  const std::string file = Write("a.txt", "x\n\ny z\r\nlast");
  absl::StatusOr<std::vector<std::string>> lines =
      ReadPipe(absl::StrCat("pipe:cat ", file, " && printf 'more\\n'"));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, (std::vector<std::string>{"x", "", "y z\r", "lastmore"}));
  EXPECT_THAT(ReadPipe("pipe:true"),
              testing_util::IsOkAndHolds(std::vector<std::string>{}));
}

TEST_F(PipeReaderTest, TheCommandSeesItsWorkerAndNoInput) {
  std::vector<char> buffer;
  auto source = PipeLineSource::Open(
      "pipe:echo $PS_PIPE_WORKER_RANK/$PS_PIPE_NUM_WORKERS; cat", &buffer,
      kDefaultMaxLineBytes, 2, 5);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::string_view line;
  EXPECT_THAT((*source)->Next(&line), testing_util::IsOkAndHolds(true));
  EXPECT_EQ(line, "2/5");
  // `cat` reads /dev/null, not the test's standard input: it ends at once.
  EXPECT_THAT((*source)->Next(&line), testing_util::IsOkAndHolds(false));
}

TEST_F(PipeReaderTest, AFailingCommandIsDataLossNamingItAndItsStatus) {
  EXPECT_THAT(ReadPipe("pipe:printf 'a\\nb\\n'; exit 3"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("input command 'printf 'a\\nb\\n'; exit 3' "
                                 "exited with status 3 after 2 lines")));
  EXPECT_THAT(ReadPipe("pipe:no-such-command-ps-test"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("exited with status 127 (command not "
                                 "found?)")));
  EXPECT_THAT(ReadPipe("pipe:echo a; kill -KILL $$"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("' was killed by signal 9")));
  EXPECT_THAT(ReadPipe("pipe:  "),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input 'pipe:  ' is not a command")));
}

TEST_F(PipeReaderTest, ALongLineIsDroppedAndReported) {
  std::vector<char> buffer;
  auto source = PipeLineSource::Open(
      "pipe:echo ok; head -c 5000 /dev/zero | tr '\\0' x; echo; echo end",
      &buffer, /*max_line_bytes=*/100);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::string_view line;
  std::vector<std::pair<std::string, bool>> got;
  while (true) {
    absl::StatusOr<bool> more = (*source)->Next(&line);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    got.emplace_back(std::string(line), (*source)->too_long());
  }
  EXPECT_EQ(got, (std::vector<std::pair<std::string, bool>>{
                     {"ok", false}, {"", true}, {"end", false}}));
}

TEST_F(PipeReaderTest, DestroyingASourceStopsItsCommand) {
  // `yes` never ends, and a child that ignores SIGTERM needs SIGKILL.
  for (const char* command :
       {"pipe:yes", "pipe:trap '' TERM; while :; do echo x; done"}) {
    SCOPED_TRACE(command);
    const auto start = std::chrono::steady_clock::now();
    {
      std::vector<char> buffer;
      auto source = PipeLineSource::Open(command, &buffer);
      ASSERT_TRUE(source.ok()) << source.status();
      absl::string_view line;
      for (int i = 0; i < 100; ++i) {
        ASSERT_THAT((*source)->Next(&line), testing_util::IsOkAndHolds(true));
      }
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(30));
  }
}

TEST_F(PipeReaderTest, ReaderReadsACommandAsThePlainFile) {
  std::string text = NumberedLines(0, 1000);
  const std::string file = Write("a.txt", text);
  ReaderOptions plain = SlotOptions();
  plain.files = {file};
  ReaderOptions pipe = SlotOptions();
  pipe.files = {absl::StrCat("pipe:cat ", file)};
  absl::StatusOr<std::vector<uint64_t>> want = ReadKeys(plain);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(*want, NumberedLineKeys(0, 1000));
  for (int threads : {1, 3}) {
    pipe.threads = threads;
    EXPECT_THAT(ReadKeys(pipe), testing_util::IsOkAndHolds(*want)) << threads;
  }
  auto files = ExpandFiles({"pipe:cat *.txt", file});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(*files, (std::vector<std::string>{"pipe:cat *.txt", file}));
}

TEST_F(PipeReaderTest, CommandsAndGzipFilesGoRoundRobinOverWorkers) {
  // Streams in list order: part-0.gz, pipe 1, part-2.gz, pipe 3 (plain file
  // between, split by bytes). Stream k goes to worker k % 2.
  ReaderOptions options = SlotOptions();
  options.files = {
      WriteGzip("part-0.gz", NumberedLines(0, 10)),
      absl::StrCat("pipe:cat ", Write("p1.txt", NumberedLines(100, 11))),
      Write("plain.txt", NumberedLines(1000, 50)),
      WriteGzip("part-2.gz", NumberedLines(200, 12)),
      absl::StrCat("pipe:cat ", Write("p3.txt", NumberedLines(300, 13)))};
  options.num_workers = 2;
  const std::vector<uint64_t> plain = Sorted(NumberedLineKeys(1000, 50));
  std::vector<uint64_t> all;
  for (int rank = 0; rank < 2; ++rank) {
    options.worker_rank = rank;
    absl::StatusOr<std::vector<uint64_t>> keys = ReadKeys(options);
    ASSERT_TRUE(keys.ok()) << keys.status();
    std::vector<uint64_t> streams;
    for (uint64_t k : *keys) {
      if (!std::binary_search(plain.begin(), plain.end(), k)) {
        streams.push_back(k);
      }
    }
    std::vector<uint64_t> want;
    for (int s = rank; s < 4; s += 2) {
      for (uint64_t k : NumberedLineKeys(s * 100, 10 + s)) want.push_back(k);
    }
    EXPECT_EQ(Sorted(streams), Sorted(want)) << "rank " << rank;
    all.insert(all.end(), keys->begin(), keys->end());
  }
  std::vector<uint64_t> want = NumberedLineKeys(1000, 50);
  for (int s = 0; s < 4; ++s) {
    for (uint64_t k : NumberedLineKeys(s * 100, 10 + s)) want.push_back(k);
  }
  EXPECT_EQ(Sorted(all), Sorted(want));  // every line once
}

TEST_F(PipeReaderTest, AResumeRunsTheCommandAgainAndSkipsTheLinesRead) {
  const std::string file = Write("a.txt", NumberedLines(0, 500));
  ReaderOptions options = SlotOptions();
  options.files = {Write("first.txt", NumberedLines(5000, 20)),
                   absl::StrCat("pipe:cat ", file)};
  for (int cut : {1, 5, 30, 80}) {
    SCOPED_TRACE(absl::StrCat("cut after ", cut, " batches"));
    DataPosition position;
    absl::StatusOr<std::vector<uint64_t>> first =
        ReadKeys(options, cut, &position);
    ASSERT_TRUE(first.ok()) << first.status();
    ReaderOptions resumed = options;
    resumed.start = position;
    absl::StatusOr<std::vector<uint64_t>> rest = ReadKeys(resumed);
    ASSERT_TRUE(rest.ok()) << rest.status();
    std::vector<uint64_t> got = *first;
    got.insert(got.end(), rest->begin(), rest->end());
    std::vector<uint64_t> want = NumberedLineKeys(5000, 20);
    for (uint64_t k : NumberedLineKeys(0, 500)) want.push_back(k);
    EXPECT_EQ(got, want);  // every example once, in order
    if (position.file_index() == 1) {
      EXPECT_EQ(position.file(), options.files[1]);
      EXPECT_EQ(position.offset(),
                static_cast<int64_t>(first->size()) - 20);  // lines
    }
  }
}

TEST_F(PipeReaderTest, AFailingCommandStopsTheReaderNamingIt) {
  ReaderOptions options = SlotOptions();
  options.files = {"pipe:printf '1 0:1 1:3\\n'; echo oops >&2; exit 4"};
  EXPECT_THAT(
      ReadKeys(options),
      StatusIs(absl::StatusCode::kDataLoss,
               HasSubstr("input command 'printf '1 0:1 1:3\\n'; echo oops >&2; "
                         "exit 4' exited with status 4")));
  // A bad line names the command as its file.
  options.files = {"pipe:printf '1 0:1 1:3\\n1 0:x\\n'"};
  options.max_bad_line_ratio = 0;
  EXPECT_THAT(ReadKeys(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("first bad line: pipe:printf '1 0:1 1:3\\n1 "
                                 "0:x\\n':2: ")));
  options.files = {"pipe: "};
  EXPECT_THAT(ReadKeys(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("has no command after 'pipe:'")));
}

}  // namespace
}  // namespace ps
