// OptimizerRule (SGD, Adagrad): updates against hand-computed values over
// several steps, state sizes, clipping, and Create's errors.
#include "server/optimizer.h"

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

OptimizerConfig Sgd(float lr, float bound = 0.0f) {
  OptimizerConfig c;
  c.set_type(OptimizerConfig::SGD);
  c.set_learning_rate(lr);
  c.set_weight_bound(bound);
  return c;
}

OptimizerConfig Adagrad(float lr, float initial_accumulator, float epsilon,
                        float bound = 0.0f) {
  OptimizerConfig c;
  c.set_type(OptimizerConfig::ADAGRAD);
  c.set_learning_rate(lr);
  c.set_initial_accumulator(initial_accumulator);
  c.set_epsilon(epsilon);
  c.set_weight_bound(bound);
  return c;
}

// A small valid epsilon (configs refuse 0); it moves the hand-computed Adagrad
// values by less than kTol.
constexpr float kEps = 1e-6f;
constexpr float kTol = 1e-6f;

std::unique_ptr<OptimizerRule> MustCreate(const OptimizerConfig& c) {
  auto rule = OptimizerRule::Create(c);
  EXPECT_TRUE(rule.ok()) << rule.status();
  return rule.ok() ? std::move(rule).value() : nullptr;
}

// A row of weights and its state, initialized by the rule.
struct Row {
  Row(const OptimizerRule& rule, std::vector<float> w)
      : weights(std::move(w)),
        state(rule.StateSize(static_cast<int>(weights.size()))) {
    rule.InitState(absl::MakeSpan(state));
  }
  RowView view() {
    return RowView{absl::MakeSpan(weights), absl::MakeSpan(state)};
  }
  std::vector<float> weights;
  std::vector<float> state;
};

TEST(OptimizerTest, NamesAndStateSizes) {
  auto sgd = MustCreate(Sgd(0.1f));
  auto adagrad = MustCreate(Adagrad(0.1f, 0.0f, 1e-6f));
  ASSERT_NE(sgd, nullptr);
  ASSERT_NE(adagrad, nullptr);
  EXPECT_STREQ(sgd->Name(), "sgd");
  EXPECT_STREQ(adagrad->Name(), "adagrad");
  EXPECT_EQ(sgd->StateSize(1), 0);
  EXPECT_EQ(sgd->StateSize(64), 0);
  EXPECT_EQ(adagrad->StateSize(1), 1);
  EXPECT_EQ(adagrad->StateSize(64), 64);
}

TEST(OptimizerTest, DefaultConfigIsAdagrad) {
  auto rule = MustCreate(OptimizerConfig());
  ASSERT_NE(rule, nullptr);
  EXPECT_STREQ(rule->Name(), "adagrad");
}

TEST(OptimizerTest, SgdSeveralSteps) {
  auto rule = MustCreate(Sgd(0.5f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {1.0f, -2.0f, 0.0f});
  // w -= 0.5 * g, all exact in float.
  rule->Update(row.view(), std::vector<float>{0.5f, -1.0f, 4.0f});
  EXPECT_EQ(row.weights, (std::vector<float>{0.75f, -1.5f, -2.0f}));
  rule->Update(row.view(), std::vector<float>{-1.0f, 2.0f, 0.0f});
  EXPECT_EQ(row.weights, (std::vector<float>{1.25f, -2.5f, -2.0f}));
  rule->Update(row.view(), std::vector<float>{2.0f, 0.25f, -8.0f});
  EXPECT_EQ(row.weights, (std::vector<float>{0.25f, -2.625f, 2.0f}));
}

TEST(OptimizerTest, SgdWeightBoundClipsBothSides) {
  auto rule = MustCreate(Sgd(0.5f, /*bound=*/1.0f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {0.75f, -0.75f, 0.5f});
  rule->Update(row.view(), std::vector<float>{-1.0f, 1.0f, 0.5f});
  // 1.25 -> 1, -1.25 -> -1, 0.25 stays.
  EXPECT_EQ(row.weights, (std::vector<float>{1.0f, -1.0f, 0.25f}));
  // Clipped weights move away from the bound again.
  rule->Update(row.view(), std::vector<float>{1.0f, -1.0f, 0.0f});
  EXPECT_EQ(row.weights, (std::vector<float>{0.5f, -0.5f, 0.25f}));
}

TEST(OptimizerTest, SgdZeroBoundDoesNotClip) {
  auto rule = MustCreate(Sgd(1.0f, /*bound=*/0.0f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {100.0f});
  rule->Update(row.view(), std::vector<float>{-1000.0f});
  EXPECT_EQ(row.weights[0], 1100.0f);
}

TEST(OptimizerTest, AdagradSeveralSteps) {
  auto rule = MustCreate(Adagrad(0.1f, 0.0f, kEps));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {1.0f, 0.0f});
  EXPECT_EQ(row.state, (std::vector<float>{0.0f, 0.0f}));
  // g2 = 9: w -= 0.1 * 3 / 3.  g2 = 16: w -= 0.1 * -4 / 4.
  rule->Update(row.view(), std::vector<float>{3.0f, -4.0f});
  EXPECT_EQ(row.state, (std::vector<float>{9.0f, 16.0f}));
  EXPECT_NEAR(row.weights[0], 0.9f, kTol);
  EXPECT_NEAR(row.weights[1], 0.1f, kTol);
  // g2 = 25: w -= 0.1 * 4 / 5.  g2 = 25: w -= 0.1 * 3 / 5.
  rule->Update(row.view(), std::vector<float>{4.0f, 3.0f});
  EXPECT_EQ(row.state, (std::vector<float>{25.0f, 25.0f}));
  EXPECT_NEAR(row.weights[0], 0.82f, kTol);
  EXPECT_NEAR(row.weights[1], 0.04f, kTol);
  // A zero gradient changes nothing.
  rule->Update(row.view(), std::vector<float>{0.0f, 0.0f});
  EXPECT_EQ(row.state, (std::vector<float>{25.0f, 25.0f}));
  EXPECT_NEAR(row.weights[0], 0.82f, kTol);
  EXPECT_NEAR(row.weights[1], 0.04f, kTol);
}

TEST(OptimizerTest, AdagradZeroGradientOnFreshRowIsNoOp) {
  auto rule = MustCreate(Adagrad(0.1f, 0.0f, kEps));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {0.5f});
  rule->Update(row.view(), std::vector<float>{0.0f});
  EXPECT_EQ(row.weights[0], 0.5f);
  EXPECT_EQ(row.state[0], 0.0f);
}

TEST(OptimizerTest, AdagradInitialAccumulator) {
  auto rule = MustCreate(Adagrad(0.1f, /*initial_accumulator=*/16.0f, kEps));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {0.0f, 0.0f, 0.0f});
  EXPECT_EQ(row.state, (std::vector<float>{16.0f, 16.0f, 16.0f}));
  // g2 = 16 + 9 = 25: w = -0.1 * 3 / 5; g = 0 leaves w and g2 alone.
  rule->Update(row.view(), std::vector<float>{3.0f, 0.0f, -3.0f});
  EXPECT_EQ(row.state, (std::vector<float>{25.0f, 16.0f, 25.0f}));
  EXPECT_NEAR(row.weights[0], -0.06f, kTol);
  EXPECT_EQ(row.weights[1], 0.0f);
  EXPECT_NEAR(row.weights[2], 0.06f, kTol);
}

TEST(OptimizerTest, AdagradEpsilonInDenominator) {
  auto rule = MustCreate(Adagrad(0.1f, 0.0f, /*epsilon=*/1.0f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {0.0f});
  // w = -0.1 * 3 / (3 + 1).
  rule->Update(row.view(), std::vector<float>{3.0f});
  EXPECT_NEAR(row.weights[0], -0.075f, kTol);
  // g2 = 9 + 16 = 25: w -= 0.1 * 4 / (5 + 1).
  rule->Update(row.view(), std::vector<float>{4.0f});
  EXPECT_FLOAT_EQ(row.weights[0], -0.075f - 0.4f / 6.0f);
}

TEST(OptimizerTest, AdagradWeightBound) {
  auto rule = MustCreate(Adagrad(1.0f, 0.0f, kEps, /*bound=*/0.5f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {0.25f, -0.25f});
  // Each step moves w by lr * sign(g) = 1: clipped to the bound.
  rule->Update(row.view(), std::vector<float>{-2.0f, 2.0f});
  EXPECT_EQ(row.weights, (std::vector<float>{0.5f, -0.5f}));
  // The state still accumulates while clipped.
  EXPECT_EQ(row.state, (std::vector<float>{4.0f, 4.0f}));
}

TEST(OptimizerTest, CreateRefusesNonPositiveLearningRate) {
  for (float lr : {0.0f, -0.5f}) {
    auto rule = OptimizerRule::Create(Sgd(lr));
    ASSERT_FALSE(rule.ok());
    EXPECT_EQ(rule.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(rule.status().message(),
              lr == 0.0f
                  ? "optimizer learning_rate must be positive, got 0"
                  : "optimizer learning_rate must be positive, got -0.5");
  }
}

TEST(OptimizerTest, CreateRefusesNonFiniteLearningRate) {
  auto nan = OptimizerRule::Create(
      Adagrad(std::numeric_limits<float>::quiet_NaN(), 0.0f, 1e-6f));
  ASSERT_FALSE(nan.ok());
  EXPECT_EQ(nan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nan.status().message(),
            "optimizer learning_rate must be positive, got nan");
  auto inf = OptimizerRule::Create(Sgd(std::numeric_limits<float>::infinity()));
  ASSERT_FALSE(inf.ok());
  EXPECT_EQ(inf.status().message(),
            "optimizer learning_rate must be positive, got inf");
}

TEST(OptimizerTest, CreateRefusesUnknownType) {
  OptimizerConfig c = Sgd(0.1f);
  c.set_type(OptimizerConfig::TYPE_UNSPECIFIED);
  auto rule = OptimizerRule::Create(c);
  ASSERT_FALSE(rule.ok());
  EXPECT_EQ(rule.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rule.status().message(), "unknown optimizer type 0");
}

}  // namespace
}  // namespace ps
