// OptimizerRule (SGD, Adagrad): updates against hand-computed values over
// several steps, state sizes, clipping, the batched UpdateRows against a
// scalar reference (bit for bit, at awkward sizes); Create's errors for every
// rule (SGD, Adagrad, Adam, FTRL); and PsHandler::Create naming the table
// whose optimizer is refused. Adam and FTRL's math, l1/l2 and every rule
// against a double reference: tests/common/optimizer_reference_test.cc.
#include "common/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/ps_handler.h"
#include "tests/testing/optimizer_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using testing_util::StatusIs;

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
    EXPECT_THAT(
        rule,
        StatusIs(absl::StatusCode::kInvalidArgument,
                 lr == 0.0f
                     ? "optimizer learning_rate must be positive, got 0"
                     : "optimizer learning_rate must be positive, got -0.5"));
  }
}

TEST(OptimizerTest, CreateRefusesNonFiniteLearningRate) {
  auto nan = OptimizerRule::Create(
      Adagrad(std::numeric_limits<float>::quiet_NaN(), 0.0f, 1e-6f));
  ASSERT_FALSE(nan.ok());
  EXPECT_THAT(nan,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "optimizer learning_rate must be positive, got nan"));
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
  EXPECT_THAT(rule, StatusIs(absl::StatusCode::kInvalidArgument,
                             "unknown optimizer type 0"));
}

// Create refuses every hyper-parameter out of range with a message naming the
// field and the value.
TEST(OptimizerTest, CreateRefusesBadHyperParameters) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    OptimizerConfig config;
    const char* message;
  };
  const Case cases[] = {
      {Adagrad(0.1f, 0.0f, 0.0f), "adagrad epsilon must be positive, got 0"},
      {Adagrad(0.1f, 0.0f, -1e-6f),
       "adagrad epsilon must be positive, got -1e-06"},
      {Adagrad(0.1f, 0.0f, nan), "adagrad epsilon must be positive, got nan"},
      {Adagrad(0.1f, 0.0f, inf), "adagrad epsilon must be positive, got inf"},
      {Adagrad(0.1f, -1.0f, kEps),
       "adagrad initial_accumulator must be finite and >= 0, got -1"},
      {Adagrad(0.1f, inf, kEps),
       "adagrad initial_accumulator must be finite and >= 0, got inf"},
      {Adagrad(0.1f, nan, kEps),
       "adagrad initial_accumulator must be finite and >= 0, got nan"},
      {Adagrad(0.0f, 0.0f, kEps),
       "optimizer learning_rate must be positive, got 0"},
      {Adagrad(0.1f, 0.0f, kEps, /*bound=*/-0.5f),
       "optimizer weight_bound must be finite and >= 0, got -0.5"},
      {Sgd(0.1f, /*bound=*/-2.0f),
       "optimizer weight_bound must be finite and >= 0, got -2"},
      {Sgd(0.1f, /*bound=*/inf),
       "optimizer weight_bound must be finite and >= 0, got inf"},
      {Sgd(0.1f, /*bound=*/nan),
       "optimizer weight_bound must be finite and >= 0, got nan"},
  };
  for (const Case& c : cases) {
    auto rule = OptimizerRule::Create(c.config);
    ASSERT_FALSE(rule.ok()) << c.message;
    EXPECT_THAT(rule, StatusIs(absl::StatusCode::kInvalidArgument, c.message));
  }
}

TEST(OptimizerTest, CreateAcceptsBoundaryValuesAndIgnoresUnusedFields) {
  // Zero accumulator and zero bound (no clipping) are valid.
  EXPECT_NE(MustCreate(Adagrad(0.1f, 0.0f, kEps, 0.0f)), nullptr);
  EXPECT_NE(MustCreate(Adagrad(1e-30f, 0.0f, 1e-30f, 1e30f)), nullptr);
  // SGD does not use epsilon or initial_accumulator.
  OptimizerConfig sgd = Sgd(0.1f);
  sgd.set_epsilon(0.0f);
  sgd.set_initial_accumulator(-1.0f);
  EXPECT_NE(MustCreate(sgd), nullptr);
}

OptimizerConfig Adam(float beta1, float beta2, float epsilon = kEps) {
  OptimizerConfig c;
  c.set_type(OptimizerConfig::ADAM);
  c.set_learning_rate(0.01f);
  c.set_beta1(beta1);
  c.set_beta2(beta2);
  c.set_epsilon(epsilon);
  return c;
}

OptimizerConfig Ftrl(float beta, float l1, float l2 = 0.0f) {
  OptimizerConfig c;
  c.set_type(OptimizerConfig::FTRL);
  c.set_learning_rate(0.1f);
  c.set_ftrl_beta(beta);
  c.set_l1(l1);
  c.set_l2(l2);
  return c;
}

OptimizerConfig WithL2(OptimizerConfig c, float l2) {
  c.set_l2(l2);
  return c;
}

TEST(OptimizerTest, CreateRefusesBadAdamFtrlAndL2HyperParameters) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    OptimizerConfig config;
    const char* message;
  };
  const Case cases[] = {
      {Adam(1.0f, 0.999f), "adam beta1 must be in [0, 1), got 1"},
      {Adam(-0.1f, 0.999f), "adam beta1 must be in [0, 1), got -0.1"},
      {Adam(nan, 0.999f), "adam beta1 must be in [0, 1), got nan"},
      {Adam(0.9f, 1.0f), "adam beta2 must be in [0, 1), got 1"},
      {Adam(0.9f, inf), "adam beta2 must be in [0, 1), got inf"},
      {Adam(0.9f, -inf), "adam beta2 must be in [0, 1), got -inf"},
      {Adam(0.9f, 0.999f, 0.0f), "adam epsilon must be positive, got 0"},
      {Adam(0.9f, 0.999f, nan), "adam epsilon must be positive, got nan"},
      {Ftrl(-1.0f, 0.0f), "ftrl ftrl_beta must be finite and >= 0, got -1"},
      {Ftrl(inf, 0.0f), "ftrl ftrl_beta must be finite and >= 0, got inf"},
      {Ftrl(1.0f, -0.5f), "ftrl l1 must be finite and >= 0, got -0.5"},
      {Ftrl(1.0f, nan), "ftrl l1 must be finite and >= 0, got nan"},
      {Ftrl(1.0f, 0.0f, -2.0f), "optimizer l2 must be finite and >= 0, got -2"},
      {WithL2(Sgd(0.1f), -0.5f),
       "optimizer l2 must be finite and >= 0, got -0.5"},
      {WithL2(Adagrad(0.1f, 0.0f, kEps), inf),
       "optimizer l2 must be finite and >= 0, got inf"},
      {WithL2(Adam(0.9f, 0.999f), nan),
       "optimizer l2 must be finite and >= 0, got nan"},
  };
  for (const Case& c : cases) {
    auto rule = OptimizerRule::Create(c.config);
    ASSERT_FALSE(rule.ok()) << c.message;
    EXPECT_THAT(rule, StatusIs(absl::StatusCode::kInvalidArgument, c.message));
  }
}

TEST(OptimizerTest, CreateAcceptsAdamAndFtrlBoundaryValues) {
  EXPECT_NE(MustCreate(Adam(0.0f, 0.0f)), nullptr);
  EXPECT_NE(MustCreate(Adam(0.99999994f, 0.99999994f)), nullptr);
  EXPECT_NE(MustCreate(Ftrl(0.0f, 0.0f, 0.0f)), nullptr);
  EXPECT_NE(MustCreate(Ftrl(1e30f, 1e30f, 1e30f)), nullptr);
  // The defaults of the new fields are valid for every rule.
  OptimizerConfig c;
  for (auto type : {OptimizerConfig::SGD, OptimizerConfig::ADAGRAD,
                    OptimizerConfig::ADAM, OptimizerConfig::FTRL}) {
    c.set_type(type);
    EXPECT_NE(MustCreate(c), nullptr) << OptimizerConfig::Type_Name(type);
  }
  // Fields a rule does not use are not checked: SGD ignores beta1 and l1,
  // Adam ignores ftrl_beta and l1, FTRL ignores beta1 and epsilon.
  OptimizerConfig sgd = Sgd(0.1f);
  sgd.set_beta1(2.0f);
  sgd.set_l1(-1.0f);
  EXPECT_NE(MustCreate(sgd), nullptr);
  OptimizerConfig adam = Adam(0.9f, 0.999f);
  adam.set_ftrl_beta(-1.0f);
  adam.set_l1(-1.0f);
  EXPECT_NE(MustCreate(adam), nullptr);
  OptimizerConfig ftrl = Ftrl(1.0f, 0.0f);
  ftrl.set_beta1(1.0f);
  ftrl.set_epsilon(0.0f);
  EXPECT_NE(MustCreate(ftrl), nullptr);
}

// The documented formulas, one float at a time, as a reference for the
// vectorized update path.
void ReferenceUpdate(const OptimizerConfig& c, float* w, float* state,
                     const float* g, int dim) {
  for (int i = 0; i < dim; ++i) {
    float v;
    if (c.type() == OptimizerConfig::SGD) {
      v = w[i] - c.learning_rate() * g[i];
    } else {
      state[i] = state[i] + g[i] * g[i];
      v = w[i] - c.learning_rate() * g[i] / (std::sqrt(state[i]) + c.epsilon());
    }
    const float b = c.weight_bound();
    w[i] = b > 0 ? std::clamp(v, -b, b) : v;
  }
}

// UpdateRows over packed rows (a row listed several times included) and
// Update over RowViews both equal the scalar reference bit for bit, at sizes
// around the vector width.
TEST(OptimizerTest, UpdateRowsMatchesScalarReferenceBitForBit) {
  const OptimizerConfig configs[] = {
      Sgd(0.3f), Sgd(0.3f, /*bound=*/0.05f), Adagrad(0.07f, 0.1f, kEps),
      Adagrad(0.5f, 0.0f, 1e-3f, /*bound=*/0.05f)};
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const OptimizerConfig& config : configs) {
    auto rule = MustCreate(config);
    ASSERT_NE(rule, nullptr);
    for (int dim : {1, 3, 4, 5, 7, 8, 13, 64, 65}) {
      SCOPED_TRACE(testing::Message()
                   << rule->Name() << " bound " << config.weight_bound()
                   << " dim " << dim);
      const int stride = dim + rule->StateSize(dim);
      constexpr int kRows = 11;
      // Packed rows: random weights, state from InitState.
      std::vector<float> packed(kRows * stride);
      for (int r = 0; r < kRows; ++r) {
        for (int i = 0; i < dim; ++i) packed[r * stride + i] = normal(rng);
        rule->InitState(
            absl::MakeSpan(&packed[r * stride + dim], stride - dim));
      }
      std::vector<float> reference = packed;
      std::vector<float> by_view = packed;
      // 23 updates; rows 2 and 5 appear several times.
      const int order[] = {0, 2,  1, 2, 3, 4, 5, 5, 5, 6,  7, 8,
                           9, 10, 2, 1, 0, 5, 3, 2, 9, 10, 4};
      constexpr int kUpdates = sizeof(order) / sizeof(order[0]);
      std::vector<float> grads(kUpdates * dim);
      for (float& g : grads) g = normal(rng);
      std::vector<float*> rows;
      std::vector<const float*> row_grads;
      for (int u = 0; u < kUpdates; ++u) {
        rows.push_back(&packed[order[u] * stride]);
        row_grads.push_back(&grads[u * dim]);
        float* ref = &reference[order[u] * stride];
        ReferenceUpdate(config, ref, ref + dim, &grads[u * dim], dim);
        float* view = &by_view[order[u] * stride];
        rule->Update(RowView{absl::MakeSpan(view, dim),
                             absl::MakeSpan(view + dim, stride - dim)},
                     absl::MakeConstSpan(&grads[u * dim], dim));
      }
      rule->UpdateRows(dim, rows, row_grads);
      ASSERT_EQ(std::memcmp(packed.data(), reference.data(),
                            packed.size() * sizeof(float)),
                0);
      ASSERT_EQ(std::memcmp(by_view.data(), reference.data(),
                            by_view.size() * sizeof(float)),
                0);
    }
  }
}

TEST(OptimizerTest, UpdateRowsOfNothingIsANoOp) {
  auto rule = MustCreate(Adagrad(0.1f, 0.0f, kEps));
  ASSERT_NE(rule, nullptr);
  rule->UpdateRows(8, {}, {});
}

// A job whose optimizer is refused: PsHandler::Create names the table.
JobConfig OneServerJob() {
  JobConfig c;
  c.mutable_cluster()->add_servers("127.0.0.1:5000");
  c.mutable_cluster()->set_shard_num(4);
  c.mutable_cluster()->set_dense_block_size(4);
  SparseTableConfig* table = c.add_sparse_tables();
  table->set_name("emb");
  table->set_dim(4);
  *table->mutable_optimizer() = Adagrad(0.1f, 0.0f, kEps);
  ModelConfig* model = c.mutable_model();
  model->set_type(ModelConfig::DNN);
  model->set_sparse_table("emb");
  *model->mutable_dense_optimizer() = Sgd(0.25f);
  c.mutable_data()->add_train_files("/data/train.tsv");
  return c;
}

TEST(OptimizerTest, PsHandlerCreateNamesTheTableOfABadOptimizer) {
  ASSERT_TRUE(PsHandler::Create(OneServerJob(), 0).ok());

  JobConfig sparse = OneServerJob();
  sparse.mutable_sparse_tables(0)->mutable_optimizer()->set_epsilon(0.0f);
  auto h = PsHandler::Create(sparse, 0);
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "table 'emb': adagrad epsilon must be positive, got 0"));

  JobConfig dense = OneServerJob();
  dense.mutable_model()->mutable_dense_optimizer()->set_weight_bound(-1.0f);
  h = PsHandler::Create(dense, 0);
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(
      h,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "dense table 'model': optimizer weight_bound must be finite and "
               ">= 0, got -1"));
}

}  // namespace
}  // namespace ps
