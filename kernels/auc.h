// Streaming AUC and logloss over predicted probabilities.
//
// AUC is computed from a histogram of predictions (kBuckets equal-width
// buckets over [0, 1]), so memory is constant and two accumulators (e.g. of
// two workers) merge exactly; ties inside a bucket count half, so the error
// against exact AUC is bounded by the mass sharing buckets (negligible at
// 2^16 buckets). Not thread-safe.
#ifndef PS_KERNELS_AUC_H_
#define PS_KERNELS_AUC_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace ps {

class AucAccumulator {
 public:
  static constexpr int kBuckets = 1 << 16;

  AucAccumulator();

  // Adds one prediction (clamped to [0, 1]) with its 0/1 label.
  void Add(float prob, float label);
  // Adds the statistics of predictions accumulated elsewhere (e.g. on a GPU
  // by Backend::AccumulateMetrics): counts holds kBuckets positive counts,
  // then kBuckets negative counts; loss_sum the summed ClippedLogLoss,
  // prob_sum the summed clamped probabilities. InvalidArgument when counts
  // has another size.
  [[nodiscard]] absl::Status AddHistogram(absl::Span<const uint64_t> counts,
                                          double loss_sum, double prob_sum);
  void Merge(const AucAccumulator& other);
  void Reset();

  int64_t count() const { return positives_ + negatives_; }
  // 0.5 when there are no positives or no negatives.
  double Auc() const;
  // Mean cross-entropy of the predictions (probabilities clipped to
  // [1e-7, 1 - 1e-7]); 0 when empty.
  double LogLoss() const;
  // Mean prediction / observed positive rate; 0 when no positives.
  double Calibration() const;
  double PositiveRate() const;

 private:
  std::vector<int64_t> pos_;
  std::vector<int64_t> neg_;
  int64_t positives_ = 0;
  int64_t negatives_ = 0;
  double loss_sum_ = 0;
  double prob_sum_ = 0;
};

}  // namespace ps

#endif  // PS_KERNELS_AUC_H_
