#include "worker/data/data_reader.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::StatusIs;

// A valid line whose C1 is `id` (so its key names the line) and whose length
// varies with `id`.
std::string GoodLine(int id) {
  std::string line = absl::StrCat(id % 2, "\t", id, "\t", id % 3 ? "-1" : "");
  for (int i = 2; i < 13; ++i)
    absl::StrAppend(&line, "\t", i == 4 ? id * id : 1);
  absl::StrAppend(&line, "\t", absl::Hex(id));
  for (int c = 1; c < 26; ++c) {
    absl::StrAppend(&line, "\t", c == 25 && id % 2 ? "" : "abc");
  }
  return line;
}

// Lines for ids [first, first + count), '\n'-terminated.
std::string Lines(int first, int count) {
  std::string out;
  for (int id = first; id < first + count; ++id) {
    absl::StrAppend(&out, GoodLine(id), "\n");
  }
  return out;
}

using Example = std::tuple<float, uint64_t>;  // label, key of C1

std::vector<Example> Expected(const std::vector<int>& ids) {
  std::vector<Example> out;
  for (int id : ids) out.emplace_back(id % 2, FeatureKey(0, 13, id));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int> Range(int first, int count) {
  std::vector<int> ids(count);
  for (int i = 0; i < count; ++i) ids[i] = first + i;
  return ids;
}

// Reads everything; checks batch shapes and that Next keeps returning false
// after the end. Appends (label, C1 key) of every example to `out`.
absl::Status ReadAll(const ReaderOptions& options, std::vector<Example>* out,
                     int64_t* lines_read = nullptr,
                     int64_t* bad_lines = nullptr) {
  ASSIGN_OR_RETURN(std::unique_ptr<DataReader> reader,
                   DataReader::Open(options));
  Batch batch;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader->Next(&batch));
    if (!more) break;
    EXPECT_GT(batch.size(), 0);
    EXPECT_LE(batch.size(), options.batch_size);
    EXPECT_EQ(batch.offsets.size(), batch.size() * batch.num_slots + 1u);
    EXPECT_EQ(batch.dense.size(), batch.size() * batch.num_dense + 0u);
    for (int i = 0; i < batch.size(); ++i) {
      const int c1 = batch.num_slots - 26;
      out->emplace_back(batch.labels[i],
                        batch.keys[batch.offsets[i * batch.num_slots + c1]]);
    }
  }
  EXPECT_EQ(batch.size(), 0);
  for (int again = 0; again < 2; ++again) {
    absl::StatusOr<bool> more = reader->Next(&batch);
    EXPECT_TRUE(more.ok() && !*more);
  }
  if (lines_read != nullptr) *lines_read = reader->lines_read();
  if (bad_lines != nullptr) *bad_lines = reader->bad_lines();
  return absl::OkStatus();
}

class DataReaderTest : public testing_util::TempDirTest {
 protected:
  // Reads with every rank of `workers` and returns all examples, sorted.
  std::vector<Example> ReadAllRanks(ReaderOptions options, int workers) {
    std::vector<Example> all;
    options.num_workers = workers;
    for (int rank = 0; rank < workers; ++rank) {
      options.worker_rank = rank;
      absl::Status status = ReadAll(options, &all);
      EXPECT_TRUE(status.ok()) << status;
    }
    std::sort(all.begin(), all.end());
    return all;
  }
};

TEST_F(DataReaderTest, EveryLineReadOnceAcrossWorkersAndThreads) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 300)),
                   Write("b.tsv", Lines(1000, 1)), Write("c.tsv", ""),
                   Write("d.tsv", Lines(2000, 50))};
  options.batch_size = 16;
  std::vector<int> ids = Range(0, 300);
  ids.push_back(1000);
  for (int id : Range(2000, 50)) ids.push_back(id);
  for (int workers = 1; workers <= 3; ++workers) {
    for (int threads : {1, 2, 3}) {
      options.threads = threads;
      EXPECT_EQ(ReadAllRanks(options, workers), Expected(ids))
          << workers << " workers, " << threads << " threads";
    }
  }
}

// progress() (for the ETA of progress lines) rises from near 0 to exactly 1
// over a plain file, with one thread and with several, and counts a .gz
// file once it is read; a reader with no input says -1.
TEST_F(DataReaderTest, ProgressRisesToOneByBytes) {
  for (int threads : {1, 2}) {
    ReaderOptions options;
    options.files = {Write("a.tsv", Lines(0, 400)),
                     WriteGzip("b.tsv.gz", Lines(1000, 40))};
    options.batch_size = 16;
    options.threads = threads;
    auto reader = DataReader::Open(options);
    ASSERT_TRUE(reader.ok()) << reader.status();
    Batch batch;
    std::vector<double> seen;
    while (true) {
      auto more = (*reader)->Next(&batch);
      ASSERT_TRUE(more.ok());
      if (!*more) break;
      seen.push_back((*reader)->progress());
    }
    ASSERT_GT(seen.size(), 10u);
    // The reading threads run a few batches ahead of Next, no more.
    EXPECT_LT(seen.front(), 0.5) << threads << " threads";
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
    EXPECT_EQ((*reader)->progress(), 1.0) << threads << " threads";
  }
  ReaderOptions empty;
  empty.files = {Write("empty.tsv", "")};
  auto reader = DataReader::Open(empty);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->progress(), -1);
}

// eval_holdout_fraction: the held-out lines are exactly those whose
// HoldoutHash is below the fraction; training readers get the others; the
// split is the same for any number of workers and threads.
TEST_F(DataReaderTest, HoldoutSplitsLinesByTheirText) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 1500)),
                   Write("b.tsv", Lines(1500, 500))};
  options.batch_size = 16;
  options.holdout_fraction = 0.25;
  std::vector<int> held_ids, kept_ids;
  for (int id = 0; id < 2000; ++id) {
    const bool held =
        HoldoutHash(GoodLine(id)) < (uint64_t{1} << 62);  // 0.25 * 2^64
    (held ? held_ids : kept_ids).push_back(id);
  }
  EXPECT_NEAR(held_ids.size(), 500, 60);
  for (int workers : {1, 3}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(absl::StrCat(workers, " workers, ", threads, " threads"));
      options.threads = threads;
      options.held_out = false;
      EXPECT_EQ(ReadAllRanks(options, workers), Expected(kept_ids));
      options.held_out = true;
      EXPECT_EQ(ReadAllRanks(options, workers), Expected(held_ids));
    }
  }
  // Skipped lines are not counted as read; a '\r' does not move a line.
  options.files = {Write("crlf.tsv", GoodLine(held_ids[0]) + "\r\n" +
                                         GoodLine(kept_ids[0]) + "\r\n")};
  options.num_workers = 1;
  options.worker_rank = 0;
  std::vector<Example> got;
  int64_t lines = 0;
  ASSERT_TRUE(ReadAll(options, &got, &lines).ok());
  EXPECT_EQ(got, Expected({held_ids[0]}));
  EXPECT_EQ(lines, 1);
  options.holdout_fraction = 0.6;
  EXPECT_THAT(DataReader::Open(options).status().message(),
              HasSubstr("holdout_fraction must be in [0, 0.5], got 0.6"));
}

// eval_holdout_fold: fold k holds out the lines whose hash is in the k-th
// quarter of the hash range; the four folds are disjoint and cover every
// line once, and fold 0 is the plain holdout.
TEST_F(DataReaderTest, HoldoutFoldsAreDisjointSharesOfTheLines) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 2000))};
  options.batch_size = 16;
  options.holdout_fraction = 0.25;
  options.held_out = true;
  std::vector<int> all_held;
  for (int fold = 0; fold < 4; ++fold) {
    SCOPED_TRACE(absl::StrCat("fold ", fold));
    std::vector<int> held;
    for (int id = 0; id < 2000; ++id) {
      if (HoldoutHash(GoodLine(id)) >> 62 == static_cast<uint64_t>(fold)) {
        held.push_back(id);
      }
    }
    EXPECT_NEAR(held.size(), 500, 60);
    options.holdout_fold = fold;
    EXPECT_EQ(ReadAllRanks(options, 2), Expected(held));
    all_held.insert(all_held.end(), held.begin(), held.end());
  }
  EXPECT_EQ(all_held.size(), 2000u);  // the folds partition the lines
  options.holdout_fold = 4;
  EXPECT_THAT(DataReader::Open(options).status().message(),
              HasSubstr("holdout_fold 4 is not a fold of holdout_fraction"));
}

TEST_F(DataReaderTest, MoreWorkersThanLines) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 20))};
  options.threads = 2;
  for (int workers : {7, 19, 20, 21, 64}) {
    EXPECT_EQ(ReadAllRanks(options, workers), Expected(Range(0, 20)))
        << workers << " workers";
  }
}

TEST_F(DataReaderTest, LastLineWithoutNewline) {
  std::string content = Lines(0, 5);
  content.pop_back();
  ReaderOptions options;
  options.files = {Write("a.tsv", content)};
  for (int workers : {1, 2, 5}) {
    EXPECT_EQ(ReadAllRanks(options, workers), Expected(Range(0, 5)));
  }
}

TEST_F(DataReaderTest, EmptyFileGivesNoBatches) {
  ReaderOptions options;
  options.files = {Write("empty.tsv", "")};
  std::vector<Example> got;
  int64_t lines = -1, bad = -1;
  ASSERT_TRUE(ReadAll(options, &got, &lines, &bad).ok());
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(lines, 0);
  EXPECT_EQ(bad, 0);
}

TEST_F(DataReaderTest, NormalizeBatchesCarryDenseFeatures) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 10))};
  options.data.set_int_features(DataConfig::NORMALIZE);
  std::unique_ptr<DataReader> reader = *DataReader::Open(options);
  Batch batch;
  ASSERT_TRUE(*reader->Next(&batch));
  ASSERT_EQ(batch.size(), 10);
  EXPECT_EQ(batch.num_slots, 26);
  EXPECT_EQ(batch.num_dense, 13);
  ASSERT_EQ(batch.dense.size(), 130u);
  EXPECT_FLOAT_EQ(batch.dense[13 * 7 + 4], std::log1p(49.0f));  // I5 = 7 * 7
}

TEST_F(DataReaderTest, LineLongerThanTheReadBuffer) {
  const std::string huge = "1\t" + std::string(3 << 20, '7');
  ReaderOptions options;
  options.files = {
      Write("a.tsv", absl::StrCat(GoodLine(1), "\n", huge, "\n", GoodLine(2)))};
  options.max_bad_line_ratio = 1.0;
  for (int workers : {1, 2, 3}) {
    EXPECT_EQ(ReadAllRanks(options, workers), Expected({1, 2}));
  }
  std::vector<Example> got;
  int64_t lines = 0, bad = 0;
  ASSERT_TRUE(ReadAll(options, &got, &lines, &bad).ok());
  EXPECT_EQ(lines, 3);
  EXPECT_EQ(bad, 1);
}

TEST_F(DataReaderTest, LineOverMaxLineBytesIsABadLineNamedByFileAndLine) {
  // 10 MiB without a newline: one bad line, the lines after it read.
  const std::string huge(10 << 20, '7');
  ReaderOptions options;
  const std::string path =
      Write("a.tsv", absl::StrCat(Lines(1, 2), huge, "\n", Lines(3, 2), huge));
  options.files = {path};
  options.max_bad_line_ratio = 0.5;
  for (int workers : {1, 3}) {
    EXPECT_EQ(ReadAllRanks(options, workers), Expected(Range(1, 4)));
  }
  std::vector<Example> got;
  int64_t lines = 0, bad = 0;
  ASSERT_TRUE(ReadAll(options, &got, &lines, &bad).ok());
  EXPECT_EQ(lines, 6);
  EXPECT_EQ(bad, 2);

  options.max_bad_line_ratio = 0;
  got.clear();
  EXPECT_THAT(
      ReadAll(options, &got),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(absl::StrCat("first bad line: ", path,
                                      ":3: line is longer than "
                                      "data.max_line_bytes = 1048576 bytes"))));

  // A smaller limit: a good line over it is bad too.
  options.max_bad_line_ratio = 1;
  options.data.set_max_line_bytes(GoodLine(2).size() - 1);
  options.files = {Write("b.tsv", absl::StrCat(GoodLine(1).substr(0, 60), "\n",
                                               GoodLine(2), "\n"))};
  got.clear();
  ASSERT_TRUE(ReadAll(options, &got, &lines, &bad).ok());
  EXPECT_EQ(lines, 2);
  EXPECT_EQ(bad, 2);  // the first is malformed, the second too long
}

TEST_F(DataReaderTest, BinaryFileIsBadLinesNotAnOutOfMemory) {
  std::string bytes(8 << 20, '\0');
  uint64_t x = 12345;
  for (char& c : bytes) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    c = static_cast<char>(x >> 56);
    if (c == '\n') c = 0;  // no line ends anywhere
  }
  ReaderOptions options;
  options.threads = 2;
  const std::string path = Write("model.bin", bytes);
  options.files = {path};
  std::vector<Example> got;
  EXPECT_THAT(ReadAll(options, &got),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("too many malformed lines: 1 of 1"),
                             HasSubstr(absl::StrCat(path,
                                                    ":1: line is longer than "
                                                    "data.max_line_bytes")))));
}

TEST_F(DataReaderTest, BatchesThatCouldOverflowTheirOffsetsAreRefused) {
  ReaderOptions options;
  options.files = {Write("a.txt", "1 0:1\n")};
  options.data.set_format(DataConfig::SLOT);
  options.data.set_num_slots(1);
  options.batch_size = 1 << 20;  // * 4096 features = 2^32 keys
  EXPECT_THAT(DataReader::Open(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "data reader: batch_size 1048576 examples of up to 4096 "
                       "keys each (SLOT, data.max_features_per_line) could "
                       "exceed the 4294967295 keys a batch holds (32-bit "
                       "offsets)"));
  options.data.set_max_features_per_line(4095);
  EXPECT_TRUE(DataReader::Open(options).ok());
}

TEST_F(DataReaderTest, BadLinesUnderTheLimitAreSkippedAndCounted) {
  std::string content;
  std::vector<int> good;
  for (int id = 1; id <= 2000; ++id) {
    const bool bad = id == 10 || id == 500 || id == 1999;
    absl::StrAppend(&content, bad ? "garbage" : GoodLine(id), "\n");
    if (!bad) good.push_back(id);
  }
  ReaderOptions options;
  options.files = {Write("a.tsv", content)};
  options.max_bad_line_ratio = 0.01;
  std::vector<Example> got;
  int64_t lines = 0, bad = 0;
  ASSERT_TRUE(ReadAll(options, &got, &lines, &bad).ok());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, Expected(good));
  EXPECT_EQ(lines, 2000);
  EXPECT_EQ(bad, 3);
}

TEST_F(DataReaderTest, TooManyBadLinesAtTheEndNamesTheFirstOne) {
  std::string content = Lines(1, 3) + "a\tb\tc\n" + Lines(5, 6);
  ReaderOptions options;
  options.files = {Write("a.tsv", content)};
  std::vector<Example> got;
  absl::Status status = ReadAll(options, &got);
  EXPECT_THAT(
      status,
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("too many malformed lines: 1 of 10 (ratio 0.1) exceed "
                       "max_bad_line_ratio 0.01; first bad line: ",
                       dir_,
                       "/a.tsv:4: expected 40 TAB-separated fields, "
                       "got 3")));
}

TEST_F(DataReaderTest, LineNumbersAreExactInRangesNotStartingAtZero) {
  std::string content = Lines(1, 249) + "oops\n" + Lines(251, 50);
  ReaderOptions options;
  options.files = {Write("a.tsv", content)};
  options.max_bad_line_ratio = 0;
  options.num_workers = 3;
  options.threads = 2;
  int failed = 0;
  for (int rank = 0; rank < 3; ++rank) {
    options.worker_rank = rank;
    std::vector<Example> got;
    absl::Status status = ReadAll(options, &got);
    if (status.ok()) continue;
    ++failed;
    EXPECT_GT(rank, 0);
    EXPECT_THAT(status.message(),
                HasSubstr(absl::StrCat("first bad line: ", dir_,
                                       "/a.tsv:250: expected 40 "
                                       "TAB-separated fields, got 1")));
  }
  EXPECT_EQ(failed, 1);
}

TEST_F(DataReaderTest, AbortsEarlyOnceEnoughLinesWereRead) {
  std::string content;
  for (int id = 1; id <= 20000; ++id) {
    absl::StrAppend(&content, id % 5 ? GoodLine(id) : "", "\n");
  }
  ReaderOptions options;
  options.files = {Write("a.tsv", content)};
  options.batch_size = 64;
  std::unique_ptr<DataReader> reader = *DataReader::Open(options);
  Batch batch;
  absl::StatusOr<bool> more;
  do {
    more = reader->Next(&batch);
  } while (more.ok() && *more);
  ASSERT_FALSE(more.ok());
  EXPECT_THAT(more.status().message(),
              HasSubstr(absl::StrCat("exceed max_bad_line_ratio 0.01; first "
                                     "bad line: ",
                                     dir_, "/a.tsv:5: expected 40")));
  EXPECT_LT(reader->lines_read(), 20000);
  EXPECT_GE(reader->lines_read(), 1000);
  // The error sticks.
  EXPECT_EQ(reader->Next(&batch).status(), more.status());
}

TEST_F(DataReaderTest, DestroyWhileThreadsWaitOnAFullQueue) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 3000))};
  options.batch_size = 1;
  options.threads = 2;
  std::unique_ptr<DataReader> reader = *DataReader::Open(options);
  Batch batch;
  ASSERT_TRUE(*reader->Next(&batch));
  EXPECT_EQ(batch.size(), 1);
  reader.reset();  // joins the threads; must not hang
}

TEST_F(DataReaderTest, MissingFile) {
  ReaderOptions options;
  options.files = {Write("a.tsv", Lines(0, 1)), dir_ + "/missing.tsv"};
  absl::StatusOr<std::unique_ptr<DataReader>> reader =
      DataReader::Open(options);
  EXPECT_THAT(
      reader,
      StatusIs(absl::StatusCode::kNotFound,
               absl::StrCat("cannot open input file '", dir_,
                            "/missing.tsv': No such file or directory")));
}

TEST_F(DataReaderTest, InvalidOptions) {
  ReaderOptions options;
  EXPECT_EQ(DataReader::Open(options).status().message(),
            "data reader: no input files");
  options.files = {Write("a.tsv", Lines(0, 1))};
  options.num_workers = 3;
  options.worker_rank = 3;
  EXPECT_EQ(DataReader::Open(options).status().message(),
            "data reader: worker_rank 3 is not in [0, num_workers = 3)");
  options.worker_rank = 0;
  options.shuffle_buffer = -1;
  EXPECT_EQ(DataReader::Open(options).status().message(),
            "data reader: shuffle_buffer must be >= 0, got -1");
  options.shuffle_buffer = 0;
  options.data.set_format(DataConfig::SLOT);
  EXPECT_EQ(DataReader::Open(options).status().message(),
            "slot parser: num_slots must be >= 1 and num_dense >= 0, got 0 "
            "and 0");
  options.data.set_format(DataConfig::CRITEO);
  options.files = {dir_};
  absl::Status status = DataReader::Open(options).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               absl::StrCat("input file '", dir_,
                                            "' is not a regular file")));
}

TEST_F(DataReaderTest, ExpandFiles) {
  const std::string p1 = Write("part-1.tsv", "");
  const std::string p0 = Write("part-0.tsv", "");
  const std::string other = Write("other.txt", "");
  absl::StatusOr<std::vector<std::string>> files =
      ExpandFiles({dir_ + "/part-*.tsv", other});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(*files, (std::vector<std::string>{p0, p1, other}));

  files = ExpandFiles({dir_ + "/*.nothing"});
  EXPECT_THAT(files, StatusIs(absl::StatusCode::kNotFound,
                              absl::StrCat("input pattern '", dir_,
                                           "/*.nothing' matches no files")));

  files = ExpandFiles({p0, dir_ + "/absent.tsv"});
  EXPECT_THAT(
      files, StatusIs(absl::StatusCode::kNotFound,
                      absl::StrCat("cannot stat input file '", dir_,
                                   "/absent.tsv': No such file or directory")));
}

}  // namespace
}  // namespace ps
