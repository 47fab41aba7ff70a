#include "kernels/auc.h"

#include <algorithm>
#include <cmath>

namespace ps {

namespace {

constexpr double kMinProb = 1e-7;

// NaN compares false everywhere; it lands in bucket 0 rather than indexing
// out of range.
float ClampProb(float prob) {
  if (!(prob > 0.0f)) return 0.0f;
  return std::min(prob, 1.0f);
}

}  // namespace

AucAccumulator::AucAccumulator() : pos_(kBuckets, 0), neg_(kBuckets, 0) {}

void AucAccumulator::Add(float prob, float label) {
  prob = ClampProb(prob);
  const int bucket = std::min(static_cast<int>(prob * kBuckets), kBuckets - 1);
  const bool positive = label >= 0.5f;
  if (positive) {
    ++pos_[bucket];
    ++positives_;
  } else {
    ++neg_[bucket];
    ++negatives_;
  }
  const double p =
      std::clamp(static_cast<double>(prob), kMinProb, 1.0 - kMinProb);
  const double y = positive ? 1.0 : 0.0;
  loss_sum_ -= y * std::log(p) + (1.0 - y) * std::log(1.0 - p);
  prob_sum_ += prob;
}

void AucAccumulator::Merge(const AucAccumulator& other) {
  for (int b = 0; b < kBuckets; ++b) {
    pos_[b] += other.pos_[b];
    neg_[b] += other.neg_[b];
  }
  positives_ += other.positives_;
  negatives_ += other.negatives_;
  loss_sum_ += other.loss_sum_;
  prob_sum_ += other.prob_sum_;
}

void AucAccumulator::Reset() {
  std::fill(pos_.begin(), pos_.end(), 0);
  std::fill(neg_.begin(), neg_.end(), 0);
  positives_ = 0;
  negatives_ = 0;
  loss_sum_ = 0;
  prob_sum_ = 0;
}

double AucAccumulator::Auc() const {
  if (positives_ == 0 || negatives_ == 0) return 0.5;
  // Each positive beats every negative in a lower bucket and ties (half) with
  // the negatives of its own bucket.
  double area = 0;
  double neg_below = 0;
  for (int b = 0; b < kBuckets; ++b) {
    area += static_cast<double>(pos_[b]) *
            (neg_below + 0.5 * static_cast<double>(neg_[b]));
    neg_below += static_cast<double>(neg_[b]);
  }
  return area /
         (static_cast<double>(positives_) * static_cast<double>(negatives_));
}

double AucAccumulator::LogLoss() const {
  const int64_t n = count();
  return n == 0 ? 0.0 : loss_sum_ / static_cast<double>(n);
}

double AucAccumulator::Calibration() const {
  if (positives_ == 0) return 0.0;
  return prob_sum_ / static_cast<double>(positives_);
}

double AucAccumulator::PositiveRate() const {
  const int64_t n = count();
  return n == 0 ? 0.0
                : static_cast<double>(positives_) / static_cast<double>(n);
}

}  // namespace ps
