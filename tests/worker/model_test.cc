// Model (LR and DNN): gradients checked by central finite differences of the
// mean loss, hand values, and every input validation error.
#include "worker/model.h"

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
#include "worker/batch.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

ModelSpec MakeSpec(ModelConfig::Type type, DataConfig::IntFeatures ints) {
  JobConfig config;
  auto* table = config.add_sparse_tables();
  table->set_name("emb");
  table->set_dim(type == ModelConfig::LR ? 1 : 4);
  config.mutable_model()->set_type(type);
  config.mutable_model()->set_sparse_table("emb");
  if (type == ModelConfig::DNN) {
    config.mutable_model()->add_hidden_units(5);
    config.mutable_model()->add_hidden_units(3);
  }
  config.mutable_data()->set_int_features(ints);
  return MakeModelSpec(config);
}

std::unique_ptr<Backend> MakeBackend() {
  auto backend = Backend::CreateCpu(BackendOptions{});
  EXPECT_TRUE(backend.ok()) << backend.status();
  return std::move(backend).value();
}

// Everything a step needs, with keys drawn from a small vocabulary so that
// keys repeat across examples (and sometimes within a slot), and slot key
// counts cycling through 0, 1 and 2.
struct StepInputs {
  Batch batch;
  UniqueKeys unique;
  std::vector<float> rows;
  std::vector<float> dense_params;
};

StepInputs MakeInputs(const ModelSpec& spec, int batch_size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
  std::uniform_int_distribution<uint64_t> vocab(1, 12);
  std::uniform_int_distribution<int> raw_int(-1, 300);
  StepInputs in;
  Batch& b = in.batch;
  b.num_slots = spec.num_slots;
  b.num_dense = spec.num_dense;
  for (int i = 0; i < batch_size; ++i) {
    b.labels.push_back(static_cast<float>(i % 2));
    for (int s = 0; s < spec.num_slots; ++s) {
      const int count = (i + s) % 3;
      for (int k = 0; k < count; ++k)
        b.keys.push_back(vocab(rng) * 100 + s % 4);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
    // NORMALIZE: log(1 + max(v, 0)), missing (here -1) is 0.
    for (int d = 0; d < spec.num_dense; ++d) {
      b.dense.push_back(
          std::log1p(static_cast<float>(std::max(raw_int(rng), 0))));
    }
  }
  in.unique = Deduplicate(b);
  in.rows.resize(in.unique.unique_keys.size() * spec.emb_dim);
  for (float& x : in.rows) x = uniform(rng);
  in.dense_params.resize(spec.dense_size);
  for (int64_t j = 0; j < spec.dense_size; ++j) {
    in.dense_params[j] = DenseInitValue(spec, seed, j) + 0.1f * uniform(rng);
  }
  return in;
}

double MeanLoss(Model* model, const StepInputs& in,
                const std::vector<float>& rows,
                const std::vector<float>& dense_params) {
  StepResult result;
  absl::Status status =
      model->Predict(in.batch, in.unique.key_index,
                     in.unique.unique_keys.size(), rows, dense_params, &result);
  EXPECT_TRUE(status.ok()) << status;
  return result.loss_sum / in.batch.size();
}

// Central difference of the mean loss in one float of `params`.
double NumericGrad(Model* model, const StepInputs& in, std::vector<float>* rows,
                   std::vector<float>* dense, std::vector<float>* params,
                   size_t j) {
  constexpr float kEps = 1e-3f;
  const float saved = (*params)[j];
  (*params)[j] = saved + kEps;
  const double plus = MeanLoss(model, in, *rows, *dense);
  (*params)[j] = saved - kEps;
  const double minus = MeanLoss(model, in, *rows, *dense);
  (*params)[j] = saved;
  return (plus - minus) / (2.0 * kEps);
}

void ExpectGradClose(double numeric, double analytic, const std::string& what) {
  const double tol =
      2e-2 * std::max(std::abs(numeric), std::abs(analytic)) + 2e-4;
  EXPECT_NEAR(analytic, numeric, tol) << what;
}

using GradCase = std::tuple<ModelConfig::Type, PoolMode>;

class ModelGradientTest : public ::testing::TestWithParam<GradCase> {};

TEST_P(ModelGradientTest, AnalyticGradientMatchesFiniteDifferences) {
  const auto [type, pooling] = GetParam();
  const ModelSpec spec = MakeSpec(type, DataConfig::NORMALIZE);
  ASSERT_EQ(spec.num_slots, 26);
  ASSERT_EQ(spec.num_dense, 13);
  auto backend = MakeBackend();
  Model model(spec, pooling, backend.get());
  StepInputs in = MakeInputs(spec, 6, 41);
  // Repeated keys: fewer unique rows than key occurrences.
  ASSERT_LT(in.unique.unique_keys.size(), in.batch.keys.size());

  StepResult result;
  ASSERT_TRUE(model
                  .TrainStep(in.batch, in.unique.key_index,
                             in.unique.unique_keys.size(), in.rows,
                             in.dense_params, &result)
                  .ok());
  ASSERT_EQ(result.probs.size(), 6u);
  ASSERT_EQ(result.dense_grad.size(), static_cast<size_t>(spec.dense_size));
  ASSERT_EQ(result.row_grad.size(), in.rows.size());
  EXPECT_NEAR(result.loss_sum / 6,
              MeanLoss(&model, in, in.rows, in.dense_params), 1e-9);

  std::vector<float> rows = in.rows, dense = in.dense_params;
  int significant_dense = 0, significant_rows = 0;
  for (size_t j = 0; j < dense.size(); ++j) {
    const double numeric = NumericGrad(&model, in, &rows, &dense, &dense, j);
    ExpectGradClose(numeric, result.dense_grad[j],
                    "dense param " + std::to_string(j));
    if (std::abs(numeric) > 1e-3) ++significant_dense;
  }
  for (size_t j = 0; j < rows.size(); ++j) {
    const double numeric = NumericGrad(&model, in, &rows, &dense, &rows, j);
    ExpectGradClose(
        numeric, result.row_grad[j],
        "row float " + std::to_string(j) + " (key " +
            std::to_string(in.unique.unique_keys[j / spec.emb_dim]) + ")");
    if (std::abs(numeric) > 1e-3) ++significant_rows;
  }
  // The check means something only if many gradients are far from zero
  // (ReLU units dead on all 6 examples zero whole columns of W_0).
  EXPECT_GT(significant_dense, static_cast<int>(dense.size()) / 6);
  EXPECT_GT(significant_rows, static_cast<int>(rows.size()) / 2);
}

INSTANTIATE_TEST_SUITE_P(
    LrAndDnn, ModelGradientTest,
    ::testing::Combine(::testing::Values(ModelConfig::LR, ModelConfig::DNN),
                       ::testing::Values(PoolMode::kSum, PoolMode::kMean)),
    [](const ::testing::TestParamInfo<GradCase>& info) {
      return std::string(std::get<0>(info.param) == ModelConfig::LR ? "Lr"
                                                                    : "Dnn") +
             (std::get<1>(info.param) == PoolMode::kSum ? "Sum" : "Mean");
    });

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
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message));
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

}  // namespace
}  // namespace ps
