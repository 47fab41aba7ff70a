#include "worker/client/push_merger.h"

#include <vector>

#include "gtest/gtest.h"
#include "worker/data/batch.h"

namespace ps {
namespace {

TEST(PushMergerTest, SumsGradientsPerKeyInFirstSeenOrder) {
  PushMerger merger(/*dim=*/2, /*dense_size=*/3);
  EXPECT_TRUE(merger.empty());
  merger.Add(std::vector<uint64_t>{7, 9}, std::vector<float>{1, 2, 3, 4},
             std::vector<float>{1, 1, 1});
  merger.Add(std::vector<uint64_t>{9, 5}, std::vector<float>{10, 20, 30, 40},
             std::vector<float>{0.5, 0, -1});
  EXPECT_EQ(merger.steps(), 2);
  EXPECT_EQ(merger.keys(), (std::vector<uint64_t>{7, 9, 5}));
  EXPECT_EQ(merger.grads(), (std::vector<float>{1, 2, 13, 24, 30, 40}));
  auto dense = merger.dense();
  EXPECT_EQ(std::vector<float>(dense.begin(), dense.end()),
            (std::vector<float>{1.5, 1, 0}));
}

TEST(PushMergerTest, SumsShowsAndClicksPerKeyOnlyWhenEveryStepHasThem) {
  PushMerger merger(/*dim=*/1, /*dense_size=*/0);
  merger.Add(std::vector<uint64_t>{7, 9}, std::vector<float>{1, 2}, {},
             std::vector<float>{3, 1}, std::vector<float>{1, 0});
  merger.Add(std::vector<uint64_t>{9, 5}, std::vector<float>{1, 1}, {},
             std::vector<float>{2, 4}, std::vector<float>{2, 1});
  auto shows = merger.shows();
  auto clicks = merger.clicks();
  EXPECT_EQ(std::vector<float>(shows.begin(), shows.end()),
            (std::vector<float>{3, 3, 4}));
  EXPECT_EQ(std::vector<float>(clicks.begin(), clicks.end()),
            (std::vector<float>{1, 2, 1}));
  // A step without counts: the merged push carries none (servers then
  // count 1 show per key rather than a wrong partial sum).
  merger.Add(std::vector<uint64_t>{7}, std::vector<float>{1}, {});
  EXPECT_TRUE(merger.shows().empty());
  EXPECT_TRUE(merger.clicks().empty());
  merger.Clear();
  merger.Add(std::vector<uint64_t>{1}, std::vector<float>{1}, {},
             std::vector<float>{2}, std::vector<float>{0});
  EXPECT_EQ(merger.shows().size(), 1u);
}

TEST(PushMergerTest, NoDenseGradientMeansNoDensePush) {
  PushMerger merger(1, 4);
  merger.Add(std::vector<uint64_t>{1}, std::vector<float>{2}, {});
  EXPECT_TRUE(merger.dense().empty());
}

TEST(PushMergerTest, ClearStartsOver) {
  PushMerger merger(1, 1);
  merger.Add(std::vector<uint64_t>{1}, std::vector<float>{2},
             std::vector<float>{3});
  merger.Clear();
  EXPECT_TRUE(merger.empty());
  EXPECT_TRUE(merger.keys().empty());
  merger.Add(std::vector<uint64_t>{1}, std::vector<float>{5},
             std::vector<float>{1});
  EXPECT_EQ(merger.grads(), std::vector<float>{5});
  EXPECT_EQ(merger.dense()[0], 1.0f);
}

TEST(DeduplicateTest, CountsShowsAndClicksPerDistinctKey) {
  Batch batch;
  batch.num_slots = 2;
  // Example 0 (label 1): slot 0 {5, 6}, slot 1 {5}. Example 1 (label 0):
  // slot 0 {}, slot 1 {6, 7}.
  batch.labels = {1, 0};
  batch.keys = {5, 6, 5, 6, 7};
  batch.offsets = {0, 2, 3, 3, 5};
  const UniqueKeys u = Deduplicate(batch);
  EXPECT_EQ(u.unique_keys, (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(u.key_index, (std::vector<uint32_t>{0, 1, 0, 1, 2}));
  EXPECT_EQ(u.shows, (std::vector<float>{2, 2, 1}));
  EXPECT_EQ(u.clicks, (std::vector<float>{2, 1, 0}));
}

}  // namespace
}  // namespace ps
