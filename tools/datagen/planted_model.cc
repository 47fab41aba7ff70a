#include "tools/datagen/planted_model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "worker/data/criteo_parser.h"

namespace ps {
namespace {

constexpr int kNumInts = 13;
constexpr int kNumCats = 26;
constexpr int kLatentDim = 4;
// Integer buckets run from -2 (the smallest generated value) to 1905.
constexpr int64_t kMinBucket = -2;
constexpr int kNumBuckets = 1908;

// The scales of the planted terms (sigma = weight_stddev; see the header).
// Categorical slot c: std-dev scale_c * sigma, scale_c in
// [kCatScaleMin, kCatScaleMax]; value weights shrunk by rank / kRareRank.
constexpr double kCatScaleMin = 0.15;
constexpr double kCatScaleMax = 1.0;
constexpr double kRareRank = 20;
// Integer slot i: std-dev scale_i * sigma, scale_i in
// [kIntScaleMin, kIntScaleMax].
constexpr double kIntScaleMin = 0.2;
constexpr double kIntScaleMax = 0.8;
constexpr double kIntBucketNoise = 0.2;  // relative to the slope term
constexpr int kIntSamples = 1 << 15;     // rows to standardize integers on
// Interaction: std-dev kPairScale * sigma.
constexpr double kPairScale = 0.4;

// Missing rates of C1..C26 and I1..I13, close to those of the real data.
constexpr double kCatMissing[kNumCats] = {
    0, 0, 0.03, 0.03, 0, 0,    0,    0,    0,    0, 0,    0.03, 0,
    0, 0, 0.03, 0,    0, 0.44, 0.44, 0.03, 0.76, 0, 0.03, 0.44, 0.44};
struct IntSpec {
  double missing;
  double mu;  // v = floor(exp(N(mu, sd^2))) - 1
  double sd;
};
constexpr IntSpec kInts[kNumInts] = {
    {0.45, 0.7, 1.2}, {0.0, 2.5, 2.0},  {0.21, 2.0, 1.3}, {0.22, 1.8, 1.0},
    {0.03, 8.0, 2.0}, {0.22, 4.0, 1.8}, {0.04, 1.5, 1.5}, {0.0005, 2.3, 1.0},
    {0.04, 3.5, 1.4}, {0.45, 0.0, 0.7}, {0.04, 0.8, 1.0}, {0.77, 0.0, 1.2},
    {0.22, 1.8, 1.0}};
// I2 (index 1) is -1 or -2 this often, as in the real data.
constexpr double kNegativeRate = 0.04;

// Uniform in [0, 1) from the top 53 bits.
double Uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// murmur3's 32-bit finalizer: a bijection, so the hex ids of a slot's values
// are distinct.
uint32_t Fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

// Draws integer feature i; false when it is missing.
bool DrawInt(int i, std::mt19937_64& rng, NormalSampler& normal, int64_t* v) {
  const IntSpec& spec = kInts[i];
  if (Uniform(rng) < spec.missing) return false;
  if (i == 1 && Uniform(rng) < kNegativeRate) {
    *v = -1 - static_cast<int64_t>(rng() & 1);
    return true;
  }
  const double x =
      std::clamp(spec.mu + spec.sd * normal.Next(rng), -10.0, 20.0);
  *v = std::max<int64_t>(static_cast<int64_t>(std::floor(std::exp(x))) - 1, 0);
  return true;
}

// Shifts and scales `w` so that under probabilities `p` it has mean 0 and
// std-dev `target` (all zeros when it does not vary).
void Standardize(const std::vector<double>& p, double target,
                 std::vector<double>* w) {
  double mean = 0, second = 0;
  for (size_t k = 0; k < w->size(); ++k) mean += p[k] * (*w)[k];
  for (size_t k = 0; k < w->size(); ++k) {
    second += p[k] * ((*w)[k] - mean) * ((*w)[k] - mean);
  }
  const double factor = second > 0 ? target / std::sqrt(second) : 0.0;
  for (double& x : *w) x = (x - mean) * factor;
}

// kNumCats (or kNumInts) importance scales evenly spread over [lo, hi], in a
// seeded order.
std::vector<double> SpreadScales(int n, double lo, double hi,
                                 std::mt19937_64& rng) {
  std::vector<double> scales(n);
  for (int i = 0; i < n; ++i) scales[i] = lo + (hi - lo) * (i + 0.5) / n;
  // Fisher-Yates written out: std::shuffle's algorithm is unspecified.
  for (int i = n - 1; i > 0; --i) std::swap(scales[i], scales[rng() % (i + 1)]);
  return scales;
}

double RareShrink(int64_t k, int64_t vocab) {
  return k < vocab ? 1.0 / std::sqrt(1.0 + static_cast<double>(k) / kRareRank)
                   : 1.0;
}

// Hashed models: draws per moment estimate, and the hash streams.
constexpr int kMomentSamples = 1 << 17;
constexpr uint64_t kWeightStream = 0x77656967ULL;
constexpr uint64_t kLatentStream = 0x6C6174ULL;

// A standard normal determined by `h` (Box-Muller on two hashes of it).
double HashNormal(uint64_t h) {
  const double u1 = 1.0 - static_cast<double>(Mix64(h) >> 11) * 0x1.0p-53;
  const double u2 = static_cast<double>(Mix64(h ^ 0xB0C5ULL) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// The hash of value k of stream (seed, what, slot).
uint64_t ValueHash(uint64_t seed, uint64_t what, uint64_t slot, uint64_t k) {
  return Mix64(Mix64(seed ^ what ^ (slot << 32)) ^ k);
}

// ZipfSampler's helpers: log1p(x) / x and expm1(x) / x, near 0 by series.
double Helper1(double x) {
  return std::abs(x) > 1e-8 ? std::log1p(x) / x
                            : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}
double Helper2(double x) {
  return std::abs(x) > 1e-8
             ? std::expm1(x) / x
             : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

// Latent vectors of the values of one slot (probabilities `p`, the last
// being "missing"), shrunk by rank and centered; adds sum_k p_k u_k u_k^T to
// `cov`.
std::vector<double> DrawLatents(const std::vector<double>& p,
                                std::mt19937_64& rng, NormalSampler& normal,
                                double cov[kLatentDim][kLatentDim]) {
  const int n = static_cast<int>(p.size());
  std::vector<double> lat(static_cast<size_t>(n) * kLatentDim);
  double mean[kLatentDim] = {};
  for (int k = 0; k < n; ++k) {
    for (int d = 0; d < kLatentDim; ++d) {
      lat[k * kLatentDim + d] = RareShrink(k, n - 1) * normal.Next(rng);
      mean[d] += p[k] * lat[k * kLatentDim + d];
    }
  }
  for (int k = 0; k < n; ++k) {
    double* u = &lat[k * kLatentDim];
    for (int d = 0; d < kLatentDim; ++d) u[d] -= mean[d];
    for (int d = 0; d < kLatentDim; ++d) {
      for (int e = 0; e < kLatentDim; ++e) cov[d][e] += p[k] * u[d] * u[e];
    }
  }
  return lat;
}

// The first `n` of all categorical slot pairs in a seeded order (a
// written-out Fisher-Yates: std::shuffle's algorithm is unspecified).
std::vector<std::pair<int, int>> PickPairs(int n, std::mt19937_64& rng) {
  std::vector<std::pair<int, int>> all;
  for (int a = 0; a < kNumCats; ++a) {
    for (int b = a + 1; b < kNumCats; ++b) all.emplace_back(a, b);
  }
  for (size_t i = all.size() - 1; i > 0; --i) {
    std::swap(all[i], all[rng() % (i + 1)]);
  }
  all.resize(std::min<size_t>(static_cast<size_t>(std::max(n, 0)), all.size()));
  return all;
}

void AppendHex8(uint32_t v, std::string* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[8];
  for (int i = 7; i >= 0; --i, v >>= 4) buf[i] = kDigits[v & 15];
  out->append(buf, 8);
}

}  // namespace

ZipfSampler::ZipfSampler(int64_t n, double exponent)
    : n_(n), exponent_(exponent) {
  h_integral_x1_ = HIntegral(1.5) - 1.0;
  h_integral_n_ = HIntegral(static_cast<double>(n) + 0.5);
  s_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
}

double ZipfSampler::HIntegral(double x) const {
  const double log_x = std::log(x);
  return Helper2((1.0 - exponent_) * log_x) * log_x;
}

double ZipfSampler::H(double x) const {
  return std::exp(-exponent_ * std::log(x));
}

double ZipfSampler::HIntegralInverse(double x) const {
  double t = x * (1.0 - exponent_);
  if (t < -1.0) t = -1.0;
  return std::exp(Helper1(t) * x);
}

double NormalSampler::Next(std::mt19937_64& rng) {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  const double u1 = 1.0 - Uniform(rng);  // (0, 1]
  const double u2 = Uniform(rng);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * M_PI * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

AliasTable::AliasTable(const std::vector<double>& weights)
    : prob_(weights.size()), alias_(weights.size()) {
  const size_t n = weights.size();
  double total = 0;
  for (double w : weights) total += w;
  std::vector<double> scaled(n);
  std::vector<uint32_t> small, large;
  for (size_t i = 0; i < n; ++i) {
    scaled[i] = weights[i] * static_cast<double>(n) / total;
    (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
  }
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back(), l = large.back();
    small.pop_back();
    prob_[s] = scaled[s];
    alias_[s] = l;
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are 1 up to rounding.
  for (uint32_t i : large) prob_[i] = 1.0, alias_[i] = i;
  for (uint32_t i : small) prob_[i] = 1.0, alias_[i] = i;
}

uint32_t AliasTable::Sample(uint64_t bits) const {
  const uint64_t column = ((bits >> 32) * prob_.size()) >> 32;
  const double u = static_cast<double>(bits & 0xFFFFFFFFu) * 0x1.0p-32;
  return u < prob_[column] ? static_cast<uint32_t>(column) : alias_[column];
}

PlantedModel PlantedModel::Build(const GeneratorConfig& g) {
  std::mt19937_64 rng(Mix64(g.seed() ^ 0x6D6F64656CULL));
  NormalSampler normal;
  if (g.vocab_size() > kMaxTableVocab) return BuildHashed(g, rng, normal);
  const double sigma = g.weight_stddev();
  PlantedModel m;
  m.vocab_ = g.vocab_size();
  m.bias_ = g.bias();
  const int v = m.vocab_;

  std::vector<double> zipf(v);
  double zipf_total = 0;
  for (int k = 0; k < v; ++k) {
    zipf[k] = std::pow(k + 1.0, -g.zipf_exponent());
    zipf_total += zipf[k];
  }
  const std::vector<double> cat_scale =
      SpreadScales(kNumCats, kCatScaleMin, kCatScaleMax, rng);
  std::vector<std::vector<double>> cat_prob(kNumCats);
  for (int c = 0; c < kNumCats; ++c) {
    std::vector<double>& p = cat_prob[c];
    p.resize(v + 1);
    for (int k = 0; k < v; ++k) {
      p[k] = (1.0 - kCatMissing[c]) * zipf[k] / zipf_total;
    }
    p[v] = kCatMissing[c];
    m.cat_sampler_.emplace_back(p);

    std::vector<uint32_t> hex(v);
    const uint32_t salt = static_cast<uint32_t>(Mix64(g.seed() * 131 + c));
    for (int k = 0; k < v; ++k)
      hex[k] = Fmix32(salt ^ static_cast<uint32_t>(k));
    m.cat_hex_.push_back(std::move(hex));

    std::vector<double> w(v + 1);
    for (int k = 0; k <= v; ++k) w[k] = RareShrink(k, v) * normal.Next(rng);
    Standardize(p, cat_scale[c] * sigma, &w);
    m.cat_weight_.push_back(std::move(w));
  }

  const std::vector<std::pair<int, int>> all =
      PickPairs(g.num_interactions(), rng);
  for (size_t i = 0; i < all.size(); ++i) {
    Pair pair;
    pair.a = all[i].first;
    pair.b = all[i].second;
    // The dot product has variance trace(C_a C_b), C = sum_k p_k u_k u_k^T.
    double cov_a[kLatentDim][kLatentDim] = {},
           cov_b[kLatentDim][kLatentDim] = {};
    pair.latent_a = DrawLatents(cat_prob[pair.a], rng, normal, cov_a);
    pair.latent_b = DrawLatents(cat_prob[pair.b], rng, normal, cov_b);
    double var = 0;
    for (int d = 0; d < kLatentDim; ++d) {
      for (int e = 0; e < kLatentDim; ++e) var += cov_a[d][e] * cov_b[e][d];
    }
    const double factor =
        var > 0 ? std::sqrt(kPairScale * sigma / std::sqrt(var)) : 0.0;
    for (double& x : pair.latent_a) x *= factor;
    for (double& x : pair.latent_b) x *= factor;
    m.pairs_.push_back(std::move(pair));
  }

  m.BuildInts(g, rng, normal);
  return m;
}

PlantedModel PlantedModel::BuildHashed(const GeneratorConfig& g,
                                       std::mt19937_64& rng,
                                       NormalSampler& normal) {
  const double sigma = g.weight_stddev();
  PlantedModel m;
  m.vocab_ = g.vocab_size();
  m.hashed_ = true;
  m.bias_ = g.bias();
  m.seed_ = g.seed();
  m.zipf_ = std::make_unique<ZipfSampler>(m.vocab_, g.zipf_exponent());
  const std::vector<double> cat_scale =
      SpreadScales(kNumCats, kCatScaleMin, kCatScaleMax, rng);
  std::mt19937_64 sample_rng(Mix64(g.seed() ^ 0x6D6F6D656E7473ULL));
  for (int c = 0; c < kNumCats; ++c) {
    m.cat_salt_.push_back(static_cast<uint32_t>(Mix64(g.seed() * 131 + c)));
    m.cat_offset_.push_back(0.0);
    m.cat_factor_.push_back(1.0);
    double mean = 0, second = 0;
    for (int n = 0; n < kMomentSamples; ++n) {
      const double w = m.HashedWeight(c, m.DrawCat(c, sample_rng));
      mean += w;
      second += w * w;
    }
    mean /= kMomentSamples;
    const double var = second / kMomentSamples - mean * mean;
    m.cat_offset_[c] = mean;
    m.cat_factor_[c] = var > 0 ? cat_scale[c] * sigma / std::sqrt(var) : 0.0;
  }

  const std::vector<std::pair<int, int>> all =
      PickPairs(g.num_interactions(), rng);
  for (int i = 0; i < static_cast<int>(all.size()); ++i) {
    Pair pair;
    pair.a = all[i].first;
    pair.b = all[i].second;
    pair.mean_a.assign(kLatentDim, 0.0);
    pair.mean_b.assign(kLatentDim, 0.0);
    pair.factor = 1.0;
    m.pairs_.push_back(pair);
    // Moments of the raw latents of each side: mean and second moment.
    double cov[2][kLatentDim][kLatentDim] = {};
    double mean[2][kLatentDim] = {};
    for (int side = 0; side < 2; ++side) {
      const int slot = side == 0 ? pair.a : pair.b;
      std::vector<double> sum2(kLatentDim * kLatentDim);
      for (int n = 0; n < kMomentSamples; ++n) {
        double u[kLatentDim];
        m.HashedLatent(i, side, m.DrawCat(slot, sample_rng), u);
        for (int d = 0; d < kLatentDim; ++d) {
          mean[side][d] += u[d] / kMomentSamples;
          for (int e = 0; e < kLatentDim; ++e) {
            sum2[d * kLatentDim + e] += u[d] * u[e] / kMomentSamples;
          }
        }
      }
      for (int d = 0; d < kLatentDim; ++d) {
        for (int e = 0; e < kLatentDim; ++e) {
          cov[side][d][e] =
              sum2[d * kLatentDim + e] - mean[side][d] * mean[side][e];
        }
      }
    }
    double var = 0;
    for (int d = 0; d < kLatentDim; ++d) {
      for (int e = 0; e < kLatentDim; ++e) var += cov[0][d][e] * cov[1][e][d];
    }
    Pair& p = m.pairs_.back();
    p.mean_a.assign(mean[0], mean[0] + kLatentDim);
    p.mean_b.assign(mean[1], mean[1] + kLatentDim);
    p.factor = var > 0 ? std::sqrt(kPairScale * sigma / std::sqrt(var)) : 0.0;
  }
  m.BuildInts(g, rng, normal);
  return m;
}

void PlantedModel::BuildInts(const GeneratorConfig& g, std::mt19937_64& rng,
                             NormalSampler& normal) {
  const double sigma = g.weight_stddev();
  PlantedModel& m = *this;
  // Integers: the effect of each bucket and of missing, standardized over
  // a sample of kIntSamples draws (outcome kNumBuckets is "missing").
  const std::vector<double> int_scale =
      SpreadScales(kNumInts, kIntScaleMin, kIntScaleMax, rng);
  std::mt19937_64 sample_rng(Mix64(g.seed() ^ 0x696E7473ULL));
  NormalSampler sample_normal;
  for (int i = 0; i < kNumInts; ++i) {
    const double slope = (rng() & 1 ? 1.0 : -1.0) / kInts[i].sd;
    std::vector<double> effect(kNumBuckets + 1);
    for (int b = 0; b < kNumBuckets; ++b) {
      const double bucket = static_cast<double>(b + kMinBucket);
      effect[b] = slope * std::sqrt(std::max(bucket, 0.0)) +
                  kIntBucketNoise * normal.Next(rng);
    }
    effect[kNumBuckets] = normal.Next(rng);
    std::vector<double> freq(kNumBuckets + 1);
    for (int n = 0; n < kIntSamples; ++n) {
      int64_t x;
      const bool present = DrawInt(i, sample_rng, sample_normal, &x);
      freq[present ? CriteoLogBucket(x) - kMinBucket : kNumBuckets] +=
          1.0 / kIntSamples;
    }
    Standardize(freq, int_scale[i] * sigma, &effect);
    m.int_missing_weight_.push_back(effect[kNumBuckets]);
    effect.pop_back();
    m.int_effect_.push_back(std::move(effect));
  }
}

int64_t PlantedModel::DrawCat(int c, std::mt19937_64& rng) const {
  if (Uniform(rng) < kCatMissing[c]) return vocab_;
  return zipf_->Sample([&rng] { return Uniform(rng); }) - 1;
}

double PlantedModel::HashedWeight(int c, int64_t k) const {
  const double raw =
      RareShrink(k, vocab_) * HashNormal(ValueHash(seed_, kWeightStream, c, k));
  return (raw - cat_offset_[c]) * cat_factor_[c];
}

void PlantedModel::HashedLatent(int p, int side, int64_t k, double* out) const {
  const Pair& pair = pairs_[p];
  const std::vector<double>& mean = side == 0 ? pair.mean_a : pair.mean_b;
  const double shrink = RareShrink(k, vocab_);
  const uint64_t slot = static_cast<uint64_t>(2 * p + side);
  for (int d = 0; d < kLatentDim; ++d) {
    const double raw =
        shrink * HashNormal(ValueHash(seed_, kLatentStream, slot,
                                      static_cast<uint64_t>(k) * kLatentDim +
                                          static_cast<uint64_t>(d)));
    out[d] = (raw - mean[d]) * pair.factor;
  }
}

RowDrawer::RowDrawer(const PlantedModel* model, uint64_t stream_seed)
    : model_(*model), rng_(stream_seed) {}

std::pair<double, bool> RowDrawer::Next(std::string* out) {
  const PlantedModel& m = model_;
  int64_t ints[kNumInts];
  bool int_missing[kNumInts];
  int64_t buckets[kNumInts];  // log bucket - kMinBucket, when present
  int64_t cats[kNumCats];
  double logit = m.bias_;
  for (int i = 0; i < kNumInts; ++i) {
    int_missing[i] = !DrawInt(i, rng_, normal_, &ints[i]);
    buckets[i] = int_missing[i] ? 0 : CriteoLogBucket(ints[i]) - kMinBucket;
    logit += int_missing[i] ? m.int_missing_weight_[i]
                            : m.int_effect_[i][buckets[i]];
  }
  if (m.hashed_) {
    for (int c = 0; c < kNumCats; ++c) {
      cats[c] = m.DrawCat(c, rng_);
      logit += m.HashedWeight(c, cats[c]);
    }
    for (size_t p = 0; p < m.pairs_.size(); ++p) {
      double u[kLatentDim], w[kLatentDim];
      m.HashedLatent(static_cast<int>(p), 0, cats[m.pairs_[p].a], u);
      m.HashedLatent(static_cast<int>(p), 1, cats[m.pairs_[p].b], w);
      for (int d = 0; d < kLatentDim; ++d) logit += u[d] * w[d];
    }
  } else {
    for (int c = 0; c < kNumCats; ++c) {
      cats[c] = m.cat_sampler_[c].Sample(rng_());
      logit += m.cat_weight_[c][cats[c]];
    }
    for (const PlantedModel::Pair& pair : m.pairs_) {
      const double* u = &pair.latent_a[cats[pair.a] * kLatentDim];
      const double* w = &pair.latent_b[cats[pair.b] * kLatentDim];
      for (int d = 0; d < kLatentDim; ++d) logit += u[d] * w[d];
    }
  }
  for (int i = 0; i < kNumInts; ++i) {
    features_[i] = (static_cast<uint64_t>(i) << 40) ^
                   (int_missing[i] ? (uint64_t{1} << 39)
                                   : static_cast<uint64_t>(buckets[i]));
  }
  for (int c = 0; c < kNumCats; ++c) {
    features_[kNumInts + c] = (static_cast<uint64_t>(kNumInts + c) << 40) ^
                              static_cast<uint64_t>(cats[c]);
  }
  const double p = 1.0 / (1.0 + std::exp(-logit));
  const bool label = Uniform(rng_) < p;

  out->push_back(label ? '1' : '0');
  for (int i = 0; i < kNumInts; ++i) {
    out->push_back('\t');
    if (!int_missing[i]) {
      char buf[24];
      out->append(buf, std::to_chars(buf, buf + sizeof(buf), ints[i]).ptr);
    }
  }
  for (int c = 0; c < kNumCats; ++c) {
    out->push_back('\t');
    if (cats[c] != m.vocab_) {
      AppendHex8(m.hashed_
                     ? Fmix32(m.cat_salt_[c] ^ static_cast<uint32_t>(cats[c]))
                     : m.cat_hex_[c][cats[c]],
                 out);
    }
  }
  out->push_back('\n');
  return {p, label};
}

}  // namespace ps
