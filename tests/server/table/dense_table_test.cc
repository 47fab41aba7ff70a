// DenseBlocks layout (every index owned by exactly one server) and
// DenseTable: init from the function, SGD/Adagrad pushes, refused pushes.
#include "server/table/dense_table.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/optimizer_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using Ranges = std::vector<std::pair<int64_t, int64_t>>;
using testing_util::StatusIs;

OptimizerConfig Adagrad(float lr) {
  OptimizerConfig c;
  c.set_type(OptimizerConfig::ADAGRAD);
  c.set_learning_rate(lr);
  c.set_initial_accumulator(0.0f);
  c.set_epsilon(1e-6f);
  return c;
}

std::unique_ptr<DenseTable> MustCreate(const DenseBlocks& blocks, int rank,
                                       const OptimizerConfig& opt) {
  auto table = DenseTable::Create("model", blocks, rank, opt, [](int64_t i) {
    return static_cast<float>(i * 10);
  });
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? std::move(table).value() : nullptr;
}

std::vector<float> Pull(const DenseTable& table) {
  std::vector<float> out;
  table.Pull(&out);
  return out;
}

TEST(DenseBlocksTest, TenFloatsInBlocksOfFour) {
  const DenseBlocks one{10, 4, 1};
  EXPECT_EQ(one.num_blocks(), 3);
  EXPECT_EQ(one.RangesOf(0), (Ranges{{0, 4}, {4, 8}, {8, 10}}));
  EXPECT_EQ(one.SizeOn(0), 10);

  const DenseBlocks two{10, 4, 2};
  EXPECT_EQ(two.RangesOf(0), (Ranges{{0, 4}, {8, 10}}));
  EXPECT_EQ(two.RangesOf(1), (Ranges{{4, 8}}));
  EXPECT_EQ(two.SizeOn(0), 6);
  EXPECT_EQ(two.SizeOn(1), 4);

  const DenseBlocks three{10, 4, 3};
  EXPECT_EQ(three.RangesOf(0), (Ranges{{0, 4}}));
  EXPECT_EQ(three.RangesOf(1), (Ranges{{4, 8}}));
  EXPECT_EQ(three.RangesOf(2), (Ranges{{8, 10}}));
}

TEST(DenseBlocksTest, ServerWithoutBlocksHoldsNothing) {
  const DenseBlocks blocks{5, 4, 3};
  EXPECT_EQ(blocks.num_blocks(), 2);
  EXPECT_EQ(blocks.RangesOf(1), (Ranges{{4, 5}}));
  EXPECT_TRUE(blocks.RangesOf(2).empty());
  EXPECT_EQ(blocks.SizeOn(2), 0);
}

TEST(DenseBlocksTest, EveryIndexIsOwnedByExactlyOneServer) {
  for (int64_t size = 1; size <= 40; ++size) {
    for (int64_t block = 1; block <= 9; ++block) {
      for (int servers = 1; servers <= 3; ++servers) {
        const DenseBlocks blocks{size, block, servers};
        std::vector<int> owners(size, 0);
        int64_t total = 0;
        for (int s = 0; s < servers; ++s) {
          int64_t prev_end = 0;
          int64_t held = 0;
          for (const auto& [begin, end] : blocks.RangesOf(s)) {
            ASSERT_LT(begin, end);
            ASSERT_LE(end, size);
            ASSERT_GE(begin, prev_end) << "ranges out of order";
            ASSERT_EQ(begin % block, 0);
            // Block b lives on server b % servers.
            ASSERT_EQ((begin / block) % servers, s);
            prev_end = end;
            held += end - begin;
            for (int64_t i = begin; i < end; ++i) ++owners[i];
          }
          ASSERT_EQ(blocks.SizeOn(s), held);
          total += held;
        }
        ASSERT_EQ(total, size);
        for (int64_t i = 0; i < size; ++i) {
          ASSERT_EQ(owners[i], 1) << "size " << size << " block " << block
                                  << " servers " << servers << " index " << i;
        }
      }
    }
  }
}

TEST(DenseTableTest, InitHoldsThisServersBlocksInOrder) {
  const DenseBlocks blocks{10, 4, 2};
  auto t0 = MustCreate(blocks, 0, Sgd(0.5f));
  auto t1 = MustCreate(blocks, 1, Sgd(0.5f));
  ASSERT_NE(t0, nullptr);
  ASSERT_NE(t1, nullptr);
  EXPECT_EQ(t0->name(), "model");
  EXPECT_EQ(t0->local_size(), 6);
  EXPECT_EQ(t0->global_size(), 10);
  EXPECT_EQ(t1->local_size(), 4);
  EXPECT_EQ(t1->global_size(), 10);
  EXPECT_EQ(Pull(*t0), (std::vector<float>{0, 10, 20, 30, 80, 90}));
  EXPECT_EQ(Pull(*t1), (std::vector<float>{40, 50, 60, 70}));
}

TEST(DenseTableTest, PushSgd) {
  auto t = MustCreate(DenseBlocks{10, 4, 2}, 1, Sgd(0.5f));
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(
      t->Push(std::vector<float>{2.0f, -2.0f, 0.0f, 1.0f}, /*step=*/1).ok());
  EXPECT_EQ(Pull(*t), (std::vector<float>{39.0f, 51.0f, 60.0f, 69.5f}));
  ASSERT_TRUE(
      t->Push(std::vector<float>{2.0f, -2.0f, 0.0f, 1.0f}, /*step=*/1).ok());
  EXPECT_EQ(Pull(*t), (std::vector<float>{38.0f, 52.0f, 60.0f, 69.0f}));
}

TEST(DenseTableTest, PushAdagradKeepsStatePerCoordinate) {
  auto t = MustCreate(DenseBlocks{3, 2, 1}, 0, Adagrad(0.1f));
  ASSERT_NE(t, nullptr);
  // g2 = 9 / 16 / 0: w -= 0.1 * g / sqrt(g2).
  ASSERT_TRUE(t->Push(std::vector<float>{3.0f, -4.0f, 0.0f}, /*step=*/1).ok());
  std::vector<float> v = Pull(*t);
  EXPECT_NEAR(v[0], -0.1f, 1e-5f);
  EXPECT_NEAR(v[1], 10.1f, 1e-5f);
  EXPECT_EQ(v[2], 20.0f);
  // g2 = 25 / 25 / 0.
  ASSERT_TRUE(t->Push(std::vector<float>{4.0f, 3.0f, 0.0f}, /*step=*/1).ok());
  v = Pull(*t);
  EXPECT_NEAR(v[0], -0.18f, 1e-5f);
  EXPECT_NEAR(v[1], 10.04f, 1e-5f);
  EXPECT_EQ(v[2], 20.0f);
}

TEST(DenseTableTest, WrongSizeIsRefused) {
  auto t = MustCreate(DenseBlocks{10, 4, 2}, 0, Sgd(0.5f));
  ASSERT_NE(t, nullptr);
  absl::Status s = t->Push(std::vector<float>(5, 1.0f), /*step=*/1);
  EXPECT_THAT(
      s,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "dense table 'model' push: this server holds 6 floats, got 5"));
  s = t->Push(std::vector<float>(10, 1.0f), /*step=*/1);
  EXPECT_EQ(s.message(),
            "dense table 'model' push: this server holds 6 floats, got 10");
  EXPECT_EQ(Pull(*t), (std::vector<float>{0, 10, 20, 30, 80, 90}));
}

TEST(DenseTableTest, NonFiniteGradientIsRefusedAndNothingApplied) {
  auto t = MustCreate(DenseBlocks{10, 4, 2}, 0, Adagrad(0.1f));
  ASSERT_NE(t, nullptr);
  std::vector<float> grads(6, 1.0f);
  grads[5] = std::numeric_limits<float>::quiet_NaN();
  absl::Status s = t->Push(grads, /*step=*/1);
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument,
                  "dense table 'model' gradient: value 5 is nan (not finite)"));
  grads[5] = 1.0f;
  grads[2] = std::numeric_limits<float>::infinity();
  s = t->Push(grads, /*step=*/1);
  EXPECT_EQ(s.message(),
            "dense table 'model' gradient: value 2 is inf (not finite)");
  EXPECT_EQ(Pull(*t), (std::vector<float>{0, 10, 20, 30, 80, 90}));
  // The Adagrad state was untouched: a good push now acts as the first.
  grads[2] = 1.0f;
  ASSERT_TRUE(t->Push(grads, /*step=*/1).ok());
  const std::vector<float> v = Pull(*t);
  const std::vector<float> expected = {-0.1f, 9.9f, 19.9f, 29.9f, 79.9f, 89.9f};
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_NEAR(v[i], expected[i], 1e-5f) << i;
}

TEST(DenseTableTest, ServerWithoutBlocksAcceptsEmptyPushes) {
  auto t = MustCreate(DenseBlocks{5, 4, 3}, 2, Adagrad(0.1f));
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->local_size(), 0);
  EXPECT_EQ(t->global_size(), 5);
  EXPECT_TRUE(Pull(*t).empty());
  EXPECT_TRUE(t->Push({}, /*step=*/1).ok());
  absl::Status s = t->Push(std::vector<float>{1.0f}, /*step=*/1);
  EXPECT_EQ(s.message(),
            "dense table 'model' push: this server holds 0 floats, got 1");
}

TEST(DenseTableTest, CreateRefusesBadOptimizer) {
  auto t = DenseTable::Create("model", DenseBlocks{10, 4, 2}, 0, Sgd(-1.0f),
                              [](int64_t) { return 0.0f; });
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t, StatusIs(absl::StatusCode::kInvalidArgument,
                          "optimizer learning_rate must be positive, got -1"));
}

}  // namespace
}  // namespace ps
