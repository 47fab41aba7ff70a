// SparseTable (in-memory): deterministic row creation, exact SGD/Adagrad
// pushes, refused requests that leave the table untouched, and concurrent
// pushes to overlapping keys conserving every gradient.
#include "server/table/sparse_table.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/sparse_table_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using testing_util::StatusIs;

// Adagrad's epsilon: small enough that hand-computed values hold to kTol.
constexpr float kEps = 1e-6f;
constexpr float kTol = 1e-6f;

SparseTableOptions Options(OptimizerConfig::Type opt, float lr,
                           InitializerConfig::Type init, int dim = 4,
                           int shard_num = 16) {
  SparseTableOptions o;
  o.name = "emb";
  o.table_id = 0;
  o.dim = dim;
  o.shard_num = shard_num;
  o.optimizer.set_type(opt);
  o.optimizer.set_learning_rate(lr);
  o.optimizer.set_initial_accumulator(0.0f);
  o.optimizer.set_epsilon(kEps);
  o.initializer.set_type(init);
  o.initializer.set_scale(0.5f);
  o.init_seed = 7;
  return o;
}

TEST(SparseTableTest, CreateReportsNameAndDim) {
  auto table = MustCreate(
      Options(OptimizerConfig::SGD, 1.0f, InitializerConfig::ZEROS, /*dim=*/3));
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->name(), "emb");
  EXPECT_EQ(table->dim(), 3);
  EXPECT_EQ(table->size(), 0);
}

TEST(SparseTableTest, PullCreatesDeterministicRowsOnAnyInstance) {
  // Two instances stand for two servers, or one server before and after a
  // restart; the sub-shard count must not matter either.
  auto a = MustCreate(Options(OptimizerConfig::ADAGRAD, 0.1f,
                              InitializerConfig::UNIFORM, 8, /*shard_num=*/16));
  auto b = MustCreate(Options(OptimizerConfig::SGD, 0.1f,
                              InitializerConfig::UNIFORM, 8, /*shard_num=*/1));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::vector<uint64_t> keys = {1, 42, 0xFFFFFFFFFFFFFFFFULL, 123456789};
  std::vector<float> va = MustPull(*a, keys);
  // b sees the keys in another order.
  const std::vector<uint64_t> reversed(keys.rbegin(), keys.rend());
  std::vector<float> vb = MustPull(*b, reversed);
  InitializerConfig init;
  init.set_type(InitializerConfig::UNIFORM);
  init.set_scale(0.5f);
  for (size_t k = 0; k < keys.size(); ++k) {
    const size_t rk = keys.size() - 1 - k;
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(va[k * 8 + i], vb[rk * 8 + i])
          << "key " << keys[k] << " i " << i;
      EXPECT_EQ(va[k * 8 + i], InitialWeight(init, 7, keys[k], i));
    }
  }
  // A second pull returns the stored row, not a fresh draw.
  EXPECT_EQ(MustPull(*a, keys), va);
  // Rows differ between keys and between positions.
  EXPECT_NE(va[0], va[8]);
  EXPECT_NE(va[0], va[1]);
}

TEST(SparseTableTest, SeedChangesTheRows) {
  SparseTableOptions o =
      Options(OptimizerConfig::SGD, 0.1f, InitializerConfig::UNIFORM);
  auto a = MustCreate(o);
  o.init_seed = 8;
  auto b = MustCreate(o);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(MustPull(*a, {5}), MustPull(*b, {5}));
}

TEST(SparseTableTest, ZerosInitializer) {
  auto table =
      MustCreate(Options(OptimizerConfig::SGD, 0.1f, InitializerConfig::ZEROS));
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(MustPull(*table, {3, 4}), std::vector<float>(8, 0.0f));
}

TEST(SparseTableTest, UniformInitializerStaysWithinScale) {
  auto table = MustCreate(Options(OptimizerConfig::SGD, 0.1f,
                                  InitializerConfig::UNIFORM, /*dim=*/8));
  ASSERT_NE(table, nullptr);
  std::vector<uint64_t> keys(5000);
  for (size_t k = 0; k < keys.size(); ++k) keys[k] = k * 7919 + 1;
  std::vector<float> v = MustPull(*table, keys);
  double sum = 0, min = 1, max = -1;
  for (float x : v) {
    ASSERT_LE(std::fabs(x), 0.5f);
    sum += x;
    min = std::min<double>(min, x);
    max = std::max<double>(max, x);
  }
  // 40000 draws of U(-0.5, 0.5): mean ~ 0 (sd 0.0014), range nearly full.
  EXPECT_NEAR(sum / v.size(), 0.0, 0.01);
  EXPECT_LT(min, -0.49);
  EXPECT_GT(max, 0.49);
}

TEST(SparseTableTest, NormalInitializerHasRoughlyTheScale) {
  auto table = MustCreate(Options(OptimizerConfig::SGD, 0.1f,
                                  InitializerConfig::NORMAL, /*dim=*/8));
  ASSERT_NE(table, nullptr);
  std::vector<uint64_t> keys(5000);
  for (size_t k = 0; k < keys.size(); ++k) keys[k] = k;
  std::vector<float> v = MustPull(*table, keys);
  double sum = 0, sum2 = 0;
  int beyond_one_sd = 0;
  for (float x : v) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sum2 += static_cast<double>(x) * x;
    if (std::fabs(x) > 0.5f) ++beyond_one_sd;
  }
  const double n = static_cast<double>(v.size());
  const double mean = sum / n;
  const double sd = std::sqrt(sum2 / n - mean * mean);
  // N(0, 0.5^2) over 40000 draws.
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(sd, 0.5, 0.025);
  // About 31.7% lie beyond one standard deviation.
  EXPECT_NEAR(beyond_one_sd / n, 0.317, 0.02);
}

TEST(SparseTableTest, PushSgdExact) {
  auto table = MustCreate(
      Options(OptimizerConfig::SGD, 0.5f, InitializerConfig::ZEROS, 2));
  ASSERT_NE(table, nullptr);
  // Pushing creates missing rows.
  ASSERT_TRUE(table->Push({10, 20}, {1.0f, -2.0f, 4.0f, 0.5f}).ok());
  EXPECT_EQ(table->size(), 2);
  EXPECT_EQ(MustPull(*table, {20, 10}),
            (std::vector<float>{-2.0f, -0.25f, -0.5f, 1.0f}));
  ASSERT_TRUE(table->Push({10}, {1.0f, 1.0f}).ok());
  EXPECT_EQ(MustPull(*table, {10, 20}),
            (std::vector<float>{-1.0f, 0.5f, -2.0f, -0.25f}));
}

TEST(SparseTableTest, PushSgdOnUniformRows) {
  auto table = MustCreate(
      Options(OptimizerConfig::SGD, 0.5f, InitializerConfig::UNIFORM, 3));
  ASSERT_NE(table, nullptr);
  std::vector<float> before = MustPull(*table, {99});
  ASSERT_TRUE(table->Push({99}, {1.0f, 2.0f, -4.0f}).ok());
  std::vector<float> after = MustPull(*table, {99});
  EXPECT_EQ(after[0], before[0] - 0.5f * 1.0f);
  EXPECT_EQ(after[1], before[1] - 0.5f * 2.0f);
  EXPECT_EQ(after[2], before[2] - 0.5f * -4.0f);
}

TEST(SparseTableTest, PushAdagradExactKeepsStatePerRow) {
  auto table = MustCreate(
      Options(OptimizerConfig::ADAGRAD, 0.1f, InitializerConfig::ZEROS, 2));
  ASSERT_NE(table, nullptr);
  // Row 1: g2 = 9 -> w = -0.1; row 2: g2 = 16 -> w = 0.1.
  ASSERT_TRUE(table->Push({1, 2}, {3.0f, 0.0f, -4.0f, 0.0f}).ok());
  std::vector<float> v = MustPull(*table, {1, 2});
  EXPECT_NEAR(v[0], -0.1f, kTol);
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_NEAR(v[2], 0.1f, kTol);
  EXPECT_EQ(v[3], 0.0f);
  // Row 1: g2 = 9 + 16 = 25 -> w -= 0.1 * 4 / 5.
  // Row 2: g2 = 16 + 9 = 25 -> w -= 0.1 * -3 / 5.
  ASSERT_TRUE(table->Push({1, 2}, {4.0f, 0.0f, -3.0f, 0.0f}).ok());
  v = MustPull(*table, {1, 2});
  EXPECT_NEAR(v[0], -0.18f, kTol);
  EXPECT_NEAR(v[2], 0.16f, kTol);
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_EQ(v[3], 0.0f);
}

TEST(SparseTableTest, DuplicateKeysInOnePushAreAppliedInTurn) {
  auto table = MustCreate(
      Options(OptimizerConfig::ADAGRAD, 0.1f, InitializerConfig::ZEROS, 1));
  ASSERT_NE(table, nullptr);
  // Adagrad depends on order: 3 then 4 gives -0.1 - 0.08 = -0.18; 4 then 3
  // would give -0.1 - 0.06 = -0.16.
  ASSERT_TRUE(table->Push({5, 6, 5}, {3.0f, 1.0f, 4.0f}).ok());
  EXPECT_EQ(table->size(), 2);
  std::vector<float> v = MustPull(*table, {5});
  EXPECT_NEAR(v[0], -0.18f, kTol);
}

// One push of many updates (new and old keys, each listed several times, in
// many sub-shards) ends bit for bit where pushing the same updates one at a
// time ends, at dims around the vector width.
TEST(SparseTableTest, BatchedPushEqualsOneUpdateAtATime) {
  std::mt19937_64 rng(5);
  for (int dim : {1, 5, 13, 65}) {
    SCOPED_TRACE(testing::Message() << "dim " << dim);
    SparseTableOptions o = Options(OptimizerConfig::ADAGRAD, 0.05f,
                                   InitializerConfig::UNIFORM, dim, 16);
    o.optimizer.set_weight_bound(0.3f);
    o.optimizer.set_initial_accumulator(0.1f);
    auto batched = MustCreate(o);
    o.shard_num = 1;
    auto single = MustCreate(o);
    ASSERT_NE(batched, nullptr);
    ASSERT_NE(single, nullptr);
    std::vector<uint64_t> universe(300);
    for (auto& k : universe) k = rng();
    // Half the keys exist before the push.
    const std::vector<uint64_t> old_keys(universe.begin(),
                                         universe.begin() + 150);
    MustPull(*batched, old_keys);
    MustPull(*single, old_keys);
    std::vector<uint64_t> keys(2000);
    std::vector<float> grads(keys.size() * dim);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& k : keys) k = universe[rng() % universe.size()];
    for (float& g : grads) g = normal(rng);
    ASSERT_TRUE(batched->Push(keys, grads).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(single
                      ->Push({keys[i]},
                             std::vector<float>(grads.begin() + i * dim,
                                                grads.begin() + (i + 1) * dim))
                      .ok());
    }
    EXPECT_EQ(batched->size(), single->size());
    const std::vector<float> a = MustPull(*batched, universe);
    const std::vector<float> b = MustPull(*single, universe);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
}

// Keys with structure (small integers, key 0, the top bits alone, all ones)
// in one sub-shard, many times past the index's first capacity: every key
// keeps its own row, found again after the index grew.
TEST(SparseTableTest, StructuredKeysKeepTheirRowsAcrossIndexGrowth) {
  auto table = MustCreate(Options(OptimizerConfig::SGD, 1.0f,
                                  InitializerConfig::UNIFORM, 2,
                                  /*shard_num=*/1));
  ASSERT_NE(table, nullptr);
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 5000; ++i) {
    keys.push_back(i);
    keys.push_back(i << 40);
    keys.push_back(~i);
  }
  keys.erase(keys.begin() + 1);  // 0 << 40 == 0
  const std::vector<float> first = MustPull(*table, keys);
  EXPECT_EQ(table->size(), static_cast<int64_t>(keys.size()));
  EXPECT_EQ(MustPull(*table, keys), first);
  // Each row took its own gradient.
  std::vector<float> grads(keys.size() * 2);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i);
  ASSERT_TRUE(table->Push(keys, grads).ok());
  const std::vector<float> after = MustPull(*table, keys);
  for (size_t i = 0; i < after.size(); ++i) {
    ASSERT_EQ(after[i], first[i] - grads[i]) << "value " << i;
  }
  EXPECT_EQ(table->size(), static_cast<int64_t>(keys.size()));
}

TEST(SparseTableTest, SizeCountsDistinctKeys) {
  auto table =
      MustCreate(Options(OptimizerConfig::SGD, 0.1f, InitializerConfig::ZEROS));
  ASSERT_NE(table, nullptr);
  MustPull(*table, {1, 2, 3, 2, 1});
  EXPECT_EQ(table->size(), 3);
  ASSERT_TRUE(table->Push({3, 4}, std::vector<float>(8, 1.0f)).ok());
  EXPECT_EQ(table->size(), 4);
  MustPull(*table, {});
  EXPECT_EQ(table->size(), 4);
  EXPECT_GT(table->memory_bytes(), 4 * 4 * static_cast<int64_t>(sizeof(float)));
}

TEST(SparseTableTest, ManyRowsSpanSeveralChunks) {
  auto table = MustCreate(
      Options(OptimizerConfig::SGD, 1.0f, InitializerConfig::ZEROS, 2, 1));
  ASSERT_NE(table, nullptr);
  // 3000 rows in one sub-shard: past the first chunks of rows.
  std::vector<uint64_t> keys(3000);
  std::vector<float> grads(keys.size() * 2);
  for (size_t k = 0; k < keys.size(); ++k) {
    keys[k] = 1000 + k;
    grads[2 * k] = static_cast<float>(k);
    grads[2 * k + 1] = -static_cast<float>(k);
  }
  ASSERT_TRUE(table->Push(keys, grads).ok());
  EXPECT_EQ(table->size(), 3000);
  std::vector<float> v = MustPull(*table, keys);
  for (size_t k = 0; k < keys.size(); ++k) {
    ASSERT_EQ(v[2 * k], -static_cast<float>(k)) << k;
    ASSERT_EQ(v[2 * k + 1], static_cast<float>(k)) << k;
  }
}

TEST(SparseTableTest, PullWithWrongSizeIsRefused) {
  auto table =
      MustCreate(Options(OptimizerConfig::SGD, 0.1f, InitializerConfig::ZEROS));
  ASSERT_NE(table, nullptr);
  std::vector<float> values(7);
  absl::Status s = table->Pull({1, 2}, absl::MakeSpan(values));
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' pull: 2 keys x dim 4 needs 8 floats, got 7"));
  EXPECT_EQ(table->size(), 0);
}

TEST(SparseTableTest, PushWithWrongSizeIsRefused) {
  auto table =
      MustCreate(Options(OptimizerConfig::SGD, 0.1f, InitializerConfig::ZEROS));
  ASSERT_NE(table, nullptr);
  absl::Status s = table->Push({1, 2}, std::vector<float>(9, 1.0f));
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' push: 2 keys x dim 4 needs 8 floats, got 9"));
  EXPECT_EQ(table->size(), 0);
}

TEST(SparseTableTest, NonFiniteGradientIsRefusedAndNothingApplied) {
  auto table = MustCreate(
      Options(OptimizerConfig::ADAGRAD, 0.1f, InitializerConfig::UNIFORM));
  ASSERT_NE(table, nullptr);
  const std::vector<uint64_t> keys = {11, 22, 33};
  const std::vector<float> before = MustPull(*table, keys);
  std::vector<float> grads(12, 1.0f);
  grads[11] = std::numeric_limits<float>::quiet_NaN();
  absl::Status s = table->Push(keys, grads);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' push gradient: value 11 is nan (not finite)"));
  EXPECT_EQ(MustPull(*table, keys), before);

  grads[11] = 1.0f;
  grads[6] = -std::numeric_limits<float>::infinity();
  s = table->Push(keys, grads);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "table 'emb' push gradient: value 6 is -inf (not finite)"));
  EXPECT_EQ(MustPull(*table, keys), before);

  // A refused push of new keys creates no rows.
  grads[6] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(table->Push({44, 55, 66}, grads).ok());
  EXPECT_EQ(table->size(), 3);

  // The Adagrad state was untouched too: a good push now acts as the first.
  grads[6] = 1.0f;
  ASSERT_TRUE(table->Push(keys, grads).ok());
  std::vector<float> after = MustPull(*table, keys);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_NEAR(after[i], before[i] - 0.1f, kTol) << i;
  }
}

TEST(SparseTableTest, ShardCountDoesNotChangeResults) {
  std::vector<uint64_t> keys;
  std::vector<float> grads;
  for (uint64_t k = 0; k < 500; ++k) {
    keys.push_back(k * 31 + 5);
    for (int i = 0; i < 4; ++i) grads.push_back(0.25f * ((k + i) % 9) - 1.0f);
  }
  std::vector<std::vector<float>> results;
  for (int shard_num : {1, 3, 65535}) {
    auto table = MustCreate(Options(OptimizerConfig::ADAGRAD, 0.1f,
                                    InitializerConfig::UNIFORM, 4, shard_num));
    ASSERT_NE(table, nullptr);
    ASSERT_TRUE(table->Push(keys, grads).ok());
    ASSERT_TRUE(table->Push(keys, grads).ok());
    EXPECT_EQ(table->size(), 500);
    results.push_back(MustPull(*table, keys));
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

TEST(SparseTableTest, ConcurrentPushesToOverlappingKeysConserveGradients) {
  // SGD with lr 1 from zero rows and small integer gradients: every float sum
  // is exact, so the final row must be exactly -(sum of all pushed grads).
  constexpr int kThreads = 8;
  constexpr int kPushes = 2000;
  constexpr int kKeys = 24;
  constexpr int kDim = 16;
  for (int shard_num : {1, 4}) {
    auto table = MustCreate(Options(OptimizerConfig::SGD, 1.0f,
                                    InitializerConfig::ZEROS, kDim, shard_num));
    ASSERT_NE(table, nullptr);
    std::vector<std::vector<int64_t>> sums(kThreads,
                                           std::vector<int64_t>(kKeys * kDim));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int p = 0; p < kPushes; ++p) {
          std::vector<uint64_t> keys;
          std::vector<float> grads;
          // 16 keys per push, overlapping other threads' keys (and sometimes
          // repeating within the push).
          for (int j = 0; j < 16; ++j) {
            const int k = (t * 5 + p * 3 + j * 7) % kKeys;
            keys.push_back(1000 + k);
            for (int i = 0; i < kDim; ++i) {
              const int g = (t + p + j + i) % 7 - 3;
              grads.push_back(static_cast<float>(g));
              sums[t][k * kDim + i] += g;
            }
          }
          ASSERT_TRUE(table->Push(keys, grads).ok());
          if (p % 200 == 0) {
            std::vector<float> v(keys.size() * kDim);
            ASSERT_TRUE(table->Pull(keys, absl::MakeSpan(v)).ok());
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(table->size(), kKeys);
    std::vector<uint64_t> keys;
    for (int k = 0; k < kKeys; ++k) keys.push_back(1000 + k);
    std::vector<float> v = MustPull(*table, keys);
    for (int k = 0; k < kKeys; ++k) {
      for (int i = 0; i < kDim; ++i) {
        int64_t total = 0;
        for (int t = 0; t < kThreads; ++t) total += sums[t][k * kDim + i];
        ASSERT_EQ(v[k * kDim + i], static_cast<float>(-total))
            << "shard_num " << shard_num << " key " << k << " i " << i;
      }
    }
  }
}

TEST(SparseTableTest, CreateRefusesBadOptions) {
  struct Case {
    int dim;
    int shard_num;
    float lr;
    const char* message;
  };
  const Case cases[] = {
      {0, 16, 0.1f, "table 'emb': dim must be in [1, 4096], got 0"},
      {4097, 16, 0.1f, "table 'emb': dim must be in [1, 4096], got 4097"},
      {4, 0, 0.1f, "table 'emb': shard_num must be in [1, 65535], got 0"},
      {4, 65536, 0.1f,
       "table 'emb': shard_num must be in [1, 65535], got 65536"},
      {4, 16, 0.0f, "optimizer learning_rate must be positive, got 0"},
  };
  for (const Case& c : cases) {
    SparseTableOptions o =
        Options(OptimizerConfig::SGD, c.lr, InitializerConfig::ZEROS, c.dim,
                c.shard_num);
    auto table = SparseTable::Create(o);
    ASSERT_FALSE(table.ok()) << c.message;
    EXPECT_THAT(table, StatusIs(absl::StatusCode::kInvalidArgument, c.message));
  }
  // The bounds themselves are accepted.
  EXPECT_TRUE(SparseTable::Create(Options(OptimizerConfig::SGD, 0.1f,
                                          InitializerConfig::ZEROS, 4096, 1))
                  .ok());
}

// l2_by_frequency without an accessor: a row's l2 is l2 / the push's shows
// for its key (SGD, lr 1, zero gradient: w' = w - l2_row * w).
TEST(SparseTableTest, L2ByFrequencyUsesThePushsShows) {
  SparseTableOptions o =
      Options(OptimizerConfig::SGD, 1.0f, InitializerConfig::UNIFORM, 2);
  o.optimizer.set_l2(0.5f);
  o.optimizer.set_l2_by_frequency(true);
  auto table = MustCreate(o);
  ASSERT_NE(table, nullptr);
  const std::vector<uint64_t> keys = {1, 2};
  std::vector<float> w = MustPull(*table, keys);
  const std::vector<float> zero(4, 0.0f);
  const std::vector<float> shows = {4.0f, 1.0f};
  PushInfo info;
  info.step = 1;
  info.shows = shows;
  ASSERT_TRUE(table->Push(keys, zero, info).ok());
  for (int i = 0; i < 4; ++i) {
    const float l2 = i < 2 ? 0.125f : 0.5f;
    w[i] = w[i] - l2 * w[i];
  }
  EXPECT_EQ(MustPull(*table, keys), w);
  // No shows: 1 each, l2 itself.
  ASSERT_TRUE(table->Push(keys, zero, PushInfo{}).ok());
  for (int i = 0; i < 4; ++i) w[i] = w[i] - 0.5f * w[i];
  EXPECT_EQ(MustPull(*table, keys), w);
}

}  // namespace
}  // namespace ps
