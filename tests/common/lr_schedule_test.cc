// Learning-rate schedules (OptimizerConfig warmup_steps, decay, ...):
// ScheduledLearningRate against the documented formulas at hand-picked
// steps; a rule with a schedule applies, bit for bit, what the same rule at
// the scheduled rate applies (every type, Update and UpdateRows alike);
// DenseRowState gives the same rate; Create's errors for bad fields.
#include <cmath>
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

using optimizer_math::ScheduledLearningRate;
using ::testing::HasSubstr;
using testing_util::StatusIs;

optimizer_math::Hyper HyperOf(const OptimizerConfig& c) {
  auto h = OptimizerHyper(c);
  EXPECT_TRUE(h.ok()) << h.status();
  return h.ok() ? *h : optimizer_math::Hyper{};
}

float RateAt(const OptimizerConfig& c, int64_t step) {
  return ScheduledLearningRate(HyperOf(c), step);
}

TEST(LrScheduleTest, NoScheduleIsExactlyTheLearningRate) {
  const OptimizerConfig c = Sgd(0.0317f);
  for (int64_t step :
       {int64_t{-3}, int64_t{0}, int64_t{1}, int64_t{1000}, int64_t{1} << 40}) {
    EXPECT_EQ(RateAt(c, step), 0.0317f) << step;
  }
}

TEST(LrScheduleTest, WarmupRampsLinearlyThenHolds) {
  OptimizerConfig c = Sgd(0.1f);
  c.set_warmup_steps(4);
  // t < 1 counts as 1.
  EXPECT_EQ(RateAt(c, 0), static_cast<float>(0.1f * 0.25));
  EXPECT_EQ(RateAt(c, 1), static_cast<float>(0.1f * 0.25));
  EXPECT_EQ(RateAt(c, 2), static_cast<float>(0.1f * 0.5));
  EXPECT_EQ(RateAt(c, 3), static_cast<float>(0.1f * 0.75));
  EXPECT_EQ(RateAt(c, 4), 0.1f);
  EXPECT_EQ(RateAt(c, 1000), 0.1f);
}

TEST(LrScheduleTest, ExponentialDecayHalvesEveryDecayStepsDownToTheFloor) {
  OptimizerConfig c = Sgd(1.0f);
  c.set_decay(OptimizerConfig::EXPONENTIAL);
  c.set_decay_steps(10);
  c.set_decay_rate(0.5f);
  EXPECT_EQ(RateAt(c, 1), static_cast<float>(std::pow(0.5, 0.1)));
  EXPECT_FLOAT_EQ(RateAt(c, 5), std::sqrt(0.5f));
  EXPECT_EQ(RateAt(c, 10), 0.5f);
  EXPECT_EQ(RateAt(c, 20), 0.25f);
  c.set_min_learning_rate(0.3f);
  EXPECT_EQ(RateAt(c, 10), 0.5f);
  EXPECT_EQ(RateAt(c, 20), 0.3f);
  EXPECT_EQ(RateAt(c, 100000), 0.3f);
}

TEST(LrScheduleTest, InverseSqrtDecayStartsAfterWarmup) {
  OptimizerConfig c = Sgd(0.8f);
  c.set_warmup_steps(2);
  c.set_decay(OptimizerConfig::INVERSE_SQRT);
  c.set_decay_steps(4);
  EXPECT_EQ(RateAt(c, 1), 0.4f);  // warming up
  EXPECT_EQ(RateAt(c, 2), 0.8f);  // u = 0
  // u = 4 = decay_steps: lr / sqrt(2).
  EXPECT_EQ(RateAt(c, 6), static_cast<float>(0.8 * std::sqrt(0.5)));
  // u = 12: lr / 2.
  EXPECT_EQ(RateAt(c, 14), 0.4f);
  c.set_min_learning_rate(0.5f);
  EXPECT_EQ(RateAt(c, 14), 0.5f);
}

TEST(LrScheduleTest, CosineDecayReachesTheFloorAndStays) {
  OptimizerConfig c = Sgd(1.0f);
  c.set_warmup_steps(5);
  c.set_decay(OptimizerConfig::COSINE);
  c.set_decay_steps(10);
  c.set_min_learning_rate(0.1f);
  const double lr = 1.0f;
  const double floor = 0.1f;
  EXPECT_EQ(RateAt(c, 5), 1.0f);
  // Half way (u = 5): the mean of lr and the floor.
  EXPECT_EQ(RateAt(c, 10), static_cast<float>(floor + (lr - floor) * 0.5));
  EXPECT_EQ(RateAt(c, 15), 0.1f);
  EXPECT_EQ(RateAt(c, 1000), 0.1f);
  // Monotone between.
  for (int64_t t = 5; t < 15; ++t) EXPECT_GT(RateAt(c, t), RateAt(c, t + 1));
}

// A rule with a schedule, at step t, applies exactly what the rule without
// one at learning_rate = the scheduled rate applies: Adam's bias correction
// and FTRL's alpha take the scheduled rate as they take learning_rate.
TEST(LrScheduleTest, RuleAppliesTheScheduledRate) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto type : {OptimizerConfig::SGD, OptimizerConfig::ADAGRAD,
                    OptimizerConfig::ADAM, OptimizerConfig::FTRL}) {
    OptimizerConfig c = Sgd(0.2f);
    c.set_type(type);
    c.set_l2(0.01f);
    c.set_warmup_steps(3);
    c.set_decay(OptimizerConfig::COSINE);
    c.set_decay_steps(4);
    c.set_min_learning_rate(0.02f);
    auto scheduled = MustCreate(c);
    ASSERT_NE(scheduled, nullptr);
    const int dim = 7;  // lanes and a scalar tail
    std::vector<float> w(dim);
    for (float& x : w) x = u(rng);
    Row a(*scheduled, w);  // Update
    Row b(*scheduled, w);  // UpdateRows
    Row ref(*scheduled, w);
    for (int64_t step = 1; step <= 9; ++step) {
      std::vector<float> g(dim);
      for (float& x : g) x = u(rng);
      OptimizerConfig fixed = c;
      fixed.clear_warmup_steps();
      fixed.clear_decay();
      fixed.set_learning_rate(RateAt(c, step));
      auto plain = MustCreate(fixed);
      ASSERT_NE(plain, nullptr);
      plain->Update(ref.view(), g);
      scheduled->Update(a.view(), g, UpdateContext{step, {}});
      std::vector<float> packed = b.weights;
      packed.insert(packed.end(), b.state.begin(), b.state.end());
      float* rows[] = {packed.data()};
      const float* grads[] = {g.data()};
      scheduled->UpdateRows(dim, rows, grads, UpdateContext{step, {}});
      std::copy(packed.begin(), packed.begin() + dim, b.weights.begin());
      std::copy(packed.begin() + dim, packed.end(), b.state.begin());
      ASSERT_EQ(a.weights, ref.weights)
          << OptimizerConfig::Type_Name(type) << " step " << step;
      ASSERT_EQ(a.state, ref.state) << OptimizerConfig::Type_Name(type);
      ASSERT_EQ(b.weights, ref.weights) << OptimizerConfig::Type_Name(type);
    }
  }
}

TEST(LrScheduleTest, SgdWarmupStepsByTheScaledRate) {
  OptimizerConfig c = Sgd(0.1f);
  c.set_warmup_steps(4);
  auto rule = MustCreate(c);
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {1.0f});
  rule->Update(row.view(), std::vector<float>{1.0f}, UpdateContext{1, {}});
  EXPECT_EQ(row.weights[0], 1.0f - static_cast<float>(0.1f * 0.25));
  row.weights[0] = 1.0f;
  rule->Update(row.view(), std::vector<float>{1.0f}, UpdateContext{4, {}});
  EXPECT_EQ(row.weights[0], 1.0f - 0.1f);
}

TEST(LrScheduleTest, DenseRowStateUsesTheScheduledRate) {
  OptimizerConfig c = Sgd(0.5f);
  c.set_type(OptimizerConfig::ADAM);
  c.set_warmup_steps(10);
  const optimizer_math::Hyper h = HyperOf(c);
  optimizer_math::DenseRowState row(h);
  for (int64_t step = 1; step <= 12; ++step) {
    const optimizer_math::DenseUpdate u = row.Begin(step);
    EXPECT_EQ(u.hyper.learning_rate, ScheduledLearningRate(h, step)) << step;
  }
}

TEST(LrScheduleTest, CreateNamesTheBadScheduleField) {
  struct Case {
    void (*set)(OptimizerConfig*);
    const char* message;
  };
  const Case cases[] = {
      {[](OptimizerConfig* c) { c->set_warmup_steps(-1); },
       "optimizer warmup_steps must be >= 0, got -1"},
      {[](OptimizerConfig* c) { c->set_decay(OptimizerConfig::COSINE); },
       "optimizer decay_steps must be > 0 with a decay, got 0"},
      {[](OptimizerConfig* c) {
         c->set_decay(OptimizerConfig::EXPONENTIAL);
         c->set_decay_steps(3);
         c->set_decay_rate(0.0f);
       },
       "optimizer decay_rate must be in (0, 1]"},
      {[](OptimizerConfig* c) {
         c->set_decay(OptimizerConfig::INVERSE_SQRT);
         c->set_decay_steps(3);
         c->set_min_learning_rate(2.0f);
       },
       "optimizer min_learning_rate must be in [0, 0.1]"},
      {[](OptimizerConfig* c) {
         c->set_type(OptimizerConfig::FTRL);
         c->set_decay(OptimizerConfig::COSINE);
         c->set_decay_steps(3);
       },
       "optimizer min_learning_rate must be in (0, 0.1] (the learning_rate; "
       "FTRL), got 0"},
  };
  for (const Case& k : cases) {
    OptimizerConfig c = Sgd(0.1f);
    k.set(&c);
    EXPECT_THAT(
        OptimizerRule::Create(c).status(),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(k.message)));
  }
}

}  // namespace
}  // namespace ps
