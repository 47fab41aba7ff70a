// AucAccumulator against hand values and exact pairwise AUC.
#include "kernels/auc.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// Exact AUC over all (positive, negative) pairs; ties count half.
double PairwiseAuc(const std::vector<float>& probs,
                   const std::vector<float>& labels) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (labels[i] != 1.0f) continue;
    for (size_t j = 0; j < probs.size(); ++j) {
      if (labels[j] != 0.0f) continue;
      pairs += 1;
      if (probs[i] > probs[j]) wins += 1;
      if (probs[i] == probs[j]) wins += 0.5;
    }
  }
  return wins / pairs;
}

TEST(AucTest, EmptyAccumulator) {
  AucAccumulator acc;
  EXPECT_EQ(acc.count(), 0);
  EXPECT_EQ(acc.Auc(), 0.5);
  EXPECT_EQ(acc.LogLoss(), 0.0);
  EXPECT_EQ(acc.Calibration(), 0.0);
  EXPECT_EQ(acc.PositiveRate(), 0.0);
}

TEST(AucTest, OnlyOneClassGivesHalf) {
  AucAccumulator acc;
  acc.Add(0.9f, 1.0f);
  acc.Add(0.1f, 1.0f);
  EXPECT_EQ(acc.Auc(), 0.5);
  EXPECT_EQ(acc.PositiveRate(), 1.0);
}

TEST(AucTest, PerfectRankingIsOne) {
  AucAccumulator acc;
  for (int i = 0; i < 100; ++i) {
    acc.Add(0.51f + 0.004f * i, 1.0f);
    acc.Add(0.49f - 0.004f * i, 0.0f);
  }
  EXPECT_DOUBLE_EQ(acc.Auc(), 1.0);
}

TEST(AucTest, InvertedRankingIsZero) {
  AucAccumulator acc;
  for (int i = 0; i < 100; ++i) {
    acc.Add(0.49f - 0.004f * i, 1.0f);
    acc.Add(0.51f + 0.004f * i, 0.0f);
  }
  EXPECT_DOUBLE_EQ(acc.Auc(), 0.0);
}

TEST(AucTest, AllEqualPredictionsGiveHalf) {
  AucAccumulator acc;
  for (int i = 0; i < 30; ++i) acc.Add(0.3f, i % 3 == 0 ? 1.0f : 0.0f);
  EXPECT_DOUBLE_EQ(acc.Auc(), 0.5);
}

TEST(AucTest, HandComputedExample) {
  // Positives 0.9, 0.4; negatives 0.8, 0.3, 0.1. Pairs won: 0.9 beats all 3,
  // 0.4 beats 0.3 and 0.1: 5 of 6.
  AucAccumulator acc;
  acc.Add(0.9f, 1.0f);
  acc.Add(0.4f, 1.0f);
  acc.Add(0.8f, 0.0f);
  acc.Add(0.3f, 0.0f);
  acc.Add(0.1f, 0.0f);
  EXPECT_NEAR(acc.Auc(), 5.0 / 6.0, 1e-4);
  EXPECT_EQ(acc.count(), 5);
  EXPECT_DOUBLE_EQ(acc.PositiveRate(), 0.4);
  // Mean prediction 2.5 / 5 = 0.5 over positive rate 0.4.
  EXPECT_NEAR(acc.Calibration(), 1.25, 1e-6);
}

TEST(AucTest, MatchesPairwiseAucOnRandomData) {
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> probs, labels;
  AucAccumulator acc;
  for (int i = 0; i < 2000; ++i) {
    const float label = uniform(rng) < 0.3f ? 1.0f : 0.0f;
    // Informative but noisy scores, with some exact ties.
    float p = 0.35f * label + 0.65f * uniform(rng);
    if (i % 10 == 0) p = 0.5f;
    probs.push_back(p);
    labels.push_back(label);
    acc.Add(p, label);
  }
  const double exact = PairwiseAuc(probs, labels);
  EXPECT_GT(exact, 0.6);
  EXPECT_NEAR(acc.Auc(), exact, 1e-4);
}

TEST(AucTest, OutOfRangePredictionsAreClamped) {
  AucAccumulator acc;
  acc.Add(1.5f, 1.0f);   // counts as 1
  acc.Add(-0.5f, 0.0f);  // counts as 0
  acc.Add(1.0f, 0.0f);   // ties with the clamped positive
  EXPECT_DOUBLE_EQ(acc.Auc(), 0.75);
}

TEST(AucTest, MergeEqualsSingleAccumulation) {
  std::mt19937 rng(37);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  AucAccumulator all, first, second;
  for (int i = 0; i < 1000; ++i) {
    const float p = uniform(rng);
    const float label = uniform(rng) < p ? 1.0f : 0.0f;
    all.Add(p, label);
    (i % 3 == 0 ? first : second).Add(p, label);
  }
  first.Merge(second);
  EXPECT_EQ(first.count(), all.count());
  EXPECT_DOUBLE_EQ(first.Auc(), all.Auc());
  EXPECT_NEAR(first.LogLoss(), all.LogLoss(), 1e-12);
  EXPECT_NEAR(first.Calibration(), all.Calibration(), 1e-12);
  EXPECT_DOUBLE_EQ(first.PositiveRate(), all.PositiveRate());
}

TEST(AucTest, ResetEmpties) {
  AucAccumulator acc;
  acc.Add(0.9f, 1.0f);
  acc.Add(0.1f, 0.0f);
  acc.Reset();
  EXPECT_EQ(acc.count(), 0);
  acc.Add(0.1f, 1.0f);
  acc.Add(0.9f, 0.0f);
  EXPECT_DOUBLE_EQ(acc.Auc(), 0.0);
}

TEST(AucTest, LogLossHandValue) {
  AucAccumulator acc;
  acc.Add(0.8f, 1.0f);  // -ln 0.8
  acc.Add(0.4f, 0.0f);  // -ln 0.6
  EXPECT_NEAR(acc.LogLoss(), -(std::log(0.8) + std::log(0.6)) / 2, 1e-6);
}

TEST(AucTest, LogLossClipsCertainMistakes) {
  AucAccumulator acc;
  acc.Add(0.0f, 1.0f);  // clipped to 1e-7
  EXPECT_NEAR(acc.LogLoss(), -std::log(1e-7), 1e-6);
  EXPECT_TRUE(std::isfinite(acc.LogLoss()));
}

}  // namespace
}  // namespace ps
