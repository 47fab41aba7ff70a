#include "kernels/auc.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/math.h"

namespace ps {

AucAccumulator::AucAccumulator() : pos_(kBuckets, 0), neg_(kBuckets, 0) {}

// NaN lands in bucket 0 rather than indexing out of range (AucBucket).
void AucAccumulator::Add(float prob, float label) {
  const int bucket = AucBucket(prob, kBuckets);
  if (label >= 0.5f) {
    ++pos_[bucket];
    ++positives_;
  } else {
    ++neg_[bucket];
    ++negatives_;
  }
  loss_sum_ += ClippedLogLoss(prob, label);
  prob_sum_ += ClampProb(prob);
}

absl::Status AucAccumulator::AddHistogram(absl::Span<const uint64_t> counts,
                                          double loss_sum, double prob_sum) {
  if (counts.size() != 2 * static_cast<size_t>(kBuckets)) {
    return absl::InvalidArgumentError(
        absl::StrCat("AUC histogram has ", counts.size(), " counts, expected ",
                     2 * kBuckets, " (", kBuckets,
                     " buckets of positives, then of "
                     "negatives)"));
  }
  for (int b = 0; b < kBuckets; ++b) {
    pos_[b] += static_cast<int64_t>(counts[b]);
    neg_[b] += static_cast<int64_t>(counts[kBuckets + b]);
    positives_ += static_cast<int64_t>(counts[b]);
    negatives_ += static_cast<int64_t>(counts[kBuckets + b]);
  }
  loss_sum_ += loss_sum;
  prob_sum_ += prob_sum;
  return absl::OkStatus();
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
