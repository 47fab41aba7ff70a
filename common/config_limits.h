// Bounds on what a job config makes the processes allocate, so that an
// absurd config is refused by config validation (common/config_validate.h)
// naming the field and the limit, instead of ending in bad_alloc in a server
// or a worker. The limits are generous: far past every config in configs/
// and what one machine holds.
//
// Pure functions and constants; thread-safe.
#ifndef PS_COMMON_CONFIG_LIMITS_H_
#define PS_COMMON_CONFIG_LIMITS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "common/model_spec.h"
#include "proto/config.pb.h"

namespace ps {

// Hidden layers of a model (entries of model.hidden_units).
inline constexpr int kMaxHiddenLayers = 64;
// Floats of the dense parameter vector: 2^31 (8 GiB), held whole by every
// worker (and its optimizer state by the servers).
inline constexpr int64_t kMaxDenseParams = int64_t{1} << 31;
// Bytes of activations and their gradients a worker's model holds for one
// batch: data.batch_size * ActivationFloatsPerExample * 4 bytes. 32 GiB.
inline constexpr int64_t kMaxBatchActivationBytes = int64_t{32} << 30;

// The floats the model of `spec` keeps per example of a training batch
// (worker/model/: pooled rows and their gradients, the deep part's input,
// hidden and cross activations and their gradients, the FM sums, logits).
// An estimate within a small constant; the keys' rows, which depend on the
// data, are not counted.
int64_t ActivationFloatsPerExample(const ModelSpec& spec);

// A config field over its limit: the field's path ("model.hidden_units")
// and what is wrong, naming the limit.
struct ConfigLimitError {
  std::string field;
  std::string reason;
};

// The first limit `config` exceeds, if any: the layer count
// (model.hidden_units), the dense parameter count (model.hidden_units), the
// activation memory of a batch (data.batch_size).
// REQUIRES: `config` passed every other check of ValidateJobConfig.
std::optional<ConfigLimitError> CheckConfigLimits(const JobConfig& config);

}  // namespace ps

#endif  // PS_COMMON_CONFIG_LIMITS_H_
