// Follow mode (data.follow): files read as they appear, in name order, until
// the done file exists or Stop; positions that resume at the same line; files
// out of order or gone are errors. Lines are in the SLOT format, "label 0:id
// 1:id*3", so an example's slot-0 key names its line.
#include "worker/data/follow_reader.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::NumberedLineKeys;
using testing_util::NumberedLines;
using testing_util::Sorted;
using testing_util::StatusIs;

class FollowReaderTest : public testing_util::TempDirTest {
 protected:
  // Writes a file as a producer must: under a hidden name, then renamed.
  void Publish(const std::string& name, const std::string& text) {
    const std::string tmp = Write("." + name + ".tmp", text);
    std::filesystem::rename(tmp, dir_ + "/" + name);
  }

  ReaderOptions Options(int rank = 0, int workers = 1) {
    ReaderOptions options;
    options.data.set_format(DataConfig::SLOT);
    options.data.set_num_slots(2);
    options.batch_size = 7;
    options.worker_rank = rank;
    options.num_workers = workers;
    return options;
  }

  FollowOptions Follow() {
    FollowOptions follow;
    follow.patterns = {dir_ + "/part-*.txt"};
    follow.poll = absl::Milliseconds(20);
    follow.done_file = dir_ + "/_DONE";
    return follow;
  }
};

absl::StatusOr<std::vector<uint64_t>> Read(DataReader* reader,
                                           int max_batches = -1,
                                           DataPosition* position = nullptr) {
  return testing_util::ReadSlotZeroKeys(reader, max_batches, position);
}

TEST_F(FollowReaderTest, FilesAreReadAsTheyAppearUntilTheDoneFile) {
  Publish("part-00.txt", NumberedLines(0, 30));
  // Two workers, each its byte range of every file; a producer adds files
  // while they wait, then the done file.
  std::vector<std::vector<uint64_t>> got(2);
  std::vector<absl::Status> status(2);
  std::vector<std::thread> workers;
  for (int rank = 0; rank < 2; ++rank) {
    workers.emplace_back([&, rank] {
      auto reader = FollowReader::Open(Options(rank, 2), Follow());
      if (!reader.ok()) {
        status[rank] = reader.status();
        return;
      }
      auto keys = Read(reader->get());
      if (!keys.ok()) {
        status[rank] = keys.status();
        return;
      }
      got[rank] = *keys;
      EXPECT_EQ((*reader)->files().size(), 3u);
      EXPECT_EQ((*reader)->progress(), -1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Publish("part-01.txt", NumberedLines(100, 40));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // The last file and the done file together: the file is still read.
  Publish("part-02.txt", NumberedLines(200, 50));
  Write("_DONE", "");
  for (std::thread& t : workers) t.join();
  ASSERT_OK(status[0]);
  ASSERT_OK(status[1]);
  std::vector<uint64_t> all = got[0];
  all.insert(all.end(), got[1].begin(), got[1].end());
  std::vector<uint64_t> want = NumberedLineKeys(0, 30);
  for (uint64_t k : NumberedLineKeys(100, 40)) want.push_back(k);
  for (uint64_t k : NumberedLineKeys(200, 50)) want.push_back(k);
  EXPECT_EQ(Sorted(all), Sorted(want));  // every line once
  // Each worker in file and line order: its keys are a subsequence of the
  // lines' order.
  for (int rank = 0; rank < 2; ++rank) {
    size_t at = 0;
    for (uint64_t k : got[rank]) {
      while (at < want.size() && want[at] != k) ++at;
      EXPECT_LT(at, want.size()) << "rank " << rank << " out of order";
    }
  }
}

TEST_F(FollowReaderTest, NoFilesYetIsWaitingNotAnError) {
  auto reader = FollowReader::Open(Options(), Follow());
  ASSERT_OK(reader);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    Publish("part-05.txt", NumberedLines(5, 9));
    Write("_DONE", "");
  });
  EXPECT_THAT(Read(reader->get()),
              testing_util::IsOkAndHolds(NumberedLineKeys(5, 9)));
  producer.join();
  EXPECT_EQ((*reader)->lines_read(), 9);
}

TEST_F(FollowReaderTest, StopEndsAWaitingReaderAndKeepsItsPosition) {
  Publish("part-00.txt", NumberedLines(0, 10));
  auto reader = FollowReader::Open(Options(), Follow());
  ASSERT_OK(reader);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*reader)->Stop();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(Read(reader->get()),
              testing_util::IsOkAndHolds(NumberedLineKeys(0, 10)));
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  auto position = (*reader)->Position();
  ASSERT_OK(position);
  EXPECT_EQ(position->file_index(), 1);  // past the one file read
  EXPECT_EQ(position->examples_done(), 10);
}

TEST_F(FollowReaderTest, AResumeContinuesAtTheSameLineAndAfterTheLastFile) {
  Publish("part-00.txt", NumberedLines(0, 20));
  Publish("part-01.txt", NumberedLines(100, 20));
  FollowOptions follow = Follow();
  DataPosition mid;
  {
    auto reader = FollowReader::Open(Options(), follow);
    ASSERT_OK(reader);
    ASSERT_THAT(Read(reader->get(), 4, &mid), testing_util::IsOk());
  }
  EXPECT_EQ(mid.file(), dir_ + "/part-01.txt");  // 28 examples read
  ReaderOptions options = Options();
  options.start = mid;
  DataPosition end;
  std::vector<uint64_t> rest;
  {
    auto reader = FollowReader::Open(options, follow);
    ASSERT_OK(reader);
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      (*reader)->Stop();
    });
    auto keys = Read(reader->get(), -1, &end);
    stopper.join();
    ASSERT_OK(keys);
    rest = *keys;
  }
  EXPECT_EQ(rest, NumberedLineKeys(108, 12));
  EXPECT_EQ(end.file_index(), 2);
  EXPECT_EQ(end.file(), "");
  // Resumed past the end of the files then; a new one arrives.
  Publish("part-02.txt", NumberedLines(200, 5));
  Write("_DONE", "");
  options.start = end;
  auto reader = FollowReader::Open(options, follow);
  ASSERT_OK(reader);
  EXPECT_THAT(Read(reader->get()),
              testing_util::IsOkAndHolds(NumberedLineKeys(200, 5)));
}

TEST_F(FollowReaderTest, AFileOutOfOrderOrGoneIsAnErrorNamingIt) {
  Publish("part-05.txt", NumberedLines(0, 10));
  {
    auto reader = FollowReader::Open(Options(), Follow());
    ASSERT_OK(reader);
    Batch batch;
    ASSERT_THAT((*reader)->Next(&batch), testing_util::IsOkAndHolds(true));
    ASSERT_THAT((*reader)->Next(&batch), testing_util::IsOkAndHolds(true));
    Publish("part-03.txt", NumberedLines(100, 10));
    EXPECT_THAT(
        Read(reader->get()),
        StatusIs(absl::StatusCode::kFailedPrecondition,
                 HasSubstr(absl::StrCat("input file '", dir_,
                                        "/part-03.txt' appeared after later "
                                        "files were read"))));
  }
  std::filesystem::remove(dir_ + "/part-03.txt");
  {
    auto reader = FollowReader::Open(Options(), Follow());
    ASSERT_OK(reader);
    Batch batch;
    ASSERT_THAT((*reader)->Next(&batch), testing_util::IsOkAndHolds(true));
    ASSERT_THAT((*reader)->Next(&batch), testing_util::IsOkAndHolds(true));
    std::filesystem::remove(dir_ + "/part-05.txt");
    EXPECT_THAT(Read(reader->get()),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("part-05.txt' was read and has "
                                   "disappeared")));
  }
}

TEST_F(FollowReaderTest, AResumeWhoseFilesAreGoneIsRefused) {
  DataPosition p;
  p.set_file_index(3);
  p.set_file(dir_ + "/part-03.txt");
  p.set_offset(10);
  ReaderOptions options = Options();
  options.start = p;
  EXPECT_THAT(FollowReader::Open(options, Follow()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("but only 0 files match")));
  options = Options();
  options.shuffle_buffer = 100;
  EXPECT_THAT(FollowReader::Open(options, Follow()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cannot shuffle")));
}

TEST_F(FollowReaderTest, ListingSortsAndSkipsHiddenFilesAndFolders) {
  Write("part-2.txt", "");
  Write("part-1.txt", "");
  Write(".part-0.txt.tmp", "");
  std::filesystem::create_directory(dir_ + "/part-3.txt");
  EXPECT_THAT(ListFollowedFiles({dir_ + "/part-*", dir_ + "/part-1.txt",
                                 dir_ + "/missing-*"}),
              testing_util::IsOkAndHolds(std::vector<std::string>{
                  dir_ + "/part-1.txt", dir_ + "/part-2.txt"}));
}

}  // namespace
}  // namespace ps
