// Key batches for the benchmarks in tests/bench/: a fixed universe of
// `universe` 64-bit keys (UniverseKey(0 .. universe-1), the keys a benchmark
// prefills) and batches of distinct keys drawn from it, either uniformly or
// by a Zipf law over key ranks (rank 0 the hottest). Batches hold distinct
// keys because workers deduplicate a batch's keys before pulling or pushing.
//
// Everything here is deterministic for a given seed, so runs are comparable.
// Built once, outside any timed loop; not thread-safe.
#ifndef PS_TESTS_BENCH_BENCH_KEYS_H_
#define PS_TESTS_BENCH_BENCH_KEYS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/hash.h"

namespace ps {
namespace bench {

// The key of rank `rank`: spread over the 64-bit space (and so over servers
// and sub-shards) like real feature hashes.
inline uint64_t UniverseKey(uint64_t rank) {
  return Mix64(rank ^ 0x6B65797350414345ULL);
}

// Draws ranks in [0, n) with P(r) proportional to 1 / (r + 1)^exponent,
// by binary search in a precomputed CDF (n doubles).
class ZipfSampler {
 public:
  ZipfSampler(int64_t n, double exponent) : cdf_(n) {
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) {
      sum += std::pow(static_cast<double>(r + 1), -exponent);
      cdf_[r] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }

  int64_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    if (it == cdf_.end()) --it;
    return it - cdf_.begin();
  }

 private:
  std::vector<double> cdf_;
};

enum class KeyDist { kUniform, kZipf };

inline const char* KeyDistName(KeyDist dist) {
  return dist == KeyDist::kZipf ? "zipf1.1" : "uniform";
}

// Zipf exponent of KeyDist::kZipf.
constexpr double kZipfExponent = 1.1;

using KeyBatches = std::vector<std::vector<uint64_t>>;

// `num_batches` batches of `batch_size` distinct keys of the universe.
// REQUIRES: batch_size <= universe / 4 (so distinct keys are found quickly).
inline KeyBatches MakeKeyBatches(int64_t universe, KeyDist dist, int batch_size,
                                 int num_batches, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::unique_ptr<ZipfSampler> zipf;
  if (dist == KeyDist::kZipf) {
    zipf = std::make_unique<ZipfSampler>(universe, kZipfExponent);
  }
  std::uniform_int_distribution<int64_t> uniform(0, universe - 1);
  KeyBatches batches(num_batches);
  absl::flat_hash_set<int64_t> seen;
  for (auto& batch : batches) {
    seen.clear();
    batch.reserve(batch_size);
    while (static_cast<int>(batch.size()) < batch_size) {
      const int64_t rank = zipf != nullptr ? (*zipf)(rng) : uniform(rng);
      if (seen.insert(rank).second) batch.push_back(UniverseKey(rank));
    }
  }
  return batches;
}

// The hit rate of the best static memory tier of `rows` rows over
// `batches`: the share of their keys among the `rows` most frequent ones
// (ranks 0 .. rows-1), chosen with hindsight. The yardstick of an eviction
// policy.
inline double StaticBestHitRate(const KeyBatches& batches, int64_t rows) {
  absl::flat_hash_set<uint64_t> hot;
  for (int64_t r = 0; r < rows; ++r) {
    hot.insert(UniverseKey(static_cast<uint64_t>(r)));
  }
  int64_t in_hot = 0, total = 0;
  for (const auto& batch : batches) {
    for (uint64_t key : batch) in_hot += hot.contains(key);
    total += static_cast<int64_t>(batch.size());
  }
  return total == 0 ? 0.0
                    : static_cast<double>(in_hot) / static_cast<double>(total);
}

}  // namespace bench
}  // namespace ps

#endif  // PS_TESTS_BENCH_BENCH_KEYS_H_
