// OptimizerRule against plain references: every rule (SGD, Adagrad, Adam,
// FTRL; with and without l1, l2 and weight_bound) over many steps with random
// gradients against a double-precision implementation of the documented
// formulas, rows updated at different times included; hand-computed two-step
// Adam and FTRL examples; Adam's per-row bias correction; FTRL's sparsity;
// l2 and weight bounds; and Update vs UpdateRows bit for bit at sizes 1..65.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/optimizer.h"
#include "gtest/gtest.h"
#include "tests/testing/optimizer_test_util.h"

namespace ps {
namespace {

OptimizerConfig Config(OptimizerConfig::Type type, float lr) {
  OptimizerConfig c;
  c.set_type(type);
  c.set_learning_rate(lr);
  return c;
}

OptimizerConfig Adam(float lr, float beta1, float beta2, float epsilon) {
  OptimizerConfig c = Config(OptimizerConfig::ADAM, lr);
  c.set_beta1(beta1);
  c.set_beta2(beta2);
  c.set_epsilon(epsilon);
  return c;
}

OptimizerConfig Ftrl(float alpha, float beta, float l1, float l2) {
  OptimizerConfig c = Config(OptimizerConfig::FTRL, alpha);
  c.set_ftrl_beta(beta);
  c.set_l1(l1);
  c.set_l2(l2);
  return c;
}

OptimizerConfig With(OptimizerConfig c, float l2, float bound) {
  c.set_l2(l2);
  c.set_weight_bound(bound);
  return c;
}

// The documented formulas (proto/config.proto) in double precision, one
// weight at a time, with the row state kept per row as the rules keep it.
class Reference {
 public:
  Reference(const OptimizerConfig& c, std::vector<float> w)
      : c_(c), w_(w.begin(), w.end()), a_(w.size()), b_(w.size()) {
    if (c.type() == OptimizerConfig::ADAGRAD) {
      std::fill(a_.begin(), a_.end(), c.initial_accumulator());
    }
  }

  void Update(const std::vector<float>& grad) {
    const double lr = c_.learning_rate(), l1 = c_.l1(), l2 = c_.l2();
    const double eps = c_.epsilon(), b1 = c_.beta1(), b2 = c_.beta2();
    b1t_ *= b1;
    b2t_ *= b2;
    for (size_t i = 0; i < w_.size(); ++i) {
      double& w = w_[i];
      double g = grad[i];
      switch (c_.type()) {
        case OptimizerConfig::SGD:
          w -= lr * (g + l2 * w);
          break;
        case OptimizerConfig::ADAGRAD:
          g += l2 * w;
          a_[i] += g * g;  // g2
          w -= lr * g / (std::sqrt(a_[i]) + eps);
          break;
        case OptimizerConfig::ADAM: {
          g += l2 * w;
          a_[i] = b1 * a_[i] + (1 - b1) * g;      // m
          b_[i] = b2 * b_[i] + (1 - b2) * g * g;  // v
          const double lr_t = lr * std::sqrt(1 - b2t_) / (1 - b1t_);
          w -= lr_t * a_[i] / (std::sqrt(b_[i]) + eps);
          break;
        }
        case OptimizerConfig::FTRL: {
          double& z = a_[i];
          double& n = b_[i];
          const double beta = c_.ftrl_beta();
          const double sigma = (std::sqrt(n + g * g) - std::sqrt(n)) / lr;
          z += g - sigma * w;
          n += g * g;
          w = std::abs(z) <= l1 ? 0.0
                                : -(z - std::copysign(l1, z)) /
                                      ((beta + std::sqrt(n)) / lr + l2);
          break;
        }
        default:
          FAIL() << "no reference for type " << c_.type();
      }
      const double bound = c_.weight_bound();
      if (bound > 0) w = std::clamp(w, -bound, bound);
    }
  }

  // The rule's state layout (see optimizer.h) of the reference's state.
  std::vector<double> State() const {
    std::vector<double> s;
    switch (c_.type()) {
      case OptimizerConfig::SGD:
        break;
      case OptimizerConfig::ADAGRAD:
        s = a_;
        break;
      case OptimizerConfig::ADAM:
        s = a_;
        s.insert(s.end(), b_.begin(), b_.end());
        s.push_back(b1t_);
        s.push_back(b2t_);
        break;
      default:
        s = a_;
        s.insert(s.end(), b_.begin(), b_.end());
    }
    return s;
  }
  const std::vector<double>& weights() const { return w_; }

 private:
  const OptimizerConfig c_;
  std::vector<double> w_;
  std::vector<double> a_, b_;  // the two per-weight states
  double b1t_ = 1, b2t_ = 1;   // Adam's beta powers
};

// |got - want| <= 1e-5 * max(1, |want|), element by element.
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0, std::abs(want[i])))
        << what << "[" << i << "]";
  }
}

// Rule configurations the tests below sweep, each rule with and without its
// regularization and a weight bound.
std::vector<OptimizerConfig> AllRules() {
  OptimizerConfig adagrad = Config(OptimizerConfig::ADAGRAD, 0.05f);
  adagrad.set_initial_accumulator(0.1f);
  return {
      Config(OptimizerConfig::SGD, 0.02f),
      With(Config(OptimizerConfig::SGD, 0.02f), /*l2=*/0.3f, /*bound=*/0.8f),
      adagrad,
      With(adagrad, /*l2=*/0.1f, /*bound=*/0.6f),
      Adam(0.01f, 0.9f, 0.999f, 1e-6f),
      With(Adam(0.02f, 0.5f, 0.9f, 1e-3f), /*l2=*/0.2f, /*bound=*/0.7f),
      Adam(0.01f, 0.0f, 0.0f, 1e-6f),
      Ftrl(0.1f, 1.0f, 0.0f, 0.0f),
      With(Ftrl(0.1f, 1.0f, 0.5f, 1.0f), /*l2=*/1.0f, /*bound=*/0.3f),
      Ftrl(0.5f, 0.0f, 2.0f, 0.0f),
  };
}

// Five rows of dim 6, 400 updates to rows picked at random (so each row has
// its own update count), against the double reference.
TEST(OptimizerReferenceTest, EveryRuleMatchesDoubleReferenceOverManySteps) {
  for (const OptimizerConfig& config : AllRules()) {
    auto rule = MustCreate(config);
    ASSERT_NE(rule, nullptr);
    SCOPED_TRACE(config.ShortDebugString());
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    constexpr int kRows = 5, kDim = 6;
    std::vector<Row> rows;
    std::vector<Reference> refs;
    for (int r = 0; r < kRows; ++r) {
      std::vector<float> w(kDim);
      for (float& x : w) x = 0.5f * normal(rng);
      rows.emplace_back(*rule, w);
      refs.emplace_back(config, w);
    }
    std::uniform_int_distribution<int> pick(0, kRows - 1);
    for (int step = 0; step < 400; ++step) {
      const int r = step < kRows ? kRows - 1 - step : pick(rng);
      std::vector<float> g(kDim);
      for (float& x : g) x = normal(rng);
      rule->Update(rows[r].view(), g);
      refs[r].Update(g);
    }
    for (int r = 0; r < kRows; ++r) {
      ExpectClose(rows[r].weights, refs[r].weights(), "weights");
      ExpectClose(rows[r].state, refs[r].State(), "state");
    }
  }
}

TEST(OptimizerReferenceTest, NamesAndStateSizes) {
  auto adam = MustCreate(Adam(0.1f, 0.9f, 0.999f, 1e-6f));
  auto ftrl = MustCreate(Ftrl(0.1f, 1.0f, 0.0f, 0.0f));
  ASSERT_NE(adam, nullptr);
  ASSERT_NE(ftrl, nullptr);
  EXPECT_STREQ(adam->Name(), "adam");
  EXPECT_STREQ(ftrl->Name(), "ftrl");
  // Adam: m and v per weight, beta1^t and beta2^t per row.
  EXPECT_EQ(adam->StateSize(1), 4);
  EXPECT_EQ(adam->StateSize(64), 130);
  EXPECT_EQ(ftrl->StateSize(1), 2);
  EXPECT_EQ(ftrl->StateSize(64), 128);
  Row a(*adam, {0.0f, 0.0f, 0.0f});
  EXPECT_EQ(a.state, (std::vector<float>{0, 0, 0, 0, 0, 0, 1, 1}));
  Row f(*ftrl, {0.0f, 0.0f});
  EXPECT_EQ(f.state, (std::vector<float>{0, 0, 0, 0}));
}

// Adam, beta1 0.5, beta2 0.75, lr 0.1, one weight w = 1.
TEST(OptimizerReferenceTest, AdamTwoStepsByHand) {
  auto rule = MustCreate(Adam(0.1f, 0.5f, 0.75f, 1e-6f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {1.0f});
  // g = 2: m = 0.5 * 2 = 1; v = 0.25 * 4 = 1; beta^1 = 0.5, 0.75;
  // lr_1 = 0.1 * sqrt(0.25) / 0.5 = 0.1; w = 1 - 0.1 * 1 / (1 + 1e-6).
  rule->Update(row.view(), std::vector<float>{2.0f});
  EXPECT_EQ(row.state, (std::vector<float>{1.0f, 1.0f, 0.5f, 0.75f}));
  EXPECT_NEAR(row.weights[0], 0.9f, 1e-6);
  // g = 4: m = 0.5 + 2 = 2.5; v = 0.75 + 4 = 4.75; beta^2 = 0.25, 0.5625;
  // lr_2 = 0.1 * sqrt(0.4375) / 0.75 = 0.0881917;
  // w = 0.9 - 0.0881917 * 2.5 / sqrt(4.75) = 0.9 - 0.1011628 = 0.7988372.
  rule->Update(row.view(), std::vector<float>{4.0f});
  EXPECT_EQ(row.state, (std::vector<float>{2.5f, 4.75f, 0.25f, 0.5625f}));
  EXPECT_NEAR(row.weights[0], 0.7988372f, 1e-6);
}

// A row first updated after another row's 100 updates gets the bias
// correction of its own first step: Adam's first step is lr * g / |g|
// (up to epsilon), whenever it comes.
TEST(OptimizerReferenceTest, AdamBiasCorrectionIsPerRow) {
  auto rule = MustCreate(Adam(0.01f, 0.9f, 0.999f, 1e-6f));
  ASSERT_NE(rule, nullptr);
  Row busy(*rule, {0.0f});
  Row late(*rule, {0.0f, 0.0f});
  for (int t = 0; t < 100; ++t) {
    rule->Update(busy.view(), std::vector<float>{1.0f});
  }
  rule->Update(late.view(), std::vector<float>{3.0f, -0.5f});
  // m = 0.1 g, v = 0.001 g^2, lr_1 = 0.01 sqrt(0.001) / 0.1:
  // w = -lr_1 * 0.1 g / (sqrt(0.001) |g| + 1e-6) = -0.01 g / (|g| + 3.16e-5).
  EXPECT_NEAR(late.weights[0], -0.01f * 3 / (3 + 3.162e-5f), 1e-7);
  EXPECT_NEAR(late.weights[1], 0.01f * 0.5f / (0.5f + 3.162e-5f), 1e-7);
  EXPECT_FLOAT_EQ(late.state[4], 0.9f);    // beta1^1
  EXPECT_FLOAT_EQ(late.state[5], 0.999f);  // beta2^1
  // The busy row's beta powers: [m, v, beta1^100, beta2^100].
  EXPECT_NEAR(busy.state[2], std::pow(0.9, 100), 1e-10);
  EXPECT_NEAR(busy.state[3], std::pow(0.999, 100), 1e-5);
}

// FTRL, alpha 0.5, beta 1, l1 0.5, l2 1; w = (0, 0.2).
TEST(OptimizerReferenceTest, FtrlTwoStepsByHand) {
  auto rule = MustCreate(Ftrl(0.5f, 1.0f, 0.5f, 1.0f));
  ASSERT_NE(rule, nullptr);
  Row row(*rule, {0.0f, 0.2f});
  // g = (3, 1): sigma = (3, 1) / 0.5 = (6, 2); z = (3, 1 - 2 * 0.2) =
  // (3, 0.6); n = (9, 1); w = -(z - 0.5) / ((1 + sqrt(n)) / 0.5 + 1) =
  // (-2.5 / 9, -0.1 / 5).
  rule->Update(row.view(), std::vector<float>{3.0f, 1.0f});
  EXPECT_NEAR(row.state[0], 3.0f, 1e-6);  // z
  EXPECT_NEAR(row.state[1], 0.6f, 1e-6);
  EXPECT_EQ(row.state[2], 9.0f);  // n
  EXPECT_EQ(row.state[3], 1.0f);
  EXPECT_NEAR(row.weights[0], -2.5f / 9, 1e-6);
  EXPECT_NEAR(row.weights[1], -0.02f, 1e-6);
  // g = (-4, 1): n = (25, 2); sigma = ((5 - 3), (sqrt 2 - 1)) / 0.5 =
  // (4, 0.8284271); z = (3 - 4 + 4 * 2.5 / 9, 0.6 + 1 + 0.8284271 * 0.02) =
  // (1 / 9, 1.6165685). |z0| <= 0.5: w0 = 0 exactly;
  // w1 = -1.1165685 / ((1 + sqrt 2) / 0.5 + 1) = -1.1165685 / 5.8284271.
  rule->Update(row.view(), std::vector<float>{-4.0f, 1.0f});
  EXPECT_NEAR(row.state[0], 1.0f / 9, 1e-6);
  EXPECT_NEAR(row.state[1], 1.6165685f, 1e-6);
  EXPECT_EQ(row.state[2], 25.0f);
  EXPECT_EQ(row.state[3], 2.0f);
  EXPECT_EQ(row.weights[0], 0.0f);
  EXPECT_NEAR(row.weights[1], -1.1165685f / 5.8284271f, 1e-6);
}

// With l1 larger than any |z| the gradients can build, every weight is
// exactly 0 after its first update, and stays 0.
TEST(OptimizerReferenceTest, FtrlLargeL1GivesExactZeros) {
  auto rule = MustCreate(Ftrl(1.0f, 1.0f, /*l1=*/50.0f, 0.0f));
  ASSERT_NE(rule, nullptr);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(13);
  for (float& x : w) x = normal(rng);
  Row row(*rule, w);
  for (int step = 0; step < 20; ++step) {
    std::vector<float> g(13);
    for (float& x : g) x = normal(rng);
    rule->Update(row.view(), g);
    EXPECT_EQ(row.weights, std::vector<float>(13, 0.0f)) << "step " << step;
  }
  // ... while the same gradients with l1 = 0 give no zero at all.
  auto dense = MustCreate(Ftrl(1.0f, 1.0f, 0.0f, 0.0f));
  ASSERT_NE(dense, nullptr);
  Row other(*dense, w);
  std::vector<float> g(13);
  for (float& x : g) x = normal(rng);
  dense->Update(other.view(), g);
  for (float x : other.weights) EXPECT_NE(x, 0.0f);
}

// l2 is weight decay for SGD, Adagrad and Adam: a zero gradient still pulls
// the weight towards 0 (g = l2 * w).
TEST(OptimizerReferenceTest, L2DecaysWeightsWithZeroGradient) {
  // SGD: w = 2 - 0.5 * (0.5 * 2) = 1.5, exact.
  auto sgd = MustCreate(With(Config(OptimizerConfig::SGD, 0.5f), 0.5f, 0.0f));
  ASSERT_NE(sgd, nullptr);
  Row s(*sgd, {2.0f, -2.0f});
  sgd->Update(s.view(), std::vector<float>{0.0f, 0.0f});
  EXPECT_EQ(s.weights, (std::vector<float>{1.5f, -1.5f}));
  // SGD with a gradient: g = 1 + 0.5 * 2 = 2; w = 2 - 0.5 * 2 = 1.
  Row s2(*sgd, {2.0f});
  sgd->Update(s2.view(), std::vector<float>{1.0f});
  EXPECT_EQ(s2.weights[0], 1.0f);
  // Adagrad: g = 0.5 * 2 = 1, g2 = 1, w = 2 - 0.5 * 1 / (1 + 1e-6).
  auto adagrad =
      MustCreate(With(Config(OptimizerConfig::ADAGRAD, 0.5f), 0.5f, 0.0f));
  ASSERT_NE(adagrad, nullptr);
  Row a(*adagrad, {2.0f});
  adagrad->Update(a.view(), std::vector<float>{0.0f});
  EXPECT_EQ(a.state[0], 1.0f);
  EXPECT_NEAR(a.weights[0], 1.5f, 1e-6);
  // Adam's first step is lr * sign(g): g = 0.5 * 2 > 0, w = 2 - 0.1.
  auto adam = MustCreate(With(Adam(0.1f, 0.9f, 0.999f, 1e-6f), 0.5f, 0.0f));
  ASSERT_NE(adam, nullptr);
  Row m(*adam, {2.0f});
  adam->Update(m.view(), std::vector<float>{0.0f});
  EXPECT_NEAR(m.weights[0], 1.9f, 1e-5);
}

// FTRL's l2 adds to the denominator: alpha 1, beta 1, g = 3 on w = 0:
// z = 3, n = 9, w = -3 / ((1 + 3) / 1 + l2).
TEST(OptimizerReferenceTest, FtrlL2ShrinksTheSolution) {
  for (float l2 : {0.0f, 2.0f}) {
    auto rule = MustCreate(Ftrl(1.0f, 1.0f, 0.0f, l2));
    ASSERT_NE(rule, nullptr);
    Row row(*rule, {0.0f});
    rule->Update(row.view(), std::vector<float>{3.0f});
    EXPECT_FLOAT_EQ(row.weights[0], -3.0f / (4.0f + l2)) << "l2 " << l2;
  }
}

TEST(OptimizerReferenceTest, WeightBoundClipsAdamAndFtrl) {
  // Adam's first step moves w by lr = 1 towards -sign(g): 0.25 -> -0.5.
  auto adam = MustCreate(With(Adam(1.0f, 0.9f, 0.999f, 1e-6f), 0.0f, 0.5f));
  ASSERT_NE(adam, nullptr);
  Row a(*adam, {0.25f, -0.25f});
  adam->Update(a.view(), std::vector<float>{1.0f, -1.0f});
  EXPECT_EQ(a.weights, (std::vector<float>{-0.5f, 0.5f}));
  // FTRL alpha 1, beta 1: w = -g / (1 + |g|) = -0.9 and 0.9, clipped to 0.5.
  auto ftrl = MustCreate(With(Ftrl(1.0f, 1.0f, 0.0f, 0.0f), 0.0f, 0.5f));
  ASSERT_NE(ftrl, nullptr);
  Row f(*ftrl, {0.0f, 0.0f});
  ftrl->Update(f.view(), std::vector<float>{9.0f, -9.0f});
  EXPECT_EQ(f.weights, (std::vector<float>{-0.5f, 0.5f}));
}

// Every weight gets the same math whether it falls in a vector lane or in the
// scalar tail: a row whose weights and gradients are all equal keeps all its
// weights and per-weight states equal, bit for bit.
TEST(OptimizerReferenceTest, LanesAndScalarTailAgreeBitForBit) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const OptimizerConfig& config : AllRules()) {
    auto rule = MustCreate(config);
    ASSERT_NE(rule, nullptr);
    for (int dim : {5, 7, 9, 13}) {
      SCOPED_TRACE(testing::Message()
                   << config.ShortDebugString() << " dim " << dim);
      Row row(*rule, std::vector<float>(dim, 0.3f));
      for (int step = 0; step < 30; ++step) {
        rule->Update(row.view(), std::vector<float>(dim, normal(rng)));
      }
      for (int i = 1; i < dim; ++i) {
        ASSERT_EQ(std::memcmp(&row.weights[i], &row.weights[0], sizeof(float)),
                  0);
        // Per-weight states k < S; the per-row part (2 floats at most) is
        // shorter than a dim >= 5 row, so state.size() / dim is S.
        for (size_t k = 0; k < row.state.size() / dim; ++k) {
          ASSERT_EQ(std::memcmp(&row.state[k * dim + i], &row.state[k * dim],
                                sizeof(float)),
                    0);
        }
      }
    }
  }
}

// UpdateRows over packed rows (rows listed several times included) equals
// Update over RowViews bit for bit, for every rule at every size 1..65 (the
// vector lanes, the scalar tail and the per-row state alike).
TEST(OptimizerReferenceTest, UpdateRowsMatchesUpdateBitForBit) {
  std::mt19937 rng(29);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int order[] = {0, 2, 1, 2, 3, 4, 5, 5, 5, 6, 0, 2, 6, 1, 4, 5, 3};
  constexpr int kRows = 7;
  constexpr int kUpdates = sizeof(order) / sizeof(order[0]);
  for (const OptimizerConfig& config : AllRules()) {
    auto rule = MustCreate(config);
    ASSERT_NE(rule, nullptr);
    for (int dim = 1; dim <= 65; ++dim) {
      SCOPED_TRACE(testing::Message()
                   << config.ShortDebugString() << " dim " << dim);
      const int stride = dim + rule->StateSize(dim);
      std::vector<float> packed(kRows * stride);
      for (int r = 0; r < kRows; ++r) {
        for (int i = 0; i < dim; ++i) packed[r * stride + i] = normal(rng);
        rule->InitState(
            absl::MakeSpan(&packed[r * stride + dim], stride - dim));
      }
      std::vector<float> by_view = packed;
      std::vector<float> grads(kUpdates * dim);
      for (float& g : grads) g = normal(rng);
      std::vector<float*> rows;
      std::vector<const float*> row_grads;
      for (int u = 0; u < kUpdates; ++u) {
        rows.push_back(&packed[order[u] * stride]);
        row_grads.push_back(&grads[u * dim]);
        float* view = &by_view[order[u] * stride];
        rule->Update(RowView{absl::MakeSpan(view, dim),
                             absl::MakeSpan(view + dim, stride - dim)},
                     absl::MakeConstSpan(&grads[u * dim], dim));
      }
      rule->UpdateRows(dim, rows, row_grads);
      ASSERT_EQ(std::memcmp(packed.data(), by_view.data(),
                            packed.size() * sizeof(float)),
                0);
    }
  }
}

}  // namespace
}  // namespace ps
