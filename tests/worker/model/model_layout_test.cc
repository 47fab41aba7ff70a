// ModelSpec (common/model_spec.h): the row layout and dense parameter layout
// of every model, hand-computed for small cases, and the dense initializer.
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/hash.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::ElementsAre;

JobConfig MakeConfig(ModelConfig::Type type, int dim,
                     DataConfig::IntFeatures ints,
                     std::vector<int> hidden = {}) {
  JobConfig config;
  auto* table = config.add_sparse_tables();
  table->set_name("emb");
  table->set_dim(dim);
  config.mutable_model()->set_type(type);
  config.mutable_model()->set_sparse_table("emb");
  for (int units : hidden) config.mutable_model()->add_hidden_units(units);
  config.mutable_data()->set_int_features(ints);
  return config;
}

void ExpectLayer(const LayerSpec& layer, int in, int out, bool activated,
                 int64_t weight_offset, int64_t bias_offset) {
  EXPECT_EQ(layer.in, in);
  EXPECT_EQ(layer.out, out);
  EXPECT_EQ(layer.activated, activated);
  EXPECT_EQ(layer.weight_offset, weight_offset);
  EXPECT_EQ(layer.bias_offset, bias_offset);
}

TEST(ModelLayoutTest, SlotTablesLayPooledRowsTableAfterTable) {
  // NORMALIZE: 26 slots. "big" (dim 6) reads slots 3 and 1, "emb" (dim 4)
  // the rest: the pooled row is emb's 24 slots (0, 2, 4, ...), then big's.
  JobConfig config =
      MakeConfig(ModelConfig::DNN, 4, DataConfig::NORMALIZE, {8});
  auto* big = config.add_sparse_tables();
  big->set_name("big");
  big->set_dim(6);
  auto* group = config.mutable_model()->add_slot_tables();
  group->set_table("big");
  group->add_slots(3);
  group->add_slots(1);
  const ModelSpec spec = MakeModelSpec(config);
  ASSERT_EQ(spec.tables.size(), 2u);
  EXPECT_EQ(spec.tables[0].table_id, 0u);
  EXPECT_EQ(spec.tables[0].dim, 4);
  EXPECT_EQ(spec.tables[0].slots.size(), 24u);
  EXPECT_EQ(spec.tables[1].table_id, 1u);
  EXPECT_THAT(spec.tables[1].slots, ElementsAre(1, 3));
  EXPECT_EQ(spec.tables[1].pooled_offset, 24 * 4);
  EXPECT_EQ(spec.pooled_width, 24 * 4 + 2 * 6);
  EXPECT_EQ(spec.slot_table[1], 1);
  EXPECT_EQ(spec.slot_table[2], 0);
  EXPECT_EQ(spec.slot_offset[0], 0);
  EXPECT_EQ(spec.slot_offset[2], 4);
  EXPECT_EQ(spec.slot_offset[1], 96);
  EXPECT_EQ(spec.slot_offset[3], 102);
  EXPECT_EQ(spec.slot_width[3], 6);
  EXPECT_EQ(spec.emb_dim, 0);  // dims differ
  // x0: 24 x 4 + 2 x 6 embedding floats + 13 dense.
  EXPECT_EQ(spec.input_width, 96 + 12 + 13);
  ExpectLayer(spec.layers[0], 121, 8, true, 0, 121 * 8);
}

TEST(ModelLayoutTest, Lr) {
  // NORMALIZE: 26 slots, 13 dense. [W (13) | b].
  const ModelSpec spec =
      MakeModelSpec(MakeConfig(ModelConfig::LR, 1, DataConfig::NORMALIZE));
  EXPECT_EQ(spec.linear_dim, 1);
  EXPECT_EQ(spec.factor_dim, 0);
  EXPECT_TRUE(spec.has_linear);
  EXPECT_FALSE(spec.has_fm);
  EXPECT_FALSE(spec.has_deep);
  EXPECT_EQ(spec.wide_slots.size(), 26u);
  ExpectLayer(spec.linear, 13, 1, false, 0, 13);
  EXPECT_EQ(spec.dense_size, 14);
}

TEST(ModelLayoutTest, DnnIsUnchanged) {
  // x0 = 26 x 4 + 13 = 117; [W0 117x5 | b0 5 | W1 5x1 | b1].
  const ModelSpec spec = MakeModelSpec(
      MakeConfig(ModelConfig::DNN, 4, DataConfig::NORMALIZE, {5}));
  EXPECT_EQ(spec.linear_dim, 0);
  EXPECT_EQ(spec.factor_dim, 4);
  EXPECT_FALSE(spec.has_linear);
  EXPECT_EQ(spec.input_width, 117);
  ASSERT_EQ(spec.layers.size(), 1u);
  ExpectLayer(spec.layers[0], 117, 5, true, 0, 585);
  ExpectLayer(spec.output, 5, 1, false, 590, 595);
  EXPECT_EQ(spec.dense_size, 596);
}

TEST(ModelLayoutTest, Fm) {
  // Rows: 1 linear weight + 4 embedding floats; dense as LR's.
  const ModelSpec spec =
      MakeModelSpec(MakeConfig(ModelConfig::FM, 5, DataConfig::NORMALIZE));
  EXPECT_EQ(spec.linear_dim, 1);
  EXPECT_EQ(spec.factor_dim, 4);
  EXPECT_TRUE(spec.has_linear);
  EXPECT_TRUE(spec.has_fm);
  EXPECT_FALSE(spec.has_deep);
  ExpectLayer(spec.linear, 13, 1, false, 0, 13);
  EXPECT_EQ(spec.dense_size, 14);
}

TEST(ModelLayoutTest, WideDeepWithSlotSubsets) {
  // LOG_BUCKET: 39 slots, no dense. Wide: bias only (offset 0). x0 = 2 deep
  // slots x 4 = 8; [b | W0 8x8 | b0 8 | W 8 | b].
  JobConfig config =
      MakeConfig(ModelConfig::WIDE_DEEP, 5, DataConfig::LOG_BUCKET, {8});
  for (int slot : {0, 1, 2}) config.mutable_model()->add_wide_slots(slot);
  for (int slot : {4, 3}) config.mutable_model()->add_deep_slots(slot);
  const ModelSpec spec = MakeModelSpec(config);
  EXPECT_THAT(spec.wide_slots, ElementsAre(0, 1, 2));
  EXPECT_THAT(spec.deep_slots, ElementsAre(4, 3));
  EXPECT_FALSE(spec.has_fm);
  ExpectLayer(spec.linear, 0, 1, false, 0, 0);
  EXPECT_EQ(spec.input_width, 8);
  ASSERT_EQ(spec.layers.size(), 1u);
  ExpectLayer(spec.layers[0], 8, 8, true, 1, 65);
  ExpectLayer(spec.output, 8, 1, false, 73, 81);
  EXPECT_EQ(spec.dense_size, 82);
}

TEST(ModelLayoutTest, WideDeepWithoutListsUsesAllSlots) {
  const ModelSpec spec = MakeModelSpec(
      MakeConfig(ModelConfig::WIDE_DEEP, 3, DataConfig::NORMALIZE, {4}));
  EXPECT_EQ(spec.wide_slots.size(), 26u);
  EXPECT_EQ(spec.deep_slots.size(), 26u);
  EXPECT_EQ(spec.input_width, 26 * 2 + 13);
}

TEST(ModelLayoutTest, DeepFm) {
  // [W 13 | b | W0 117x16 | b0 16 | W 16 | b]; x0 = 26 x 4 + 13.
  const ModelSpec spec = MakeModelSpec(
      MakeConfig(ModelConfig::DEEPFM, 5, DataConfig::NORMALIZE, {16}));
  EXPECT_TRUE(spec.has_linear);
  EXPECT_TRUE(spec.has_fm);
  EXPECT_TRUE(spec.has_deep);
  ExpectLayer(spec.linear, 13, 1, false, 0, 13);
  EXPECT_EQ(spec.input_width, 117);
  ExpectLayer(spec.layers[0], 117, 16, true, 14, 1886);
  ExpectLayer(spec.output, 16, 1, false, 1902, 1918);
  EXPECT_EQ(spec.dense_size, 1919);
}

TEST(ModelLayoutTest, DcnWithHiddenLayer) {
  // x0 = 117. [W0 117x8 | b0 8 | w_0 117 | b_0 117 | w_1 | b_1 |
  // W (117 + 8) | b].
  JobConfig config =
      MakeConfig(ModelConfig::DCN, 4, DataConfig::NORMALIZE, {8});
  const ModelSpec spec = MakeModelSpec(config);  // cross_layers default 2
  EXPECT_FALSE(spec.has_linear);
  EXPECT_EQ(spec.linear_dim, 0);
  EXPECT_EQ(spec.factor_dim, 4);
  ExpectLayer(spec.layers[0], 117, 8, true, 0, 936);
  ASSERT_EQ(spec.cross.size(), 2u);
  EXPECT_EQ(spec.cross[0].width, 117);
  EXPECT_EQ(spec.cross[0].weight_offset, 944);
  EXPECT_EQ(spec.cross[0].bias_offset, 1061);
  EXPECT_EQ(spec.cross[1].weight_offset, 1178);
  EXPECT_EQ(spec.cross[1].bias_offset, 1295);
  ExpectLayer(spec.output, 125, 1, false, 1412, 1537);
  EXPECT_EQ(spec.dense_size, 1538);
}

TEST(ModelLayoutTest, DcnWithoutHiddenLayers) {
  // LOG_BUCKET, dim 2: x0 = 78. [w_0 | b_0 | w_1 | b_1 | W 78 | b].
  JobConfig config = MakeConfig(ModelConfig::DCN, 2, DataConfig::LOG_BUCKET);
  const ModelSpec spec = MakeModelSpec(config);
  EXPECT_TRUE(spec.layers.empty());
  ASSERT_EQ(spec.cross.size(), 2u);
  EXPECT_EQ(spec.cross[1].weight_offset, 156);
  ExpectLayer(spec.output, 78, 1, false, 312, 390);
  EXPECT_EQ(spec.dense_size, 391);
}

TEST(ModelLayoutTest, DcnWithoutCrossLayersReadsHiddenOnly) {
  JobConfig config =
      MakeConfig(ModelConfig::DCN, 2, DataConfig::LOG_BUCKET, {3});
  config.mutable_model()->set_cross_layers(0);
  const ModelSpec spec = MakeModelSpec(config);
  EXPECT_TRUE(spec.cross.empty());
  ExpectLayer(spec.output, 3, 1, false, 78 * 3 + 3, 78 * 3 + 6);
}

// The stream of a weight block is its position among the weight blocks:
// for LR and DNN the same values as when each layer was its own stream.
TEST(ModelLayoutTest, DenseInitIsGlorotWithZeroBiases) {
  const ModelSpec spec = MakeModelSpec(
      MakeConfig(ModelConfig::DCN, 4, DataConfig::NORMALIZE, {8}));
  ASSERT_EQ(spec.weight_inits.size(), 4u);  // W0, w_0, w_1, W
  const uint64_t seed = 7;
  auto glorot = [&](uint64_t stream, int64_t index, int fan_in, int fan_out) {
    const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
    return (2.0f * HashUniform(seed, stream, index) - 1.0f) * limit;
  };
  EXPECT_EQ(DenseInitValue(spec, seed, 0), glorot(0, 0, 117, 8));
  EXPECT_EQ(DenseInitValue(spec, seed, 935), glorot(0, 935, 117, 8));
  EXPECT_EQ(DenseInitValue(spec, seed, 936), 0.0f);  // b0
  EXPECT_EQ(DenseInitValue(spec, seed, 944), glorot(1, 944, 117, 1));
  EXPECT_EQ(DenseInitValue(spec, seed, 1060), glorot(1, 1060, 117, 1));
  EXPECT_EQ(DenseInitValue(spec, seed, 1061), 0.0f);  // b_0
  EXPECT_EQ(DenseInitValue(spec, seed, 1178), glorot(2, 1178, 117, 1));
  EXPECT_EQ(DenseInitValue(spec, seed, 1412), glorot(3, 1412, 125, 1));
  EXPECT_EQ(DenseInitValue(spec, seed, 1537), 0.0f);  // output bias
  int nonzero = 0;
  for (int64_t i = 944; i < 1061; ++i) {
    const float w = DenseInitValue(spec, seed, i);
    EXPECT_LE(std::abs(w), std::sqrt(6.0f / 118.0f));
    if (w != 0.0f) ++nonzero;
  }
  EXPECT_GT(nonzero, 100);
}

}  // namespace
}  // namespace ps
