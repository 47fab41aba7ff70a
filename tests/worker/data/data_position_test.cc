// Data positions (worker/data/data_reader.h): a reader opened at the position
// another reader reported after any batch returns exactly the examples the
// first had not returned, in the same order: plain and .gz files, across
// file boundaries, several workers, shuffled input, epochs and any number
// of parser threads. Positions that do not fit are refused.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/reader_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/data_reader.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

// SLOT lines "label 0:id"; every `bad_every`-th line (if > 0) is malformed.
std::string Lines(int first, int count, int bad_every = 0) {
  std::string out;
  for (int id = first; id < first + count; ++id) {
    if (bad_every > 0 && id % bad_every == 0) {
      absl::StrAppend(&out, "garbage line ", id, "\n");
    } else {
      absl::StrAppend(&out, id % 2, " 0:", id, "\n");
    }
  }
  return out;
}

class DataPositionTest : public testing_util::TempDirTest {
 protected:
  ReaderOptions Options(std::vector<std::string> files) {
    ReaderOptions o;
    o.files = std::move(files);
    o.batch_size = 7;
    o.max_bad_line_ratio = 1.0;
    o.log_bad_lines = 0;
    o.data.set_format(DataConfig::SLOT);
    o.data.set_num_slots(1);
    for (int id = 0; id < 1000; ++id) ids_[FeatureKey(0, 0, id)] = id;
    return o;
  }

  // Appends the ids of a batch to `out`.
  void Append(const Batch& b, std::vector<int>* out) {
    for (int i = 0; i < b.size(); ++i) {
      auto it = ids_.find(b.keys[b.offsets[i]]);
      ASSERT_NE(it, ids_.end());
      out->push_back(it->second);
    }
  }

  // Reads `batches` batches (all when < 0), appending ids to `out`; returns
  // the reader for its position.
  std::unique_ptr<DataReader> Read(const ReaderOptions& o, int batches,
                                   std::vector<int>* out) {
    auto reader = DataReader::Open(o);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return nullptr;
    Batch b;
    for (int k = 0; batches < 0 || k < batches; ++k) {
      auto more = (*reader)->Next(&b);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      Append(b, out);
    }
    return std::move(reader).value();
  }

  // For every cut after 0..all batches: the examples before the cut plus
  // those of a reader started at the cut's position equal one whole read.
  void CheckEveryCut(ReaderOptions o) {
    std::vector<int> whole;
    Read(o, -1, &whole);
    ASSERT_FALSE(whole.empty());
    const int batches =
        (static_cast<int>(whole.size()) + o.batch_size - 1) / o.batch_size;
    for (int cut = 0; cut <= batches + 1; ++cut) {
      SCOPED_TRACE(absl::StrCat("cut after ", cut, " batches"));
      std::vector<int> got;
      auto first = Read(o, cut, &got);
      ASSERT_NE(first, nullptr);
      auto position = first->Position();
      ASSERT_TRUE(position.ok()) << position.status();
      EXPECT_EQ(position->examples_done(), static_cast<int64_t>(got.size()));
      EXPECT_EQ(position->worker_rank(), o.worker_rank);
      EXPECT_EQ(position->epoch(), o.epoch);
      ReaderOptions resumed = o;
      resumed.start = *position;
      auto second = Read(resumed, -1, &got);
      ASSERT_NE(second, nullptr);
      EXPECT_EQ(got, whole);
      auto end = second->Position();
      ASSERT_TRUE(end.ok());
      EXPECT_EQ(end->examples_done(), static_cast<int64_t>(whole.size()));
      if (o.shuffle_buffer == 0) {
        EXPECT_EQ(end->file_index(), static_cast<int>(o.files.size()));
      }
    }
  }

  std::map<uint64_t, int> ids_;
};

TEST_F(DataPositionTest, PlainFilesAcrossFileBoundaries) {
  ReaderOptions o =
      Options({Write("a.txt", Lines(0, 20)), Write("b.txt", Lines(20, 3)),
               Write("c.txt", Lines(23, 30, /*bad_every=*/9))});
  CheckEveryCut(o);
}

TEST_F(DataPositionTest, EveryWorkerOfThree) {
  ReaderOptions o =
      Options({Write("a.txt", Lines(0, 50)), Write("b.txt", Lines(50, 31))});
  o.num_workers = 3;
  for (int rank = 0; rank < 3; ++rank) {
    SCOPED_TRACE(rank);
    o.worker_rank = rank;
    CheckEveryCut(o);
  }
}

TEST_F(DataPositionTest, GzipFilesCountLines) {
  ReaderOptions o = Options({WriteGzip("a.txt.gz", Lines(0, 24, 5)),
                             Write("b.txt", Lines(24, 10)),
                             WriteGzip("c.txt.gz", Lines(34, 17))});
  CheckEveryCut(o);
  // A position inside a .gz file is its count of lines consumed.
  std::vector<int> got;
  auto r = Read(o, 2, &got);
  auto p = r->Position();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->file_index(), 0);
  EXPECT_EQ(p->file(), o.files[0]);
  EXPECT_EQ(p->offset(), 18);  // 14 good lines + 4 bad (ids 0, 5, 10, 15)
}

TEST_F(DataPositionTest, PlainOffsetIsTheNextLinesByte) {
  const std::string text = Lines(0, 10);
  ReaderOptions o = Options({Write("a.txt", text)});
  std::vector<int> got;
  auto r = Read(o, 1, &got);
  auto p = r->Position();
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(text.substr(p->offset(), 5), "1 0:7");
}

TEST_F(DataPositionTest, ShuffledInputResumesByExampleCount) {
  ReaderOptions o = Options(
      {Write("a.txt", Lines(0, 40)), WriteGzip("b.txt.gz", Lines(40, 25))});
  o.shuffle_buffer = 10;
  o.shuffle_seed = 5;
  CheckEveryCut(o);
  std::vector<int> got;
  auto p = Read(o, 3, &got)->Position();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->file_index(), -1);
  EXPECT_EQ(p->examples_done(), 21);
}

// Several parser threads give the batches, the order and the positions of
// one thread: after every batch the positions agree, and a reader resumed
// at any of them with another thread count returns the rest. The plain
// files are cut into many small tasks (a, and c with bad lines); b is .gz.
TEST_F(DataPositionTest, ThreadsChangeNeitherBatchesNorPositions) {
  ReaderOptions o = Options({Write("a.txt", Lines(0, 600)),
                             WriteGzip("b.txt.gz", Lines(600, 90, 7)),
                             Write("c.txt", Lines(690, 300, 11))});
  for (int workers : {1, 2}) {
    o.num_workers = workers;
    for (int rank = 0; rank < workers; ++rank) {
      o.worker_rank = rank;
      // Every batch of one reader, with the position after it.
      auto batches = [&](int threads, std::vector<std::vector<int>>* ids,
                         std::vector<std::string>* positions) {
        ReaderOptions t = o;
        t.threads = threads;
        testing_util::ReadEachBatch(
            t, [&](const Batch& b, const DataReader& reader) {
              ids->emplace_back();
              Append(b, &ids->back());
              auto p = reader.Position();
              ASSERT_TRUE(p.ok()) << p.status();
              positions->push_back(p->ShortDebugString());
            });
      };
      std::vector<std::vector<int>> want_ids;
      std::vector<std::string> want_positions;
      batches(1, &want_ids, &want_positions);
      ASSERT_GT(want_ids.size(), 20u);
      for (int threads : {2, 3, 8}) {
        SCOPED_TRACE(absl::StrCat(workers, " workers, rank ", rank, ", ",
                                  threads, " threads"));
        std::vector<std::vector<int>> ids;
        std::vector<std::string> positions;
        batches(threads, &ids, &positions);
        EXPECT_EQ(ids, want_ids);
        EXPECT_EQ(positions, want_positions);
      }
      // Cut with 3 threads, resumed with 2.
      std::vector<int> whole;
      for (const auto& batch : want_ids) {
        whole.insert(whole.end(), batch.begin(), batch.end());
      }
      for (int cut : {1, 5, 17, static_cast<int>(want_ids.size()) - 1}) {
        SCOPED_TRACE(absl::StrCat("rank ", rank, " cut after ", cut));
        ReaderOptions first = o;
        first.threads = 3;
        std::vector<int> got;
        auto position = Read(first, cut, &got)->Position();
        ASSERT_TRUE(position.ok());
        ReaderOptions second = o;
        second.threads = 2;
        second.start = *position;
        Read(second, -1, &got);
        EXPECT_EQ(got, whole);
      }
    }
  }
  // A shuffled epoch is the same with any number of threads.
  o.num_workers = 1;
  o.worker_rank = 0;
  o.shuffle_buffer = 50;
  o.shuffle_seed = 3;
  std::vector<int> one, three;
  Read(o, -1, &one);
  o.threads = 3;
  Read(o, -1, &three);
  EXPECT_EQ(one, three);
  EXPECT_EQ(one.size(), 600u + 90 - 13 + 300 - 27);
}

// A trainer's epoch loop: interrupted in epoch 1, resumed from the position,
// then epoch 2 from its start: the same examples as without interruption.
TEST_F(DataPositionTest, ResumeInTheMiddleOfTheSecondEpoch) {
  ReaderOptions o = Options({Write("a.txt", Lines(0, 30))});
  std::vector<int> whole;
  for (int epoch = 0; epoch < 3; ++epoch) {
    o.epoch = epoch;
    Read(o, -1, &whole);
  }
  std::vector<int> got;
  o.epoch = 0;
  Read(o, -1, &got);
  o.epoch = 1;
  auto position = Read(o, 2, &got)->Position();
  ASSERT_TRUE(position.ok());
  EXPECT_EQ(position->epoch(), 1);
  // "Restart": epoch 1 from the position, epoch 2 whole.
  o.start = *position;
  Read(o, -1, &got);
  o.start.reset();
  o.epoch = 2;
  Read(o, -1, &got);
  EXPECT_EQ(got, whole);

  // A position at the end of an epoch resumes into an empty rest.
  o.epoch = 0;
  auto end = Read(o, -1, &got)->Position();
  ASSERT_TRUE(end.ok());
  o.start = *end;
  std::vector<int> rest;
  Read(o, -1, &rest);
  EXPECT_TRUE(rest.empty());
}

TEST_F(DataPositionTest, PositionsThatDoNotFitAreRefused) {
  ReaderOptions o =
      Options({Write("a.txt", Lines(0, 30)), Write("b.txt", Lines(30, 5))});
  std::vector<int> got;
  auto p = Read(o, 1, &got)->Position();
  ASSERT_TRUE(p.ok());

  auto open_with = [&](DataPosition start, ReaderOptions opts) {
    opts.start = start;
    return DataReader::Open(opts).status();
  };
  DataPosition other_file = *p;
  other_file.set_file("/elsewhere/a.txt");
  absl::Status s = open_with(other_file, o);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("names '/elsewhere/a.txt' as file 0")));

  DataPosition past_end = *p;
  past_end.set_offset(100000);
  s = open_with(past_end, o);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          HasSubstr("past the end of '" + o.files[0] + "'")));

  ReaderOptions epoch1 = o;
  epoch1.epoch = 1;
  s = open_with(*p, epoch1);
  EXPECT_THAT(s,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("epoch 0, this reader is worker 0 epoch 1")));

  DataPosition far = *p;
  far.set_file_index(7);
  EXPECT_THAT(open_with(far, o),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  ReaderOptions shuffled = o;
  shuffled.shuffle_buffer = 4;
  EXPECT_THAT(open_with(*p, shuffled),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace ps
