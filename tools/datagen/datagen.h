// Synthetic Criteo-format data from a planted model, so training quality has
// a yardstick: the oracle AUC/logloss (of the true click probabilities on the
// eval file) is the best any model can reach on that data.
//
// Planted model (tools/datagen/planted_model.h): each categorical slot draws a
// value index from a Zipf distribution over vocab_size values (value hex = a
// hash of seed, slot and index) and adds its value's hidden weight. Each slot's
// term is standardized over that distribution to mean 0 and a std-dev of
// weight_stddev times a per-slot scale in [0.15, 1], with popular values
// weighted more than rare ones (rare values stay near the slot average).
// Integer features add a hidden effect of their log bucket (std-dev
// weight_stddev times a per-slot scale in [0.2, 0.8]); num_interactions slot
// pairs add a hidden dot product of small latent vectors of their values
// (std-dev 0.4 * weight_stddev). The click probability is
// sigmoid(bias + sum of all terms); the label is drawn from it. Some fields
// are left empty (missing, with a weight of their own), as in the real data.
// Above 2^24 values per slot nothing is stored per value (planted_model.h),
// for jobs with 10^7-10^8 distinct keys; the report counts them
// (train_distinct_keys, a HyperLogLog estimate).
// Deterministic by seed: the same options give byte-identical files.
#ifndef PS_TOOLS_DATAGEN_DATAGEN_H_
#define PS_TOOLS_DATAGEN_DATAGEN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "proto/config.pb.h"

namespace ps {

struct GeneratorReport {
  std::string train_file;
  std::string eval_file;
  int64_t train_rows = 0;
  int64_t eval_rows = 0;
  double train_positive_rate = 0;
  double eval_positive_rate = 0;
  double oracle_auc = 0;      // on the eval file
  double oracle_logloss = 0;  // on the eval file
  // Distinct (slot, value) features of the train file, which are the keys
  // a job's tables see: a HyperLogLog estimate (relative error about 1 %).
  int64_t train_distinct_keys = 0;
};

// Writes GeneratedTrainFile/EvalFile(options) (common/config.h), creating
// output_dir if needed, and GeneratedOracleFile as JSON with the report's
// fields. Errors name the file that could not be written.
absl::StatusOr<GeneratorReport> GenerateCriteoData(
    const GeneratorConfig& options);

}  // namespace ps

#endif  // PS_TOOLS_DATAGEN_DATAGEN_H_
