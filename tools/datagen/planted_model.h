// The hidden model behind the synthetic Criteo data (tools/datagen/datagen.h),
// and the row drawing from it: PlantedModel holds the value vocabularies, their
// Zipf samplers and all planted weights; RowDrawer draws labelled rows from
// it as Criteo TSV lines, with their true click probabilities.
//
// The planted logit is bias + one term per integer slot + one term per
// categorical slot + one term per interaction. Every term is standardized
// over the rows' value distribution (mean 0, a fixed std-dev proportional to
// weight_stddev), so the click rate and the oracle AUC depend on the config,
// not on which values a seed happens to make popular. With the
// GeneratorConfig defaults: oracle AUC about 0.80, click rate about 0.27.
// The k-named constants are those of planted_model.cc.
//   - Categorical slot c: the value index is drawn by Zipf(zipf_exponent)
//     popularity rank over vocab_size values, or is missing (a fixed rate per
//     slot, as in the real data); its hex id is a bijective hash of seed,
//     slot and index. The term has std-dev scale_c * weight_stddev, scale_c
//     spread evenly over [kCatScaleMin, kCatScaleMax] in a seeded slot order.
//     Before scaling, the weight of the value of rank k is
//     N(0, 1 / (1 + k / kRareRank)) (missing: N(0, 1)), so popular values
//     carry most of the signal and rare ones stay near the slot average.
//   - Integer slot i: v = floor(exp(N(mu_i, sd_i^2))) - 1 or missing; the
//     term is slope_i * sqrt(log bucket of v) plus per-bucket noise, missing
//     having its own weight, with std-dev scale_i * weight_stddev, scale_i
//     spread over [kIntScaleMin, kIntScaleMax].
//   - Interaction (a, b), num_interactions distinct slot pairs: the dot
//     product of small latent vectors of a's and b's values, std-dev
//     kPairScale * weight_stddev.
//
// Huge vocabularies (vocab_size above kMaxTableVocab, up to 2^30): nothing
// is stored per value. Value indices are drawn by rejection-inversion from
// the Zipf law itself (ZipfSampler), and a value's weight and latent vectors
// are normal draws seeded by a hash of (seed, slot, index); each slot's term
// is standardized by moments estimated on kMomentSamples draws. Such data
// keeps bringing new keys as rows go on, as real logs do: with vocab_size
// 2^28, 2 M rows hold 10.5 M distinct keys at exponent 1.1, and 20 M rows
// 45.8 M at exponent 1.15 (configs/huge_dnn.pbtxt).
//
// Determinism: a model depends only on its GeneratorConfig and the rows of a
// RowDrawer only on the model and its stream seed. Randomness comes from
// std::mt19937_64 through our own samplers, never std:: distributions (whose
// output is implementation-defined), so only <cmath> rounding could differ
// between math libraries.
//
// Thread-safety: a built PlantedModel is immutable; any number of threads
// may use it at once. A RowDrawer is not thread-safe: one per stream.
#ifndef PS_TOOLS_DATAGEN_PLANTED_MODEL_H_
#define PS_TOOLS_DATAGEN_PLANTED_MODEL_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "proto/config.pb.h"

namespace ps {

// Standard normal draws by Box-Muller, two per pair of uniforms.
// Not thread-safe.
class NormalSampler {
 public:
  double Next(std::mt19937_64& rng);

 private:
  bool has_spare_ = false;
  double spare_ = 0;
};

// Draws ranks 1..n with P(k) proportional to k^-exponent in O(1) time and
// memory, by rejection-inversion (Hormann and Derflinger, "Rejection-
// inversion to generate variates from monotone discrete distributions",
// 1996). REQUIRES: n >= 1, exponent > 0. Immutable after construction.
class ZipfSampler {
 public:
  ZipfSampler(int64_t n, double exponent);
  // One rank in [1, n]; `uniform` gives doubles in [0, 1).
  template <typename Uniform>
  int64_t Sample(Uniform&& uniform) const {
    while (true) {
      const double u =
          h_integral_n_ + uniform() * (h_integral_x1_ - h_integral_n_);
      const double x = HIntegralInverse(u);
      int64_t k = static_cast<int64_t>(x + 0.5);
      if (k < 1) k = 1;
      if (k > n_) k = n_;
      if (k - x <= s_ || u >= HIntegral(k + 0.5) - H(static_cast<double>(k))) {
        return k;
      }
    }
  }

 private:
  double HIntegral(double x) const;
  double H(double x) const;
  double HIntegralInverse(double x) const;

  int64_t n_;
  double exponent_;
  double h_integral_x1_;
  double h_integral_n_;
  double s_;
};

// Walker's alias method: O(1) draws from a fixed discrete distribution (the
// Zipf-plus-missing distribution of each categorical slot here).
// Immutable after construction.
class AliasTable {
 public:
  // `weights`: non-negative, not all zero, fewer than 2^32.
  explicit AliasTable(const std::vector<double>& weights);

  // One draw (an index into the weights) from 64 random bits: the high half
  // picks a column, the low half decides between it and its alias.
  uint32_t Sample(uint64_t bits) const;

 private:
  std::vector<double> prob_;
  std::vector<uint32_t> alias_;
};

// The planted model of one GeneratorConfig (see the top of this file).
// Immutable once built; movable, not copyable.
class PlantedModel {
 public:
  // Up to this vocab_size the planted weights are tables (exact moments);
  // beyond they are computed from hashes (see the top of this file).
  static constexpr int kMaxTableVocab = 1 << 24;
  static constexpr int kMaxVocab = 1 << 30;

  // Builds the model of `options` (all fields but output_dir, train_rows and
  // eval_rows matter). REQUIRES: 1 <= options.vocab_size() <= kMaxVocab.
  static PlantedModel Build(const GeneratorConfig& options);

  PlantedModel(PlantedModel&&) = default;
  PlantedModel& operator=(PlantedModel&&) = default;

 private:
  friend class RowDrawer;

  struct Pair {
    int a = 0, b = 0;  // categorical slots
    // (vocab + 1) * kLatentDim each, for the values of slots a and b.
    std::vector<double> latent_a, latent_b;
    // Hashed: the latent vectors' means and their common scale.
    std::vector<double> mean_a, mean_b;
    double factor = 0;
  };

  // Hashed models: value `k` of categorical slot c (k == vocab_: missing).
  double HashedWeight(int c, int64_t k) const;
  // Writes the kLatentDim latent values of value k of side (0: a, 1: b) of
  // pair `p`, centered and scaled.
  void HashedLatent(int p, int side, int64_t k, double* out) const;
  // A categorical value index: Zipf rank - 1, or vocab_ for missing.
  int64_t DrawCat(int c, std::mt19937_64& rng) const;

  PlantedModel() = default;
  static PlantedModel BuildHashed(const GeneratorConfig& g,
                                  std::mt19937_64& rng, NormalSampler& normal);
  // The integer slots' effects (the same for both kinds of model).
  void BuildInts(const GeneratorConfig& g, std::mt19937_64& rng,
                 NormalSampler& normal);

  // Value index `vocab_` of a categorical slot is "missing".
  int vocab_ = 0;
  bool hashed_ = false;
  uint64_t seed_ = 0;
  double bias_ = 0;
  // Hashed models: the Zipf law of the values, and per slot the raw
  // weights' offset and scale.
  std::unique_ptr<ZipfSampler> zipf_;
  std::vector<double> cat_offset_, cat_factor_;
  std::vector<uint32_t> cat_salt_;
  std::vector<AliasTable> cat_sampler_;          // per slot, over vocab + 1
  std::vector<std::vector<uint32_t>> cat_hex_;   // per slot, vocab ids
  std::vector<std::vector<double>> cat_weight_;  // per slot, vocab + 1
  std::vector<Pair> pairs_;
  std::vector<std::vector<double>> int_effect_;  // per slot, per log bucket
  std::vector<double> int_missing_weight_;       // per slot
};

// Draws the rows of one stream of a model. The model must outlive it.
// Not thread-safe.
class RowDrawer {
 public:
  RowDrawer(const PlantedModel* model, uint64_t stream_seed);

  // Draws one row and appends its Criteo line to `out`: label, I1..I13,
  // C1..C26 (8 hex digits), TAB separated, empty fields for missing values,
  // ending in '\n'. Returns its click probability and label.
  std::pair<double, bool> Next(std::string* out);

  // The 39 features of the last row, each a distinct 64-bit id of its
  // (slot, value): slots 0..12 the integers' log buckets (or missing), 13..38
  // the categorical value indices (or missing).
  const uint64_t* last_features() const { return features_; }
  static constexpr int kNumFeatures = 39;

 private:
  const PlantedModel& model_;
  uint64_t features_[kNumFeatures] = {};
  std::mt19937_64 rng_;
  NormalSampler normal_;
};

}  // namespace ps

#endif  // PS_TOOLS_DATAGEN_PLANTED_MODEL_H_
