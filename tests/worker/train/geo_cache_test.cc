#include "worker/train/geo_cache.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/optimizer_test_util.h"

namespace ps {
namespace {

TEST(GeoCacheTest, DeltasAreLocalUpdatesSinceThePull) {
  GeoCache cache(/*dim=*/2, Sgd(0.5), /*dense_size=*/2);
  std::vector<uint64_t> keys = {3, 4};
  EXPECT_EQ(cache.Missing(keys), keys);
  cache.Insert(keys, std::vector<float>{1, 1, 2, 2});
  EXPECT_TRUE(cache.Missing(keys).empty());
  cache.ApplySparse(std::vector<uint64_t>{4}, std::vector<float>{2, -2},
                    /*step=*/1, {});
  cache.ApplySparse(std::vector<uint64_t>{4}, std::vector<float>{2, 0},
                    /*step=*/1, {});
  std::vector<float> rows(4);
  cache.Gather(keys, absl::MakeSpan(rows));
  EXPECT_EQ(rows, (std::vector<float>{1, 1, 0, 3}));
  std::vector<uint64_t> dkeys;
  std::vector<float> deltas;
  cache.SparseDeltas(&dkeys, &deltas);
  EXPECT_EQ(dkeys, keys);
  EXPECT_EQ(deltas, (std::vector<float>{0, 0, -2, 1}));
}

TEST(GeoCacheTest, DenseDeltaIsAgainstTheBase) {
  GeoCache cache(1, Sgd(0.1), 2);
  cache.SetDenseBase(std::vector<float>{1, 2});
  // The local steps (on the model's backend) moved the vector to this.
  std::vector<float> params = {0.5, 3};
  EXPECT_EQ(cache.DenseDelta(params), (std::vector<float>{-0.5, 1}));
}

TEST(GeoCacheTest, ClearForgetsRowsButKeepsOptimizerState) {
  OptimizerConfig adagrad;
  adagrad.set_type(OptimizerConfig::ADAGRAD);
  adagrad.set_learning_rate(1.0);
  adagrad.set_epsilon(1e-6);
  GeoCache cache(1, adagrad, 0);
  cache.Insert(std::vector<uint64_t>{8}, std::vector<float>{0});
  cache.ApplySparse(std::vector<uint64_t>{8}, std::vector<float>{3},
                    /*step=*/1, {});
  cache.Clear(/*step=*/10);
  EXPECT_EQ(cache.synced_step(), 10);
  EXPECT_EQ(cache.size(), 0);
  EXPECT_EQ(cache.Missing(std::vector<uint64_t>{8}).size(), 1u);
  // Next round: the accumulator still holds 9, so a gradient of 4 moves the
  // weight by 4 / sqrt(9 + 16) = 0.8, not by 1 as on a fresh row.
  cache.Insert(std::vector<uint64_t>{8}, std::vector<float>{0});
  cache.ApplySparse(std::vector<uint64_t>{8}, std::vector<float>{4},
                    /*step=*/1, {});
  std::vector<float> row(1);
  cache.Gather(std::vector<uint64_t>{8}, absl::MakeSpan(row));
  EXPECT_NEAR(row[0], -0.8f, 1e-5);
}

// GEO's local updates follow the tables' schedule and l2_by_frequency: SGD,
// lr 1 with 2 warm-up steps, l2 0.5 over the batch's shows.
TEST(GeoCacheTest, LocalUpdatesUseTheScheduleAndTheShows) {
  OptimizerConfig c = Sgd(1.0f);
  c.set_warmup_steps(2);
  c.set_l2(0.5f);
  c.set_l2_by_frequency(true);
  GeoCache cache(/*dim=*/1, c, /*dense_size=*/0);
  const std::vector<uint64_t> keys = {1, 2};
  cache.Insert(keys, std::vector<float>{1, 1});
  // Step 1: rate 0.5; key 1 seen 4 times (l2 0.125), key 2 once (0.5).
  cache.ApplySparse(keys, std::vector<float>{0, 0}, /*step=*/1,
                    std::vector<float>{4, 1});
  std::vector<float> rows(2);
  cache.Gather(keys, absl::MakeSpan(rows));
  EXPECT_EQ(rows,
            (std::vector<float>{1.0f - 0.5f * 0.125f, 1.0f - 0.5f * 0.5f}));
}

}  // namespace
}  // namespace ps
