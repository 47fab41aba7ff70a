#include "common/hash.h"

#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(HashTest, Mix64IsFixed) {
  // Part of the checkpoint and wire format: these values must never change.
  EXPECT_EQ(Mix64(0), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(Mix64(1), 0x910A2DEC89025CC1ULL);
}

TEST(HashTest, SameValueInTwoSlotsGivesTwoKeys) {
  EXPECT_NE(FeatureKey(0, 1, 42), FeatureKey(0, 2, 42));
  EXPECT_NE(FeatureKey(0, 1, 42), FeatureKey(1, 1, 42));
  EXPECT_EQ(FeatureKey(7, 3, 42), FeatureKey(7, 3, 42));
}

TEST(HashTest, ServerRoutingIsBalancedAndInRange) {
  constexpr int kServers = 3;
  std::vector<int> count(kServers, 0);
  for (uint64_t v = 0; v < 30000; ++v) {
    int s = ServerForKey(FeatureKey(0, 5, v), kServers);
    ASSERT_GE(s, 0);
    ASSERT_LT(s, kServers);
    ++count[s];
  }
  for (int c : count) EXPECT_NEAR(c, 10000, 500);
}

TEST(HashTest, SubShardIsIndependentOfServer) {
  // Keys of one server must still spread over all its sub-shards.
  constexpr int kShards = 8;
  std::vector<int> count(kShards, 0);
  int n = 0;
  for (uint64_t v = 0; n < 16000; ++v) {
    uint64_t key = FeatureKey(0, 1, v);
    if (ServerForKey(key, 2) != 0) continue;
    ++n;
    ++count[SubShardForKey(key, kShards)];
  }
  for (int c : count) EXPECT_NEAR(c, 2000, 250);
}

TEST(HashTest, HashUniformInUnitInterval) {
  double sum = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    float u = HashUniform(1, i, 3);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

}  // namespace
}  // namespace ps
