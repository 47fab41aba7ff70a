#include "worker/push_merger.h"

#include <vector>

#include "gtest/gtest.h"

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

}  // namespace
}  // namespace ps
