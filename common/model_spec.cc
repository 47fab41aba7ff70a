#include "common/model_spec.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/hash.h"
#include "common/input_shape.h"

namespace ps {

namespace {

bool ReadsLinearWeight(ModelConfig::Type type) {
  return type == ModelConfig::LR || type == ModelConfig::FM ||
         type == ModelConfig::FWFM || type == ModelConfig::WIDE_DEEP ||
         type == ModelConfig::DEEPFM;
}

// The slots a WIDE_DEEP model lists, or every slot when the list is empty or
// the model has no such list.
std::vector<int> SlotsOrAll(
    const ModelConfig& model,
    const google::protobuf::RepeatedField<int32_t>& listed, int num_slots) {
  std::vector<int> slots;
  if (model.type() == ModelConfig::WIDE_DEEP) {
    slots.assign(listed.begin(), listed.end());
  }
  if (slots.empty()) {
    for (int s = 0; s < num_slots; ++s) slots.push_back(s);
  }
  return slots;
}

// Hands out consecutive ranges of the dense vector and records weight blocks.
class DenseLayout {
 public:
  explicit DenseLayout(ModelSpec* spec) : spec_(spec) {}

  LayerSpec Layer(int in, int out, bool activated) {
    LayerSpec layer;
    layer.in = in;
    layer.out = out;
    layer.activated = activated;
    layer.weight_offset = Weights(int64_t{in} * out, in, out);
    layer.bias_offset = Take(out);
    return layer;
  }

  CrossLayerSpec Cross(int width) {
    CrossLayerSpec layer;
    layer.width = width;
    layer.weight_offset = Weights(width, width, 1);
    layer.bias_offset = Take(width);
    return layer;
  }

  int64_t Constant(int64_t size, float value) {
    WeightInit block;
    block.offset = offset_;
    block.size = size;
    block.constant = true;
    block.value = value;
    spec_->weight_inits.push_back(block);
    return Take(size);
  }

  int64_t size() const { return offset_; }

 private:
  int64_t Take(int64_t size) {
    const int64_t at = offset_;
    offset_ += size;
    return at;
  }
  int64_t Weights(int64_t size, int fan_in, int fan_out) {
    spec_->weight_inits.push_back({offset_, size, fan_in, fan_out});
    return Take(size);
  }

  ModelSpec* const spec_;
  int64_t offset_ = 0;
};

}  // namespace

ModelSpec MakeModelSpec(const JobConfig& config) {
  ModelSpec spec;
  const ModelConfig& model = config.model();
  const ModelConfig::Type type = model.type();
  spec.type = type;
  spec.activation = model.activation();
  spec.dropout = model.dropout();
  const InputShape shape = InputShapeOf(config.data());
  spec.num_slots = shape.num_slots;
  spec.num_dense = shape.num_dense;
  spec.linear_dim = ReadsLinearWeight(type) ? 1 : 0;
  // Tables in the order of their first slot, each with its slots.
  const std::vector<int> ids = SlotTableIds(config, spec.num_slots);
  spec.slot_table.assign(spec.num_slots, 0);
  for (int s = 0; s < spec.num_slots; ++s) {
    const uint32_t id = static_cast<uint32_t>(std::max(ids[s], 0));
    int t = 0;
    while (t < static_cast<int>(spec.tables.size()) &&
           spec.tables[t].table_id != id) {
      ++t;
    }
    if (t == static_cast<int>(spec.tables.size())) {
      TableSpec table;
      table.table_id = id;
      table.dim = config.sparse_tables(static_cast<int>(id)).dim();
      spec.tables.push_back(table);
    }
    spec.tables[t].slots.push_back(s);
    spec.slot_table[s] = t;
  }
  spec.slot_offset.assign(spec.num_slots, 0);
  spec.slot_width.assign(spec.num_slots, 0);
  for (TableSpec& table : spec.tables) {
    table.pooled_offset = spec.pooled_width;
    for (int s : table.slots) {
      spec.slot_offset[s] = spec.pooled_width;
      spec.slot_width[s] = table.dim;
      spec.pooled_width += table.dim;
    }
  }
  bool uniform = !spec.tables.empty();
  for (const TableSpec& table : spec.tables) {
    uniform = uniform && table.dim == spec.tables[0].dim;
  }
  if (uniform) {
    spec.emb_dim = spec.tables[0].dim;
    spec.factor_dim = std::max(spec.emb_dim - spec.linear_dim, 0);
  }

  DenseLayout layout(&spec);
  spec.has_linear = ReadsLinearWeight(type);
  if (spec.has_linear) {
    spec.wide_slots = SlotsOrAll(model, model.wide_slots(), spec.num_slots);
    // WIDE_DEEP's dense features feed its deep part only.
    const int dense_in = type == ModelConfig::WIDE_DEEP ? 0 : spec.num_dense;
    spec.linear = layout.Layer(dense_in, 1, false);
  }
  spec.has_fm = type == ModelConfig::FM || type == ModelConfig::DEEPFM;
  spec.has_fwfm = type == ModelConfig::FWFM;
  if (spec.has_fwfm) {
    spec.fwfm.num_fields = spec.num_slots;
    spec.fwfm.offset =
        layout.Constant(spec.fwfm.num_pairs(), model.field_weight_init());
  }
  spec.has_deep = type == ModelConfig::DNN || type == ModelConfig::WIDE_DEEP ||
                  type == ModelConfig::DEEPFM || type == ModelConfig::DCN;
  if (spec.has_deep) {
    spec.deep_slots = SlotsOrAll(model, model.deep_slots(), spec.num_slots);
    spec.input_width = spec.num_dense;
    for (int s : spec.deep_slots) {
      spec.input_width += spec.slot_width[s] - spec.linear_dim;
    }
    int in = spec.input_width;
    for (int units : model.hidden_units()) {
      spec.layers.push_back(layout.Layer(in, units, true));
      in = units;
    }
    const int num_cross = type == ModelConfig::DCN ? model.cross_layers() : 0;
    for (int l = 0; l < num_cross; ++l) {
      spec.cross.push_back(layout.Cross(spec.input_width));
    }
    int output_in = spec.layers.empty() ? 0 : spec.layers.back().out;
    if (!spec.cross.empty()) output_in += spec.input_width;
    if (spec.layers.empty() && spec.cross.empty()) output_in = spec.input_width;
    spec.output = layout.Layer(output_in, 1, false);
  }
  spec.dense_size = layout.size();
  return spec;
}

std::vector<int> SlotTableIds(const JobConfig& config, int num_slots) {
  auto index_of = [&config](const std::string& name) {
    for (int t = 0; t < config.sparse_tables_size(); ++t) {
      if (config.sparse_tables(t).name() == name) return t;
    }
    return -1;
  };
  std::vector<int> ids(num_slots, index_of(config.model().sparse_table()));
  for (const SlotTableConfig& group : config.model().slot_tables()) {
    const int id = index_of(group.table());
    for (int s : group.slots()) {
      if (s >= 0 && s < num_slots) ids[s] = id;
    }
  }
  return ids;
}

float DenseInitValue(const ModelSpec& spec, uint64_t seed, int64_t index) {
  for (size_t k = 0; k < spec.weight_inits.size(); ++k) {
    const WeightInit& block = spec.weight_inits[k];
    if (index >= block.offset && index < block.offset + block.size) {
      if (block.constant) return block.value;
      const float limit =
          std::sqrt(6.0f / static_cast<float>(block.fan_in + block.fan_out));
      const float u = HashUniform(seed, k, static_cast<uint64_t>(index));
      return (2.0f * u - 1.0f) * limit;
    }
  }
  return 0.0f;  // biases
}

std::vector<std::pair<int64_t, int64_t>> DenseBlocks::RangesOf(
    int server) const {
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
