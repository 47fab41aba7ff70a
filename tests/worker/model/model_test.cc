// Model: hand values, what each model reads from a row and a slot, and every
// input validation error. Gradients of every model are checked by finite
// differences in model_gradient_test.cc.
#include "worker/model/model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/testing/model_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/batch.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::MakeBackend;
using testing_util::MakeInputs;
using testing_util::StatusIs;
using testing_util::StepInputs;

ModelSpec MakeSpec(ModelConfig::Type type, DataConfig::IntFeatures ints) {
  ModelConfig model;
  model.set_type(type);
  if (type == ModelConfig::DNN) {
    model.add_hidden_units(5);
    model.add_hidden_units(3);
  }
  return testing_util::SpecOf(model, type == ModelConfig::LR ? 1 : 4, ints);
}

TEST(ModelTest, LrWithoutDenseFeaturesHandValues) {
  // LOG_BUCKET: 39 slots, no dense features; LR's layer is just a bias.
  const ModelSpec spec = MakeSpec(ModelConfig::LR, DataConfig::LOG_BUCKET);
  ASSERT_EQ(spec.num_dense, 0);
  ASSERT_EQ(spec.dense_size, 1);
  auto backend = MakeBackend();
  Batch batch;
  batch.num_slots = spec.num_slots;
  batch.labels = {1.0f};
  batch.keys = {7, 9, 7};  // slot 0: {7, 9}; slot 3: {7}; others empty
  batch.offsets.assign(spec.num_slots + 1, 3);
  batch.offsets[0] = 0;
  batch.offsets[1] = batch.offsets[2] = batch.offsets[3] = 2;
  const std::vector<uint32_t> key_index = {0, 1, 0};
  const std::vector<float> rows = {0.5f, 1.5f};
  const std::vector<float> bias = {0.25f};

  Model sum_model(spec, PoolMode::kSum, backend.get());
  StepResult result;
  ASSERT_TRUE(
      sum_model.TrainStep(batch, key_index, 2, rows, bias, &result).ok());
  const double logit = 0.5 + 1.5 + 0.5 + 0.25;
  const double p = 1 / (1 + std::exp(-logit));
  EXPECT_NEAR(result.probs[0], p, 1e-6);
  EXPECT_NEAR(result.loss_sum, -std::log(p), 1e-6);
  EXPECT_NEAR(result.dense_grad[0], p - 1, 1e-6);
  EXPECT_NEAR(result.row_grad[0], 2 * (p - 1), 1e-6);  // key 7 used twice
  EXPECT_NEAR(result.row_grad[1], p - 1, 1e-6);

  Model mean_model(spec, PoolMode::kMean, backend.get());
  ASSERT_TRUE(
      mean_model.TrainStep(batch, key_index, 2, rows, bias, &result).ok());
  const double mean_logit = (0.5 + 1.5) / 2 + 0.5 + 0.25;
  const double q = 1 / (1 + std::exp(-mean_logit));
  EXPECT_NEAR(result.probs[0], q, 1e-6);
  EXPECT_NEAR(result.row_grad[0], (q - 1) / 2 + (q - 1), 1e-6);
  EXPECT_NEAR(result.row_grad[1], (q - 1) / 2, 1e-6);
}

// LOG_BUCKET (39 slots, no dense features) with a table of the given dim.
JobConfig LogBucketConfig(ModelConfig::Type type, int dim) {
  JobConfig config;
  auto* table = config.add_sparse_tables();
  table->set_name("emb");
  table->set_dim(dim);
  config.mutable_model()->set_type(type);
  config.mutable_model()->set_sparse_table("emb");
  config.mutable_data()->set_int_features(DataConfig::LOG_BUCKET);
  return config;
}

// One example with the given keys per slot (the other slots empty).
Batch OneExample(int num_slots,
                 const std::vector<std::vector<uint64_t>>& keys) {
  Batch batch;
  batch.num_slots = num_slots;
  batch.labels = {1.0f};
  for (int s = 0; s < num_slots; ++s) {
    if (s < static_cast<int>(keys.size())) {
      batch.keys.insert(batch.keys.end(), keys[s].begin(), keys[s].end());
    }
    batch.offsets.push_back(static_cast<uint32_t>(batch.keys.size()));
  }
  return batch;
}

TEST(ModelTest, FmHandValues) {
  // Rows are [linear weight | 2 embedding floats]: A = [0.5 | 0.1, 0.2],
  // B = [-0.25 | 0.3, -0.1]. Slot 0 = {A}, slot 1 = {B}, slot 5 = {A, B}
  // (sum pooled): embeddings e0 = (.1, .2), e1 = (.3, -.1), e5 = (.4, .1).
  const ModelSpec spec = MakeModelSpec(LogBucketConfig(ModelConfig::FM, 3));
  ASSERT_EQ(spec.dense_size, 1);  // the bias alone
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  const Batch batch =
      OneExample(spec.num_slots, {{1}, {2}, {}, {}, {}, {1, 2}});
  const std::vector<uint32_t> key_index = {0, 1, 0, 1};
  const std::vector<float> rows = {0.5f, 0.1f, 0.2f, -0.25f, 0.3f, -0.1f};
  const std::vector<float> bias = {0.125f};
  StepResult result;
  ASSERT_TRUE(model.TrainStep(batch, key_index, 2, rows, bias, &result).ok());
  // bias + linear (A, B, A + B) + <e0,e1> + <e0,e5> + <e1,e5>.
  const double logit = 0.125 + 2 * (0.5 - 0.25) + (0.01 + 0.06 + 0.11);
  const double p = 1 / (1 + std::exp(-logit));
  EXPECT_NEAR(result.probs[0], p, 1e-6);
  EXPECT_NEAR(result.dense_grad[0], p - 1, 1e-6);
  // A: weight used twice; embedding gets (e1 + e5) via e0 and (e0 + e1)
  // via e5. B: (e0 + e5) via e1 and (e0 + e1) via e5.
  const std::vector<double> want = {2, 1.1, 0.1, 2, 0.9, 0.4};
  for (size_t j = 0; j < want.size(); ++j) {
    EXPECT_NEAR(result.row_grad[j], (p - 1) * want[j], 1e-6) << "float " << j;
  }
}

TEST(ModelTest, WideDeepReadsOnlyItsSlots) {
  // Wide: slot 1's weights; deep: slot 2's embeddings. Key 7 sits in slot 0
  // only, key 8 in slot 1 (wide), key 9 in slot 2 (deep).
  JobConfig config = LogBucketConfig(ModelConfig::WIDE_DEEP, 3);
  config.mutable_model()->add_wide_slots(1);
  config.mutable_model()->add_deep_slots(2);
  const ModelSpec spec = MakeModelSpec(config);
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  const Batch batch = OneExample(spec.num_slots, {{7}, {8}, {9}});
  const std::vector<uint32_t> key_index = {0, 1, 2};
  std::vector<float> rows = {1, 2, 3, 0.5, 0.25, -0.5, -0.75, 0.5, 1.5};
  std::vector<float> params(spec.dense_size);
  for (int64_t j = 0; j < spec.dense_size; ++j) {
    params[j] = 0.25f + DenseInitValue(spec, 3, j);
  }
  StepResult result;
  ASSERT_TRUE(model.TrainStep(batch, key_index, 3, rows, params, &result).ok());
  EXPECT_THAT(
      std::vector<float>(result.row_grad.begin(), result.row_grad.begin() + 3),
      ::testing::ElementsAre(0, 0, 0));  // slot 0 is read by no part
  EXPECT_NE(result.row_grad[3], 0.0f);   // key 8's weight: wide
  EXPECT_EQ(result.row_grad[4], 0.0f);   // key 8's embedding: unused
  EXPECT_EQ(result.row_grad[5], 0.0f);
  EXPECT_EQ(result.row_grad[6], 0.0f);  // key 9's weight: unused
  EXPECT_NE(result.row_grad[7], 0.0f);  // key 9's embedding: deep
  EXPECT_NE(result.row_grad[8], 0.0f);

  // Changing what no part reads changes nothing.
  StepResult changed;
  rows[0] = 5.0f;
  rows[4] = -3.0f;
  rows[6] = 2.0f;
  ASSERT_TRUE(model.Predict(batch, key_index, 3, rows, params, &changed).ok());
  EXPECT_EQ(changed.probs, result.probs);
}

TEST(ModelTest, RowWidthMustSuitTheModel) {
  auto backend = MakeBackend();
  // Built from an unvalidated config: FM rows of dim 1 have no embedding.
  const ModelSpec spec = MakeModelSpec(LogBucketConfig(ModelConfig::FM, 1));
  Model model(spec, PoolMode::kSum, backend.get());
  const Batch batch = OneExample(spec.num_slots, {{7}});
  StepResult result;
  const absl::Status status =
      model.TrainStep(batch, {0}, 1, {0.5f}, {0.0f}, &result);
  EXPECT_THAT(
      status,
      StatusIs(absl::StatusCode::kInvalidArgument,
               "FM model needs rows of dim >= 2 (1 linear weight + embedding), "
               "the spec has dim 1"));
}

TEST(ModelTest, PredictMatchesTrainStepAndLeavesGradsEmpty) {
  const ModelSpec spec = MakeSpec(ModelConfig::DNN, DataConfig::NORMALIZE);
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  StepInputs in = MakeInputs(spec, 7, 43);
  StepResult train, predict;
  ASSERT_TRUE(model
                  .TrainStep(in.batch, in.unique.key_index,
                             in.unique.unique_keys.size(), in.rows,
                             in.dense_params, &train)
                  .ok());
  ASSERT_TRUE(model
                  .Predict(in.batch, in.unique.key_index,
                           in.unique.unique_keys.size(), in.rows,
                           in.dense_params, &predict)
                  .ok());
  EXPECT_EQ(predict.probs, train.probs);
  EXPECT_EQ(predict.loss_sum, train.loss_sum);
  EXPECT_TRUE(predict.dense_grad.empty());
  EXPECT_TRUE(predict.row_grad.empty());
}

TEST(ModelTest, EmptyBatchGivesZeroGradients) {
  const ModelSpec spec = MakeSpec(ModelConfig::DNN, DataConfig::NORMALIZE);
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  Batch batch;
  batch.num_slots = spec.num_slots;
  batch.num_dense = spec.num_dense;
  const std::vector<float> rows(2 * spec.emb_dim, 1.0f);
  const std::vector<float> params(spec.dense_size, 1.0f);
  StepResult result;
  ASSERT_TRUE(model.TrainStep(batch, {}, 2, rows, params, &result).ok());
  EXPECT_TRUE(result.probs.empty());
  EXPECT_EQ(result.loss_sum, 0.0);
  EXPECT_EQ(result.dense_grad, std::vector<float>(spec.dense_size, 0.0f));
  EXPECT_EQ(result.row_grad, std::vector<float>(2 * spec.emb_dim, 0.0f));
}

class ModelValidationTest : public ::testing::Test {
 protected:
  ModelValidationTest()
      : spec_(MakeSpec(ModelConfig::DNN, DataConfig::NORMALIZE)),
        backend_(MakeBackend()),
        model_(spec_, PoolMode::kMean, backend_.get()),
        in_(MakeInputs(spec_, 3, 47)) {}

  absl::Status Step() {
    StepResult result;
    return model_.TrainStep(in_.batch, in_.unique.key_index,
                            in_.unique.unique_keys.size(), in_.rows,
                            in_.dense_params, &result);
  }

  void ExpectError(const std::string& message) {
    absl::Status status = Step();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(message)));
  }

  const ModelSpec spec_;
  std::unique_ptr<Backend> backend_;
  Model model_;
  StepInputs in_;
};

TEST_F(ModelValidationTest, ValidInputsPass) { EXPECT_TRUE(Step().ok()); }

TEST_F(ModelValidationTest, WrongSlotCount) {
  in_.batch.num_slots = 25;
  ExpectError("batch has 25 slots per example but DNN model expects 26");
}

TEST_F(ModelValidationTest, WrongDenseFeatureCount) {
  in_.batch.num_dense = 12;
  ExpectError(
      "batch has 12 dense features per example but DNN model expects 13");
}

TEST_F(ModelValidationTest, WrongDenseValueCount) {
  in_.batch.dense.pop_back();
  ExpectError(
      "batch dense values: expected 39 (3 examples x 13 features), got 38");
}

TEST_F(ModelValidationTest, WrongOffsetCount) {
  in_.batch.offsets.pop_back();
  ExpectError("batch offsets: expected 79 (3 examples x 26 slots + 1), got 78");
}

TEST_F(ModelValidationTest, OffsetsNotCoveringKeys) {
  in_.batch.keys.push_back(5);
  in_.unique.key_index.push_back(0);
  ExpectError("batch offsets must run from 0 to the key count");
}

TEST_F(ModelValidationTest, DecreasingOffsets) {
  in_.batch.offsets[2] = in_.batch.offsets[3] + 1;
  ExpectError("batch offsets decrease at entry 3");
}

TEST_F(ModelValidationTest, KeyIndexSizeMismatch) {
  const size_t keys = in_.batch.keys.size();
  in_.unique.key_index.pop_back();
  ExpectError("key_index has " + std::to_string(keys - 1) +
              " entries but the batch has " + std::to_string(keys) + " keys");
}

TEST_F(ModelValidationTest, KeyIndexOutOfRange) {
  const size_t unique = in_.unique.unique_keys.size();
  in_.unique.key_index[1] = unique;
  ExpectError("key_index[1] = " + std::to_string(unique) +
              " is out of range: there are " + std::to_string(unique) +
              " unique rows");
}

TEST_F(ModelValidationTest, RowsSizeMismatch) {
  in_.rows.pop_back();
  const size_t unique = in_.unique.unique_keys.size();
  ExpectError("rows has " + std::to_string(unique * 4 - 1) + " floats but " +
              std::to_string(unique) + " unique rows of dim 4 need " +
              std::to_string(unique * 4));
}

TEST_F(ModelValidationTest, DenseParamsSizeMismatch) {
  in_.dense_params.push_back(0.0f);
  ExpectError("dense_params has " + std::to_string(spec_.dense_size + 1) +
              " floats but DNN model has " + std::to_string(spec_.dense_size));
}

// A model whose slots read two tables of one dim computes what the same
// model over one table computes when every (table, key) row holds that
// key's one-table row: the split changes where rows live and the order of
// the pooled row, not the function. The gradient of a key's one-table row
// is the sum of its rows' gradients over the tables.
class SlotTablesTest : public ::testing::TestWithParam<ModelConfig::Type> {};

TEST_P(SlotTablesTest, TwoTablesOfOneDimComputeWhatOneTableComputes) {
  ModelConfig config;
  config.set_type(GetParam());
  if (GetParam() != ModelConfig::LR && GetParam() != ModelConfig::FM &&
      GetParam() != ModelConfig::FWFM) {
    config.add_hidden_units(6);
  }
  const int dim = GetParam() == ModelConfig::LR ? 1 : 4;
  const ModelSpec one = testing_util::SpecOf(config, dim);
  const ModelSpec two =
      testing_util::SpecOfTables(config, {{dim, {}}, {dim, {0, 2, 7, 25}}});
  ASSERT_EQ(two.tables.size(), 2u);
  auto backend = MakeBackend();
  Model model_one(one, PoolMode::kMean, backend.get());
  Model model_two(two, PoolMode::kMean, backend.get());
  const StepInputs in = MakeInputs(one, 16, 7, {0.2f, 0.2f});

  // The two-table rows: each table's keys with their one-table rows.
  const UniqueKeys split = Deduplicate(in.batch, two.slot_table, 2);
  std::vector<float> rows;
  for (uint64_t key : split.unique_keys) {
    const auto it = std::find(in.unique.unique_keys.begin(),
                              in.unique.unique_keys.end(), key);
    ASSERT_NE(it, in.unique.unique_keys.end());
    const size_t row = it - in.unique.unique_keys.begin();
    rows.insert(rows.end(), in.rows.begin() + row * dim,
                in.rows.begin() + (row + 1) * dim);
  }
  // Keys appear in both tables (else the test would show little).
  ASSERT_GT(split.unique_keys.size(), in.unique.unique_keys.size());

  // FWFM's pair weights follow the pooled order of the slots (table after
  // table): dense float j of the one-table model is float at_two[j] of the
  // two-table one (the same slot pair's weight, at its place there).
  std::vector<size_t> at_two(in.dense_params.size());
  for (size_t j = 0; j < at_two.size(); ++j) at_two[j] = j;
  if (one.has_fwfm) {
    ASSERT_EQ(two.fwfm.offset, one.fwfm.offset);
    const int fields = one.num_slots;
    for (int f = 0; f < fields; ++f) {
      for (int g = f + 1; g < fields; ++g) {
        const int pf = two.slot_offset[f] / dim, pg = two.slot_offset[g] / dim;
        at_two[one.fwfm.offset + FwFmPairIndex(fields, f, g)] =
            two.fwfm.offset +
            FwFmPairIndex(fields, std::min(pf, pg), std::max(pf, pg));
      }
    }
  }
  std::vector<float> two_params(in.dense_params.size());
  for (size_t j = 0; j < at_two.size(); ++j) {
    two_params[at_two[j]] = in.dense_params[j];
  }
  StepResult r1, r2;
  ASSERT_TRUE(model_one
                  .TrainStep(in.batch, in.unique.key_index,
                             in.unique.table_rows, in.rows, in.dense_params,
                             &r1)
                  .ok());
  const absl::Status status = model_two.TrainStep(
      in.batch, split.key_index, split.table_rows, rows, two_params, &r2);
  ASSERT_TRUE(status.ok()) << status;
  // Sums in another order: float rounding only.
  ASSERT_EQ(r2.probs.size(), r1.probs.size());
  for (size_t i = 0; i < r1.probs.size(); ++i) {
    EXPECT_NEAR(r2.probs[i], r1.probs[i], 1e-6) << "example " << i;
  }
  EXPECT_NEAR(r2.loss_sum, r1.loss_sum, 1e-5);
  ASSERT_EQ(r2.dense_grad.size(), r1.dense_grad.size());
  for (size_t j = 0; j < r1.dense_grad.size(); ++j) {
    EXPECT_NEAR(r2.dense_grad[at_two[j]], r1.dense_grad[j], 1e-6)
        << "dense " << j;
  }
  std::vector<float> summed(in.rows.size(), 0.0f);
  for (size_t u = 0; u < split.unique_keys.size(); ++u) {
    const size_t row =
        std::find(in.unique.unique_keys.begin(), in.unique.unique_keys.end(),
                  split.unique_keys[u]) -
        in.unique.unique_keys.begin();
    for (int d = 0; d < dim; ++d)
      summed[row * dim + d] += r2.row_grad[u * dim + d];
  }
  for (size_t j = 0; j < summed.size(); ++j) {
    EXPECT_NEAR(summed[j], r1.row_grad[j], 1e-6) << "row float " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, SlotTablesTest,
    ::testing::Values(ModelConfig::LR, ModelConfig::DNN, ModelConfig::FM,
                      ModelConfig::FWFM, ModelConfig::WIDE_DEEP,
                      ModelConfig::DEEPFM, ModelConfig::DCN),
    [](const ::testing::TestParamInfo<ModelConfig::Type>& info) {
      return ModelConfig::Type_Name(info.param);
    });

TEST(SlotTablesValidationTest, RowCountsMustMatchTheTables) {
  ModelConfig config;
  config.set_type(ModelConfig::DNN);
  const ModelSpec spec =
      testing_util::SpecOfTables(config, {{4, {}}, {2, {1, 3}}});
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = MakeInputs(spec, 4, 3);
  StepResult result;
  // One count for a two-table model.
  const int64_t all = static_cast<int64_t>(in.unique.unique_keys.size());
  EXPECT_THAT(model.TrainStep(in.batch, in.unique.key_index, all, in.rows,
                              in.dense_params, &result),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("row counts given for 1 table(s) but DNN "
                                 "model reads 2")));
  // An index past its own table's rows (but within the other's).
  std::vector<int64_t> counts = in.unique.table_rows;
  std::vector<uint32_t> index = in.unique.key_index;
  const uint32_t first_of_slot_1 = in.batch.offsets[1];
  ASSERT_LT(first_of_slot_1, in.batch.offsets[2]);  // slot 1 has a key
  index[first_of_slot_1] = static_cast<uint32_t>(counts[1]);
  EXPECT_THAT(model.TrainStep(in.batch, index, counts, in.rows, in.dense_params,
                              &result),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unique rows of table 1 (slot 1)")));
}

}  // namespace
}  // namespace ps
