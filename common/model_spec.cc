#include "common/model_spec.h"

#include <algorithm>
#include <cmath>

#include "common/hash.h"
#include "common/input_shape.h"

namespace ps {

ModelSpec MakeModelSpec(const JobConfig& config) {
  ModelSpec spec;
  const ModelConfig& model = config.model();
  spec.type = model.type();
  const InputShape shape = InputShapeOf(config.data());
  spec.num_slots = shape.num_slots;
  spec.num_dense = shape.num_dense;
  for (int t = 0; t < config.sparse_tables_size(); ++t) {
    if (config.sparse_tables(t).name() == model.sparse_table()) {
      spec.sparse_table_id = static_cast<uint32_t>(t);
      spec.emb_dim = config.sparse_tables(t).dim();
    }
  }
  int64_t offset = 0;
  auto add_layer = [&](int in, int out, bool relu) {
    LayerSpec layer;
    layer.in = in;
    layer.out = out;
    layer.relu = relu;
    layer.weight_offset = offset;
    offset += static_cast<int64_t>(in) * out;
    layer.bias_offset = offset;
    offset += out;
    spec.layers.push_back(layer);
  };
  if (spec.type == ModelConfig::LR) {
    // logit = sum of per-feature weights + w . dense + b.
    spec.input_width = spec.num_dense;
    add_layer(spec.num_dense, 1, false);
  } else {
    spec.input_width = spec.num_slots * spec.emb_dim + spec.num_dense;
    int in = spec.input_width;
    for (int units : model.hidden_units()) {
      add_layer(in, units, true);
      in = units;
    }
    add_layer(in, 1, false);
  }
  spec.dense_size = offset;
  return spec;
}

float DenseInitValue(const ModelSpec& spec, uint64_t seed, int64_t index) {
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const LayerSpec& layer = spec.layers[l];
    if (index >= layer.weight_offset && index < layer.bias_offset) {
      if (layer.in == 0) return 0.0f;
      float limit = std::sqrt(6.0f / static_cast<float>(layer.in + layer.out));
      float u = HashUniform(seed, l, static_cast<uint64_t>(index));
      return (2.0f * u - 1.0f) * limit;
    }
  }
  return 0.0f;  // biases
}

std::vector<std::pair<int64_t, int64_t>> DenseBlocks::RangesOf(int server) const {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t b = server; b < num_blocks(); b += num_servers) {
    ranges.emplace_back(b * block_size, std::min(size, (b + 1) * block_size));
  }
  return ranges;
}

int64_t DenseBlocks::SizeOn(int server) const {
  int64_t total = 0;
  for (const auto& r : RangesOf(server)) total += r.second - r.first;
  return total;
}

}  // namespace ps
