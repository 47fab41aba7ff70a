// Frequency-aware L2 (OptimizerConfig.l2_by_frequency): a row's l2 is
// l2 / max(1, count). Hand-computed SGD values; every rule with a count
// applies, bit for bit, what it applies at l2 / count without one (Update
// and UpdateRows alike); no counts mean l2 itself; Create's error.
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "common/optimizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/optimizer_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

OptimizerConfig Config(OptimizerConfig::Type type, float l2, bool by_count) {
  OptimizerConfig c;
  c.set_type(type);
  c.set_learning_rate(0.1f);
  c.set_l2(l2);
  c.set_l2_by_frequency(by_count);
  return c;
}

TEST(FrequencyL2Test, FormulaFloorsTheCountAtOne) {
  EXPECT_EQ(optimizer_math::FrequencyL2(0.5f, 4.0f), 0.125f);
  EXPECT_EQ(optimizer_math::FrequencyL2(0.5f, 1.0f), 0.5f);
  EXPECT_EQ(optimizer_math::FrequencyL2(0.5f, 0.25f), 0.5f);
  EXPECT_EQ(optimizer_math::FrequencyL2(0.5f, 0.0f), 0.5f);
}

// SGD with a zero gradient: w -= lr * l2_row * w.
TEST(FrequencyL2Test, SgdDecaysAFrequentKeyLess) {
  auto rule = MustCreate(Config(OptimizerConfig::SGD, 0.5f, true));
  ASSERT_NE(rule, nullptr);
  const std::vector<float> zero = {0.0f};
  const float four[] = {4.0f};
  Row frequent(*rule, {1.0f});
  rule->Update(frequent.view(), zero, UpdateContext{1, four});
  EXPECT_EQ(frequent.weights[0], 1.0f - 0.1f * 0.125f);
  Row uncounted(*rule, {1.0f});
  rule->Update(uncounted.view(), zero, UpdateContext{1, {}});
  EXPECT_EQ(uncounted.weights[0], 1.0f - 0.1f * 0.5f);
  // Without l2_by_frequency counts change nothing.
  auto plain = MustCreate(Config(OptimizerConfig::SGD, 0.5f, false));
  Row row(*plain, {1.0f});
  plain->Update(row.view(), zero, UpdateContext{1, four});
  EXPECT_EQ(row.weights[0], 1.0f - 0.1f * 0.5f);
}

TEST(FrequencyL2Test, EveryRuleUsesL2OverCount) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int dim = 6;
  for (auto type : {OptimizerConfig::SGD, OptimizerConfig::ADAGRAD,
                    OptimizerConfig::ADAM, OptimizerConfig::FTRL}) {
    const std::string what = OptimizerConfig::Type_Name(type);
    auto counted = MustCreate(Config(type, 0.3f, true));
    ASSERT_NE(counted, nullptr);
    // Two rows in one UpdateRows call with counts 3 and 0.5 (as 1).
    const float counts[] = {3.0f, 0.5f};
    auto ref3 = MustCreate(Config(type, 0.3f / 3.0f, false));
    auto ref1 = MustCreate(Config(type, 0.3f, false));
    std::vector<float> w0(dim), w1(dim);
    for (float& x : w0) x = u(rng);
    for (float& x : w1) x = u(rng);
    Row want0(*ref3, w0), want1(*ref1, w1), single(*counted, w0);
    std::vector<float> packed0 = w0, packed1 = w1;
    std::vector<float> state(counted->StateSize(dim));
    counted->InitState(absl::MakeSpan(state));
    packed0.insert(packed0.end(), state.begin(), state.end());
    packed1.insert(packed1.end(), state.begin(), state.end());
    for (int step = 1; step <= 3; ++step) {
      std::vector<float> g0(dim), g1(dim);
      for (float& x : g0) x = u(rng);
      for (float& x : g1) x = u(rng);
      ref3->Update(want0.view(), g0);
      ref1->Update(want1.view(), g1);
      counted->Update(single.view(), g0, UpdateContext{step, counts});
      float* rows[] = {packed0.data(), packed1.data()};
      const float* grads[] = {g0.data(), g1.data()};
      counted->UpdateRows(dim, rows, grads, UpdateContext{step, counts});
      ASSERT_EQ(single.weights, want0.weights) << what;
      ASSERT_EQ(std::vector<float>(packed0.begin(), packed0.begin() + dim),
                want0.weights)
          << what;
      ASSERT_EQ(std::vector<float>(packed1.begin(), packed1.begin() + dim),
                want1.weights)
          << what;
    }
  }
}

TEST(FrequencyL2Test, CreateRefusesItWithoutL2) {
  EXPECT_THAT(
      OptimizerRule::Create(Config(OptimizerConfig::SGD, 0.0f, true)).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("optimizer l2_by_frequency needs l2 > 0")));
}

}  // namespace
}  // namespace ps
