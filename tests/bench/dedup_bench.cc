// Deduplicate (worker/data/batch.h) on Criteo-shaped batches: 39 slots of
// one key, Zipf(1.1)-distributed over 10^5 values per slot, as the
// pipelined loop runs it once per batch. Counter keys/s.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/hash.h"
#include "worker/data/batch.h"

namespace ps {
namespace {

Batch ZipfBatch(int examples, uint32_t seed) {
  constexpr int kSlots = 39;
  constexpr int kVocab = 100000;
  // Inverse-CDF sampling from a precomputed Zipf(1.1) table.
  static const std::vector<double> cdf = [] {
    std::vector<double> c(kVocab);
    double sum = 0;
    for (int i = 0; i < kVocab; ++i) c[i] = sum += std::pow(i + 1.0, -1.1);
    for (double& x : c) x /= sum;
    return c;
  }();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Batch b;
  b.num_slots = kSlots;
  for (int e = 0; e < examples; ++e) {
    b.labels.push_back(static_cast<float>(rng() % 4 == 0));
    for (int s = 0; s < kSlots; ++s) {
      const auto rank =
          std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
      b.keys.push_back(FeatureKey(1, s, static_cast<uint64_t>(rank)));
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  return b;
}

void BM_Deduplicate(benchmark::State& state) {
  std::vector<Batch> batches;
  for (uint32_t i = 0; i < 8; ++i) {
    batches.push_back(ZipfBatch(static_cast<int>(state.range(0)), i + 1));
  }
  size_t i = 0;
  int64_t keys = 0;
  for (auto _ : state) {
    const Batch& b = batches[i++ % batches.size()];
    UniqueKeys u = Deduplicate(b);
    benchmark::DoNotOptimize(u.unique_keys.data());
    keys += static_cast<int64_t>(b.keys.size());
  }
  state.counters["keys/s"] = benchmark::Counter(static_cast<double>(keys),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Deduplicate)->Arg(512)->Arg(4096);

}  // namespace
}  // namespace ps

BENCHMARK_MAIN();
