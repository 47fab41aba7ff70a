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

// A merge, Clear, then another merge over other keys: the second merge
// must not see the first one's keys (the key index is built only once a
// second step comes, and dropped by Clear).
TEST(PushMergerTest, MergeAfterClearSeesOnlyItsOwnSteps) {
  PushMerger merger(1, 0);
  merger.Add(std::vector<uint64_t>{1, 2}, std::vector<float>{1, 2}, {});
  merger.Add(std::vector<uint64_t>{2, 3}, std::vector<float>{10, 30}, {});
  merger.Add(std::vector<uint64_t>{3}, std::vector<float>{100}, {});
  EXPECT_EQ(merger.keys(), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(merger.grads(), (std::vector<float>{1, 12, 130}));
  merger.Clear();
  merger.Add(std::vector<uint64_t>{3, 4}, std::vector<float>{5, 6}, {});
  EXPECT_EQ(merger.keys(), (std::vector<uint64_t>{3, 4}));
  merger.Add(std::vector<uint64_t>{4, 1}, std::vector<float>{7, 8}, {});
  EXPECT_EQ(merger.keys(), (std::vector<uint64_t>{3, 4, 1}));
  EXPECT_EQ(merger.grads(), (std::vector<float>{5, 13, 8}));
  merger.Clear();
  merger.Add(std::vector<uint64_t>{9}, std::vector<float>{1}, {});
  EXPECT_EQ(merger.keys(), (std::vector<uint64_t>{9}));
  EXPECT_EQ(merger.grads(), (std::vector<float>{1}));
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

TEST(DeduplicateTest, KeysOfDifferentTablesAreDifferentRows) {
  Batch batch;
  batch.num_slots = 3;
  // Slots 0 and 2 read table 1, slot 1 table 0. Example 0 (label 1): slot 0
  // {5}, slot 1 {5, 6}, slot 2 {6}. Example 1 (label 0): slot 0 {6}, slot 1
  // {}, slot 2 {5, 7}.
  batch.labels = {1, 0};
  batch.keys = {5, 5, 6, 6, 6, 5, 7};
  batch.offsets = {0, 1, 3, 4, 5, 5, 7};
  const std::vector<int> slot_table = {1, 0, 1};
  const UniqueKeys u = Deduplicate(batch, slot_table, 2);
  EXPECT_EQ(u.table_rows, (std::vector<int64_t>{2, 3}));
  // Table 0: {5, 6}; table 1: {5, 6, 7}.
  EXPECT_EQ(u.unique_keys, (std::vector<uint64_t>{5, 6, 5, 6, 7}));
  EXPECT_EQ(u.TableBegin(1), 2u);
  EXPECT_EQ(u.key_index, (std::vector<uint32_t>{0, 0, 1, 1, 1, 0, 2}));
  EXPECT_EQ(u.shows, (std::vector<float>{1, 1, 2, 2, 1}));
  EXPECT_EQ(u.clicks, (std::vector<float>{1, 1, 1, 1, 0}));
  // One table: the plain deduplication.
  const UniqueKeys one = Deduplicate(batch, std::vector<int>{0, 0, 0}, 1);
  EXPECT_EQ(one.unique_keys, (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(one.table_rows, (std::vector<int64_t>{3}));
}

TEST(PushMergerTest, MergesEachTableOnItsOwn) {
  PushMerger merger(std::vector<int>{1, 2}, /*dense_size=*/1);
  const std::vector<uint64_t> keys0 = {7}, keys1 = {7, 8};
  const std::vector<float> g0 = {1}, g1 = {1, 2, 3, 4};
  const std::vector<float> shows0 = {1}, shows1 = {2, 1};
  std::vector<SparsePush> parts = {{0, 1, keys0, g0, shows0, shows0},
                                   {0, 2, keys1, g1, shows1, shows1}};
  merger.Add(parts, std::vector<float>{1});
  merger.Add(parts, {});
  EXPECT_EQ(merger.num_tables(), 2);
  EXPECT_EQ(merger.keys(0), (std::vector<uint64_t>{7}));
  EXPECT_EQ(merger.grads(0), (std::vector<float>{2}));
  EXPECT_EQ(merger.keys(1), (std::vector<uint64_t>{7, 8}));
  EXPECT_EQ(merger.grads(1), (std::vector<float>{2, 4, 6, 8}));
  EXPECT_EQ(std::vector<float>(merger.shows(1).begin(), merger.shows(1).end()),
            (std::vector<float>{4, 2}));
  // A step without counts in one table drops the counts of all.
  parts[1].shows = {};
  merger.Add(parts, {});
  EXPECT_TRUE(merger.shows(0).empty());
  EXPECT_TRUE(merger.shows(1).empty());
}

}  // namespace
}  // namespace ps
