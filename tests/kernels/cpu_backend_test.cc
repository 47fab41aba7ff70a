// Checks every CpuBackend kernel against a plain-loop reference (in double)
// on seeded random inputs of awkward sizes, plus hand-computed values.
#include "kernels/cpu/cpu_backend.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/kernel_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

TEST(CpuBackendTest, CreateRejectsZeroThreads) {
  BackendOptions options;
  options.threads = 0;
  auto backend = Backend::CreateCpu(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_THAT(backend, StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("threads must be >= 1, got 0")));
}

TEST(CpuBackendTest, NameIsCpu) { EXPECT_EQ(MakeBackend()->Name(), "cpu"); }

struct GemmCase {
  int m, n, k;
};

TEST(CpuBackendTest, GemmMatchesReferenceForAllTransposes) {
  auto backend = MakeBackend();
  std::mt19937 rng(7);
  const GemmCase cases[] = {{1, 1, 1},    {7, 65, 1},    {65, 7, 13},
                            {1, 1000, 7}, {1000, 1, 65}, {33, 17, 1000}};
  for (const GemmCase& c : cases) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const std::vector<float> a = RandomVector(int64_t{c.m} * c.k, &rng);
        const std::vector<float> b = RandomVector(int64_t{c.k} * c.n, &rng);
        std::vector<float> out = RandomVector(int64_t{c.m} * c.n, &rng);
        const std::vector<float> c0 = out;
        const float alpha = 0.75f, beta = -0.5f;
        backend->Gemm(ta, tb, c.m, c.n, c.k, alpha, a.data(), b.data(), beta,
                      out.data());
        for (int i = 0; i < c.m; ++i) {
          for (int j = 0; j < c.n; ++j) {
            double sum = 0;
            for (int p = 0; p < c.k; ++p) {
              const float av =
                  ta ? a[int64_t{p} * c.m + i] : a[int64_t{i} * c.k + p];
              const float bv =
                  tb ? b[int64_t{j} * c.k + p] : b[int64_t{p} * c.n + j];
              sum += double{av} * bv;
            }
            const double want = alpha * sum + beta * c0[int64_t{i} * c.n + j];
            ASSERT_NEAR(out[int64_t{i} * c.n + j], want, 1e-5 * (c.k + 1))
                << "m=" << c.m << " n=" << c.n << " k=" << c.k
                << " trans_a=" << ta << " trans_b=" << tb << " at (" << i
                << ", " << j << ")";
          }
        }
      }
    }
  }
}

TEST(CpuBackendTest, GemmWithZeroInnerDimensionScalesC) {
  auto backend = MakeBackend();
  std::vector<float> c = {1.0f, -2.0f, 3.0f};
  backend->Gemm(false, false, 3, 1, 0, 1.0f, nullptr, nullptr, 0.5f, c.data());
  EXPECT_THAT(c, ::testing::ElementsAre(0.5f, -1.0f, 1.5f));
  backend->Gemm(true, false, 3, 1, 0, 1.0f, nullptr, nullptr, 0.0f, c.data());
  EXPECT_THAT(c, ::testing::ElementsAre(0.0f, 0.0f, 0.0f));
}

TEST(CpuBackendTest, BiasActivationMatchesReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(11);
  for (int m : {1, 7, 65}) {
    for (int n : {1, 7, 1000}) {
      const std::vector<float> bias = RandomVector(n, &rng);
      const std::vector<float> y0 = RandomVector(int64_t{m} * n, &rng);
      std::vector<float> linear = y0, relu = y0;
      backend->BiasActivation(m, n, bias.data(), Activation::kNone,
                              linear.data());
      backend->BiasActivation(m, n, bias.data(), Activation::kRelu,
                              relu.data());
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          const int64_t at = int64_t{i} * n + j;
          const float want = y0[at] + bias[j];
          ASSERT_FLOAT_EQ(linear[at], want) << "m=" << m << " n=" << n;
          ASSERT_FLOAT_EQ(relu[at], want > 0 ? want : 0.0f)
              << "m=" << m << " n=" << n;
        }
      }
    }
  }
}

TEST(CpuBackendTest, ReluBackwardZeroesWhereOutputIsNotPositive) {
  auto backend = MakeBackend();
  const std::vector<float> y = {0.0f, 2.0f, -1.0f, 1e-30f, 0.5f};
  std::vector<float> dy = {1.0f, 2.0f, 3.0f, 4.0f, -5.0f};
  backend->ActivationBackward(5, Activation::kRelu, y.data(), dy.data());
  EXPECT_THAT(dy, ::testing::ElementsAre(0.0f, 2.0f, 0.0f, 4.0f, -5.0f));

  std::vector<float> untouched = {1.0f, 2.0f, 3.0f, 4.0f, -5.0f};
  backend->ActivationBackward(5, Activation::kNone, y.data(), untouched.data());
  EXPECT_THAT(untouched, ::testing::ElementsAre(1.0f, 2.0f, 3.0f, 4.0f, -5.0f));
}

TEST(CpuBackendTest, ReluBackwardMatchesReferenceOnRandomInputs) {
  auto backend = MakeBackend();
  std::mt19937 rng(13);
  for (int count : {1, 7, 65, 1000}) {
    const std::vector<float> y = RandomVector(count, &rng);
    const std::vector<float> dy0 = RandomVector(count, &rng);
    std::vector<float> dy = dy0;
    backend->ActivationBackward(count, Activation::kRelu, y.data(), dy.data());
    for (int i = 0; i < count; ++i) {
      ASSERT_EQ(dy[i], y[i] > 0 ? dy0[i] : 0.0f) << "count=" << count;
    }
  }
}

TEST(CpuBackendTest, TanhAndSigmoidActivationsMatchReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(31);
  for (int m : {1, 7, 65}) {
    for (int n : {1, 7, 33}) {
      const std::vector<float> bias = RandomVector(n, &rng);
      const std::vector<float> y0 = RandomVector(int64_t{m} * n, &rng, -4, 4);
      const std::vector<float> dy0 = RandomVector(int64_t{m} * n, &rng);
      std::vector<float> tanh_y = y0, sig_y = y0;
      backend->BiasActivation(m, n, bias.data(), Activation::kTanh,
                              tanh_y.data());
      backend->BiasActivation(m, n, bias.data(), Activation::kSigmoid,
                              sig_y.data());
      std::vector<float> tanh_dy = dy0, sig_dy = dy0;
      backend->ActivationBackward(int64_t{m} * n, Activation::kTanh,
                                  tanh_y.data(), tanh_dy.data());
      backend->ActivationBackward(int64_t{m} * n, Activation::kSigmoid,
                                  sig_y.data(), sig_dy.data());
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          const int64_t at = int64_t{i} * n + j;
          const double z = double{y0[at]} + bias[j];
          const double t = std::tanh(z), s = 1 / (1 + std::exp(-z));
          ASSERT_NEAR(tanh_y[at], t, 1e-6) << "m=" << m << " n=" << n;
          ASSERT_NEAR(sig_y[at], s, 1e-6) << "m=" << m << " n=" << n;
          ASSERT_NEAR(tanh_dy[at], dy0[at] * (1 - t * t), 1e-6);
          ASSERT_NEAR(sig_dy[at], dy0[at] * s * (1 - s), 1e-6);
        }
      }
    }
  }
}

// Dropout: about `rate` of the elements dropped (to within 5 standard
// deviations: 200000 elements at rate 0.3 give a standard deviation of
// 0.001), the others scaled by exactly 1 / (1 - rate); the gradient call
// with the same seed drops the same elements; another seed another mask;
// rate 0 is the identity; in place equals out of place.
TEST(CpuBackendTest, DropoutDropsRateOfElementsAndScalesTheRest) {
  auto backend = MakeBackend();
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);  // never 0
  constexpr int64_t kN = 200000;
  std::vector<float> x(kN);
  for (float& v : x) v = u(rng);
  for (float rate : {0.1f, 0.3f, 0.5f, 0.9f}) {
    std::vector<float> y(kN, -1.0f);
    backend->Dropout(kN, rate, /*seed=*/42, x.data(), y.data());
    const float scale = 1.0f / (1.0f - rate);
    int64_t dropped = 0;
    for (int64_t i = 0; i < kN; ++i) {
      if (y[i] == 0.0f) {
        ++dropped;
      } else {
        ASSERT_EQ(y[i], x[i] * scale) << "rate " << rate << " i " << i;
      }
    }
    const double sd = std::sqrt(rate * (1.0 - rate) / kN);
    EXPECT_NEAR(static_cast<double>(dropped) / kN, rate, 5 * sd)
        << "rate " << rate;
    // Backward: the gradient by y through the same mask.
    std::vector<float> g(kN, 2.0f);
    backend->Dropout(kN, rate, 42, g.data(), g.data());  // in place
    for (int64_t i = 0; i < kN; ++i) {
      ASSERT_EQ(g[i] == 0.0f, y[i] == 0.0f) << "rate " << rate << " i " << i;
      if (g[i] != 0.0f) ASSERT_EQ(g[i], 2.0f * scale);
    }
    // Another seed: another mask.
    std::vector<float> other(kN);
    backend->Dropout(kN, rate, 43, x.data(), other.data());
    EXPECT_NE(other, y) << "rate " << rate;
  }
  std::vector<float> same(kN);
  backend->Dropout(kN, 0.0f, 42, x.data(), same.data());
  EXPECT_EQ(same, x);
  backend->Dropout(kN, 0.0f, 42, same.data(), same.data());
  EXPECT_EQ(same, x);
}

// The mask of element i depends only on (seed, i): a prefix of a longer
// call has the prefix's mask, so awkward sizes agree with the reference.
TEST(CpuBackendTest, DropoutMaskIsAFunctionOfSeedAndIndex) {
  auto backend = MakeBackend();
  const uint32_t threshold = DropoutThreshold(0.25f);
  for (int64_t n : {1, 7, 65, 1000}) {
    std::vector<float> y(n);
    const std::vector<float> ones(n, 1.0f);
    backend->Dropout(n, 0.25f, 5, ones.data(), y.data());
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(y[i] != 0.0f, DropoutKeeps(5, i, threshold)) << n << " " << i;
    }
  }
}

TEST(CpuBackendTest, BiasGradOverwritesWithColumnSums) {
  auto backend = MakeBackend();
  std::mt19937 rng(17);
  for (int m : {1, 7, 65, 1000}) {
    for (int n : {1, 7, 65}) {
      const std::vector<float> dy = RandomVector(int64_t{m} * n, &rng);
      std::vector<float> db(n, 123.0f);  // must be overwritten, not added to
      backend->BiasGrad(m, n, dy.data(), db.data());
      for (int j = 0; j < n; ++j) {
        double want = 0;
        for (int i = 0; i < m; ++i) want += dy[int64_t{i} * n + j];
        ASSERT_NEAR(db[j], want, 1e-5 * m) << "m=" << m << " n=" << n;
      }
    }
  }
}

// A random CSR over (example, slot) with 0..max_keys rows per slot, drawn
// from num_rows rows (so rows repeat across and within examples).
struct RandomPool {
  std::vector<uint32_t> offsets;
  std::vector<uint32_t> index;
  PoolArgs args;
};

RandomPool MakeRandomPool(int batch, int num_slots, int dim, PoolMode mode,
                          int num_rows, int max_keys, std::mt19937* rng) {
  RandomPool pool;
  std::uniform_int_distribution<int> keys(0, max_keys);
  std::uniform_int_distribution<uint32_t> row(0, num_rows - 1);
  pool.offsets.push_back(0);
  for (int slot = 0; slot < batch * num_slots; ++slot) {
    const int count = keys(*rng);
    for (int k = 0; k < count; ++k) pool.index.push_back(row(*rng));
    pool.offsets.push_back(static_cast<uint32_t>(pool.index.size()));
  }
  pool.args.batch = batch;
  pool.args.num_slots = num_slots;
  pool.args.dim = dim;
  pool.args.mode = mode;
  pool.args.offsets = pool.offsets.data();
  pool.args.index = pool.index.data();
  return pool;
}

TEST(CpuBackendTest, PoolForwardMatchesReferenceAndKeepsOtherColumns) {
  auto backend = MakeBackend();
  std::mt19937 rng(19);
  const float kSentinel = -777.0f;
  for (PoolMode mode : {PoolMode::kSum, PoolMode::kMean, PoolMode::kSqrtN}) {
    for (int batch : {1, 7, 65}) {
      for (int dim : {1, 7}) {
        const int num_slots = 3, num_rows = 5, extra = 2;
        RandomPool pool =
            MakeRandomPool(batch, num_slots, dim, mode, num_rows, 3, &rng);
        const std::vector<float> rows =
            RandomVector(int64_t{num_rows} * dim, &rng);
        const int ld = num_slots * dim + extra;
        std::vector<float> out(int64_t{batch} * ld, kSentinel);
        backend->PoolForward(pool.args, rows.data(), out.data(), ld);
        for (int i = 0; i < batch; ++i) {
          for (int s = 0; s < num_slots; ++s) {
            const uint32_t begin = pool.offsets[i * num_slots + s];
            const uint32_t end = pool.offsets[i * num_slots + s + 1];
            for (int d = 0; d < dim; ++d) {
              double want = 0;
              for (uint32_t r = begin; r < end; ++r) {
                want += rows[int64_t{pool.index[r]} * dim + d];
              }
              if (mode == PoolMode::kMean && end > begin) want /= end - begin;
              if (mode == PoolMode::kSqrtN && end > begin) {
                want /= std::sqrt(static_cast<double>(end - begin));
              }
              ASSERT_NEAR(out[int64_t{i} * ld + s * dim + d], want, 1e-5)
                  << "batch=" << batch << " dim=" << dim << " example " << i
                  << " slot " << s << " (" << end - begin << " rows)";
            }
          }
          for (int e = 0; e < extra; ++e) {
            ASSERT_EQ(out[int64_t{i} * ld + num_slots * dim + e], kSentinel);
          }
        }
      }
    }
  }
}

TEST(CpuBackendTest, PoolForwardHandValues) {
  auto backend = MakeBackend();
  // Two examples, two slots, dim 2. Example 0: slot 0 = rows {0, 1}, slot 1
  // empty. Example 1: slot 0 = row {1}, slot 1 = rows {1, 1, 0}.
  const std::vector<uint32_t> offsets = {0, 2, 2, 3, 6};
  const std::vector<uint32_t> index = {0, 1, 1, 1, 1, 0};
  const std::vector<float> rows = {1.0f, 2.0f, 10.0f, 20.0f};
  PoolArgs args{2, 2, 2, PoolMode::kSum, offsets.data(), index.data()};
  std::vector<float> out(8, -1.0f);
  backend->PoolForward(args, rows.data(), out.data(), 4);
  EXPECT_THAT(out, ::testing::ElementsAre(11, 22, 0, 0, 10, 20, 21, 42));
  args.mode = PoolMode::kMean;
  backend->PoolForward(args, rows.data(), out.data(), 4);
  EXPECT_THAT(out, ::testing::ElementsAre(5.5, 11, 0, 0, 10, 20, 7, 14));
  // sqrt-n: slot sums times 1/sqrt(2), 1, 1/sqrt(3).
  args.mode = PoolMode::kSqrtN;
  backend->PoolForward(args, rows.data(), out.data(), 4);
  const float r2 = 1.0f / std::sqrt(2.0f), r3 = 1.0f / std::sqrt(3.0f);
  EXPECT_THAT(out, ::testing::ElementsAre(11 * r2, 22 * r2, 0, 0, 10, 20,
                                          21 * r3, 42 * r3));
}

TEST(CpuBackendTest, PoolBackwardMergesDuplicateRows) {
  auto backend = MakeBackend();
  // Same layout as PoolForwardHandValues; d_out rows are
  // example 0: [1, 2 | 3, 4], example 1: [5, 6 | 7, 8].
  const std::vector<uint32_t> offsets = {0, 2, 2, 3, 6};
  const std::vector<uint32_t> index = {0, 1, 1, 1, 1, 0};
  const std::vector<float> d_out = {1, 2, 3, 4, 5, 6, 7, 8};
  PoolArgs args{2, 2, 2, PoolMode::kSum, offsets.data(), index.data()};
  std::vector<float> grad(4, 99.0f);  // must be zeroed first
  backend->PoolBackward(args, d_out.data(), 4, 2, grad.data());
  // Row 0: ex0 slot0 [1,2] + ex1 slot1 [7,8].
  // Row 1: ex0 slot0 [1,2] + ex1 slot0 [5,6] + 2 x ex1 slot1 [7,8].
  EXPECT_THAT(grad, ::testing::ElementsAre(8, 10, 20, 24));
  args.mode = PoolMode::kMean;
  backend->PoolBackward(args, d_out.data(), 4, 2, grad.data());
  // Row 0: [1,2]/2 + [7,8]/3. Row 1: [1,2]/2 + [5,6] + 2 * [7,8]/3.
  EXPECT_NEAR(grad[0], 0.5 + 7.0 / 3, 1e-6);
  EXPECT_NEAR(grad[1], 1.0 + 8.0 / 3, 1e-6);
  EXPECT_NEAR(grad[2], 0.5 + 5 + 14.0 / 3, 1e-6);
  EXPECT_NEAR(grad[3], 1.0 + 6 + 16.0 / 3, 1e-6);
}

TEST(CpuBackendTest, PoolBackwardMatchesReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(23);
  for (PoolMode mode : {PoolMode::kSum, PoolMode::kMean, PoolMode::kSqrtN}) {
    for (int batch : {1, 7, 65, 1000}) {
      const int num_slots = 3, dim = 7, num_rows = 65;
      RandomPool pool =
          MakeRandomPool(batch, num_slots, dim, mode, num_rows, 2, &rng);
      const int ld = num_slots * dim + 1;
      const std::vector<float> d_out = RandomVector(int64_t{batch} * ld, &rng);
      std::vector<double> want(int64_t{num_rows} * dim, 0.0);
      for (int i = 0; i < batch; ++i) {
        for (int s = 0; s < num_slots; ++s) {
          const uint32_t begin = pool.offsets[i * num_slots + s];
          const uint32_t end = pool.offsets[i * num_slots + s + 1];
          for (uint32_t r = begin; r < end; ++r) {
            for (int d = 0; d < dim; ++d) {
              double g = d_out[int64_t{i} * ld + s * dim + d];
              if (mode == PoolMode::kMean) g /= end - begin;
              if (mode == PoolMode::kSqrtN) {
                g /= std::sqrt(static_cast<double>(end - begin));
              }
              want[int64_t{pool.index[r]} * dim + d] += g;
            }
          }
        }
      }
      std::vector<float> grad(int64_t{num_rows} * dim, 5.0f);
      backend->PoolBackward(pool.args, d_out.data(), ld, num_rows, grad.data());
      for (size_t j = 0; j < grad.size(); ++j) {
        ASSERT_NEAR(grad[j], want[j], 1e-4) << "batch=" << batch << " at " << j;
      }
    }
  }
}

TEST(CpuBackendTest, SigmoidCrossEntropyHandValues) {
  auto backend = MakeBackend();
  const std::vector<float> logits = {0.0f, 0.0f, 200.0f, -200.0f, 2.0f};
  const std::vector<float> labels = {1.0f, 0.0f, 0.0f, 1.0f, 1.0f};
  std::vector<float> probs(5), d_logits(5);
  double loss = 0;
  backend->SigmoidCrossEntropy(5, logits.data(), labels.data(), 0.5f,
                               probs.data(), d_logits.data(), &loss);
  const double l2 = std::log1p(std::exp(-2.0));  // label 1, logit 2
  EXPECT_NEAR(loss, 2 * std::log(2.0) + 200 + 200 + l2, 1e-9);
  EXPECT_FLOAT_EQ(probs[0], 0.5f);
  EXPECT_FLOAT_EQ(probs[2], 1.0f);
  EXPECT_FLOAT_EQ(probs[3], 0.0f);
  EXPECT_FLOAT_EQ(probs[4], static_cast<float>(1 / (1 + std::exp(-2.0))));
  EXPECT_FLOAT_EQ(d_logits[0], -0.25f);
  EXPECT_FLOAT_EQ(d_logits[1], 0.25f);
  EXPECT_FLOAT_EQ(d_logits[2], 0.5f);
  EXPECT_FLOAT_EQ(d_logits[3], -0.5f);
}

TEST(CpuBackendTest, SigmoidCrossEntropyStaysFiniteForHugeLogits) {
  auto backend = MakeBackend();
  const std::vector<float> logits = {1e30f, -1e30f, 1e30f, -1e30f};
  const std::vector<float> labels = {1.0f, 0.0f, 0.0f, 1.0f};
  std::vector<float> probs(4), d_logits(4);
  double loss = -1;
  backend->SigmoidCrossEntropy(4, logits.data(), labels.data(), 1.0f,
                               probs.data(), d_logits.data(), &loss);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, 2e30, 1e24);  // the two wrong ones cost |logit| each
  EXPECT_THAT(probs, ::testing::ElementsAre(1.0f, 0.0f, 1.0f, 0.0f));
  EXPECT_THAT(d_logits, ::testing::ElementsAre(0.0f, 0.0f, 1.0f, -1.0f));

  const float right[] = {1e30f};
  const float one[] = {1.0f};
  backend->SigmoidCrossEntropy(1, right, one, 1.0f, probs.data(),
                               d_logits.data(), &loss);
  EXPECT_EQ(loss, 0.0);
}

TEST(CpuBackendTest, SigmoidCrossEntropyMatchesReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(29);
  for (int n : {1, 7, 65, 1000}) {
    const std::vector<float> logits = RandomVector(n, &rng, -30.0f, 30.0f);
    std::vector<float> labels(n);
    for (int i = 0; i < n; ++i) labels[i] = static_cast<float>(rng() % 2);
    std::vector<float> probs(n), d_logits(n);
    double loss = 0;
    const float scale = 1.0f / n;
    backend->SigmoidCrossEntropy(n, logits.data(), labels.data(), scale,
                                 probs.data(), d_logits.data(), &loss);
    double want_loss = 0;
    for (int i = 0; i < n; ++i) {
      const double p = 1.0 / (1.0 + std::exp(-double{logits[i]}));
      ASSERT_NEAR(probs[i], p, 1e-6) << "n=" << n << " at " << i;
      ASSERT_NEAR(d_logits[i], (p - labels[i]) * scale, 1e-6 * scale);
      // -log(p) = log(1 + e^-z), -log(1 - p) = log(1 + e^z); exact enough
      // in double for |z| <= 30.
      const double z = logits[i];
      want_loss +=
          labels[i] ? std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
    }
    EXPECT_NEAR(loss, want_loss, 1e-6 * n) << "n=" << n;
  }
}

}  // namespace
}  // namespace ps
