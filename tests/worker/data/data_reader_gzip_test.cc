// DataReader on gzip-compressed files: whole files round-robin over workers,
// same examples as the plain file, exact line numbers. Lines are in the SLOT
// format, "label 0:id 1:id*3", so an example's slot-0 key names its line.
#include <algorithm>
#include <filesystem>
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

ReaderOptions SlotOptions() {
  ReaderOptions options;
  options.data.set_format(DataConfig::SLOT);
  options.data.set_num_slots(2);
  options.batch_size = 7;
  return options;
}

// Every batch Next returns, in order.
absl::StatusOr<std::vector<Batch>> ReadBatches(const ReaderOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<DataReader> reader,
                   DataReader::Open(options));
  std::vector<Batch> batches;
  while (true) {
    Batch batch;
    ASSIGN_OR_RETURN(bool more, reader->Next(&batch));
    if (!more) break;
    batches.push_back(std::move(batch));
  }
  return batches;
}

// The slot-0 key of every example the ranks of `workers` read, sorted.
std::vector<uint64_t> ReadAllRanks(ReaderOptions options, int workers) {
  std::vector<uint64_t> keys;
  options.num_workers = workers;
  for (int rank = 0; rank < workers; ++rank) {
    options.worker_rank = rank;
    absl::StatusOr<std::vector<Batch>> batches = ReadBatches(options);
    EXPECT_TRUE(batches.ok()) << batches.status();
    if (!batches.ok()) continue;
    for (const Batch& b : *batches) {
      for (int i = 0; i < b.size(); ++i) {
        keys.push_back(b.keys[b.offsets[i * b.num_slots]]);
      }
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

using DataReaderGzipTest = testing_util::TempDirTest;

TEST_F(DataReaderGzipTest, GzipReadsExactlyAsThePlainFile) {
  std::string text = NumberedLines(0, 1000);
  text.pop_back();  // last line without '\n'
  ReaderOptions plain = SlotOptions();
  plain.files = {Write("a.txt", text)};
  ReaderOptions gzip = SlotOptions();
  gzip.files = {WriteGzip("a.txt.gz", text)};
  for (int threads : {1, 3}) {
    plain.threads = gzip.threads = threads;
    absl::StatusOr<std::vector<Batch>> want = ReadBatches(plain);
    absl::StatusOr<std::vector<Batch>> got = ReadBatches(gzip);
    ASSERT_TRUE(want.ok() && got.ok());
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < got->size(); ++i) {
      EXPECT_EQ((*got)[i].labels, (*want)[i].labels) << i;
      EXPECT_EQ((*got)[i].keys, (*want)[i].keys) << i;
      EXPECT_EQ((*got)[i].offsets, (*want)[i].offsets) << i;
    }
    EXPECT_EQ(want->size(), 143u);  // ceil(1000 / 7)
  }
  EXPECT_EQ(ReadAllRanks(gzip, 1), Sorted(NumberedLineKeys(0, 1000)));
}

TEST_F(DataReaderGzipTest, GzipFilesGoRoundRobinAndEveryLineIsReadOnce) {
  ReaderOptions options = SlotOptions();
  // .gz files 0..4 hold ids 0.., 100.., ..., 400..; one plain file between.
  for (int g = 0; g < 5; ++g) {
    options.files.push_back(WriteGzip(absl::StrCat("part-", g, ".gz"),
                                      NumberedLines(g * 100, 10 + g)));
    if (g == 1)
      options.files.push_back(Write("plain.txt", NumberedLines(1000, 50)));
  }
  std::vector<uint64_t> all = NumberedLineKeys(1000, 50);
  for (int g = 0; g < 5; ++g) {
    for (uint64_t k : NumberedLineKeys(g * 100, 10 + g)) all.push_back(k);
  }
  for (int workers : {1, 2, 3, 7}) {
    for (int threads : {1, 2}) {
      options.threads = threads;
      EXPECT_EQ(ReadAllRanks(options, workers), Sorted(all))
          << workers << " workers, " << threads << " threads";
    }
  }

  // Which worker reads which .gz file: the k-th .gz file (the plain file
  // not counted) goes to worker k % 2.
  const std::vector<uint64_t> plain = Sorted(NumberedLineKeys(1000, 50));
  options.num_workers = 2;
  for (int rank = 0; rank < 2; ++rank) {
    options.worker_rank = rank;
    std::vector<uint64_t> want;
    for (int g = rank; g < 5; g += 2) {
      for (uint64_t k : NumberedLineKeys(g * 100, 10 + g)) want.push_back(k);
    }
    std::vector<uint64_t> got;
    absl::StatusOr<std::vector<Batch>> batches = ReadBatches(options);
    ASSERT_TRUE(batches.ok()) << batches.status();
    for (const Batch& b : *batches) {
      for (int i = 0; i < b.size(); ++i) {
        const uint64_t key = b.keys[b.offsets[i * 2]];
        if (!std::binary_search(plain.begin(), plain.end(), key)) {
          got.push_back(key);
        }
      }
    }
    EXPECT_EQ(Sorted(got), Sorted(want)) << "rank " << rank;
  }
}

TEST_F(DataReaderGzipTest, BadLineInGzipNamesItsExactLine) {
  ReaderOptions options = SlotOptions();
  options.max_bad_line_ratio = 0;
  options.threads = 2;
  const std::string text =
      NumberedLines(1, 2499) + "1 0:x\n" + NumberedLines(2501, 100);
  options.files = {WriteGzip("a.gz", NumberedLines(0, 10)),
                   WriteGzip("b.gz", text)};
  options.num_workers = 2;
  options.worker_rank = 1;
  absl::StatusOr<std::vector<Batch>> batches = ReadBatches(options);
  EXPECT_THAT(
      batches,
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(absl::StrCat("first bad line: ", dir_,
                                      "/b.gz:2500: token 2 '0:x': key 'x' is "
                                      "not a decimal integer in [0, 2^64)"))));
  options.worker_rank = 0;
  EXPECT_TRUE(ReadBatches(options).ok());
}

// .gz files larger than a block of text (128 KiB) are parsed a block at a
// time by whichever thread is free: batches stay those of the same text in
// plain files, in file order, for any number of threads, and a bad line deep
// in a later block is named by its exact line.
TEST_F(DataReaderGzipTest, LargeGzipFilesGiveThePlainFilesBatches) {
  ReaderOptions plain = SlotOptions();
  ReaderOptions gzip = SlotOptions();
  for (int f = 0; f < 3; ++f) {
    std::string text = NumberedLines(f * 40000, 40000);
    if (f == 1) text += "1 0:x\n" + NumberedLines(200000, 5);
    plain.files.push_back(Write(absl::StrCat("p", f, ".txt"), text));
    gzip.files.push_back(WriteGzip(absl::StrCat("g", f, ".gz"), text));
  }
  ASSERT_GT(std::filesystem::file_size(plain.files[0]), 3u * (128 << 10));
  plain.batch_size = gzip.batch_size = 500;
  plain.max_bad_line_ratio = gzip.max_bad_line_ratio = 0.01;
  absl::StatusOr<std::vector<Batch>> want = ReadBatches(plain);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ(want->size(), 241u);  // 120005 examples, 500 a batch
  for (int threads : {1, 2, 4}) {
    SCOPED_TRACE(absl::StrCat(threads, " threads"));
    gzip.threads = threads;
    absl::StatusOr<std::vector<Batch>> got = ReadBatches(gzip);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < got->size(); ++i) {
      ASSERT_EQ((*got)[i].keys, (*want)[i].keys) << i;
      ASSERT_EQ((*got)[i].labels, (*want)[i].labels) << i;
    }
  }
  gzip.max_bad_line_ratio = 0;
  gzip.threads = 3;
  absl::StatusOr<std::vector<Batch>> bad = ReadBatches(gzip);
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr(absl::StrCat("first bad line: ", dir_,
                                                   "/g1.gz:40001: "))));
}

TEST_F(DataReaderGzipTest, TooLongLineInGzipIsABadLineWithItsNumber) {
  ReaderOptions options = SlotOptions();
  const std::string text = NumberedLines(0, 3000) + std::string(3 << 20, '5') +
                           "\n" + NumberedLines(3000, 3000);
  options.files = {WriteGzip("a.gz", text)};
  options.max_bad_line_ratio = 0.01;
  std::vector<uint64_t> want = NumberedLineKeys(0, 6000);
  std::sort(want.begin(), want.end());
  for (int threads : {1, 3}) {
    options.threads = threads;
    EXPECT_EQ(ReadAllRanks(options, 1), want) << threads << " threads";
  }
  options.max_bad_line_ratio = 0;
  EXPECT_THAT(
      ReadBatches(options),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(absl::StrCat("first bad line: ", dir_,
                                      "/a.gz:3001: line is longer than "
                                      "data.max_line_bytes = 1048576 bytes"))));
}

TEST_F(DataReaderGzipTest, GzipLimitsOfTheConfigStopTheReader) {
  ReaderOptions options = SlotOptions();
  options.files = {WriteGzip("a.gz", NumberedLines(0, 200))};
  options.data.set_gzip_max_decompressed_bytes(1000);
  EXPECT_THAT(ReadBatches(options),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr(absl::StrCat(
                           "input file '", dir_,
                           "/a.gz' decompresses to more than 1000 bytes "
                           "(data.gzip_max_decompressed_bytes)"))));
  options.data.set_gzip_max_decompressed_bytes(0);  // no limit
  EXPECT_TRUE(ReadBatches(options).ok());
}

TEST_F(DataReaderGzipTest, MissingGzipFileFailsOnEveryWorker) {
  ReaderOptions options = SlotOptions();
  options.files = {WriteGzip("a.gz", NumberedLines(0, 3)), dir_ + "/b.gz"};
  options.num_workers = 2;
  for (int rank = 0; rank < 2; ++rank) {
    options.worker_rank = rank;
    absl::StatusOr<std::unique_ptr<DataReader>> reader =
        DataReader::Open(options);
    EXPECT_THAT(reader,
                StatusIs(absl::StatusCode::kNotFound,
                         absl::StrCat("cannot open input file '", dir_,
                                      "/b.gz': No such file or directory")));
  }
}

TEST_F(DataReaderGzipTest, CorruptGzipStopsTheReader) {
  ReaderOptions options = SlotOptions();
  options.files = {Write("plain.gz", NumberedLines(0, 3))};
  absl::StatusOr<std::vector<Batch>> batches = ReadBatches(options);
  EXPECT_THAT(
      batches,
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("input file '", dir_,
                       "/plain.gz' ends in .gz but is not gzip-compressed")));
}

}  // namespace
}  // namespace ps
