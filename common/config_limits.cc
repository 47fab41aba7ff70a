#include "common/config_limits.h"

#include "absl/strings/str_cat.h"

namespace ps {

int64_t ActivationFloatsPerExample(const ModelSpec& spec) {
  // Pooled rows and their gradients, the logit, its gradient, the
  // probability, the label and the dense features staged.
  int64_t floats = 2 * int64_t{spec.pooled_width} + 4 + int64_t{spec.num_dense};
  if (spec.has_fm) floats += spec.factor_dim;          // per-example sums
  if (spec.has_fwfm) floats += spec.fwfm.num_pairs();  // per-example dots
  if (spec.has_deep) {
    floats += 2 * int64_t{spec.input_width};  // x0 and its gradient
    for (const LayerSpec& layer : spec.layers) floats += 2 * int64_t{layer.out};
    if (!spec.cross.empty()) {
      // Each layer's output and x.w; three gradient buffers of x0's width.
      const int64_t layers = static_cast<int64_t>(spec.cross.size());
      floats += (layers + 3) * spec.input_width + layers;
    }
  }
  return floats;
}

std::optional<ConfigLimitError> CheckConfigLimits(const JobConfig& config) {
  const int layers = config.model().hidden_units_size();
  if (layers > kMaxHiddenLayers) {
    return ConfigLimitError{
        "model.hidden_units",
        absl::StrCat("has ", layers, " layers, more than the limit of ",
                     kMaxHiddenLayers)};
  }
  const ModelSpec spec = MakeModelSpec(config);
  if (spec.dense_size > kMaxDenseParams) {
    return ConfigLimitError{
        "model.hidden_units",
        absl::StrCat("the model has ", spec.dense_size,
                     " dense parameters (input width ", spec.input_width,
                     "), more than the limit of ", kMaxDenseParams,
                     " (8 GiB of floats): use fewer or narrower layers, "
                     "slots or a smaller sparse table dim")};
  }
  const int64_t per_example = ActivationFloatsPerExample(spec);
  const int64_t batch = config.data().batch_size();
  // per_example < 2^40 (slots, dims and widths are bounded), batch < 2^20.
  const int64_t bytes = batch * per_example * int64_t{sizeof(float)};
  if (bytes > kMaxBatchActivationBytes) {
    return ConfigLimitError{
        "data.batch_size",
        absl::StrCat(batch, " examples of ", per_example,
                     " activation floats each need about ", bytes >> 20,
                     " MiB per batch, more than the limit of ",
                     kMaxBatchActivationBytes >> 30,
                     " GiB: use a smaller batch or model")};
  }
  return std::nullopt;
}

}  // namespace ps
