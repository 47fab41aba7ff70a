// Dropout in the deep part (ModelConfig.dropout): with the step and seed
// fixed, the training loss is a fixed function of the parameters, and the
// analytic gradient matches its central finite differences; evaluation
// (Predict) is exactly the model without dropout; the masks change with the
// step and the seed and repeat with them.
#include <cmath>
#include <string>
#include <vector>

#include "common/model_spec.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/testing/model_test_util.h"
#include "worker/model/model.h"

namespace ps {
namespace {

using testing_util::ExpectGradClose;
using testing_util::MakeBackend;
using testing_util::MakeInputs;
using testing_util::MeanLoss;
using testing_util::StepInputs;

ModelSpec DnnSpec(float dropout, ModelConfig::Activation activation) {
  ModelConfig model;
  model.set_type(ModelConfig::DNN);
  model.set_activation(activation);
  model.add_hidden_units(8);
  model.add_hidden_units(6);
  model.set_dropout(dropout);
  return testing_util::SpecOf(model, 4);
}

StepResult Train(Model* model, const StepInputs& in,
                 const std::vector<float>& rows,
                 const std::vector<float>& dense) {
  StepResult result;
  const absl::Status status =
      model->TrainStep(in.batch, in.unique.key_index,
                       in.unique.unique_keys.size(), rows, dense, &result);
  EXPECT_TRUE(status.ok()) << status;
  return result;
}

double TrainLoss(Model* model, const StepInputs& in,
                 const std::vector<float>& rows,
                 const std::vector<float>& dense) {
  return Train(model, in, rows, dense).loss_sum / in.batch.size();
}

// Central difference of the training loss (masks fixed by step and seed).
double NumericTrainGrad(Model* model, const StepInputs& in,
                        std::vector<float>* rows, std::vector<float>* dense,
                        std::vector<float>* params, size_t j) {
  constexpr float kEps = 1e-3f;
  const float saved = (*params)[j];
  (*params)[j] = saved + kEps;
  const double plus = TrainLoss(model, in, *rows, *dense);
  (*params)[j] = saved - kEps;
  const double minus = TrainLoss(model, in, *rows, *dense);
  (*params)[j] = saved;
  return (plus - minus) / (2.0 * kEps);
}

TEST(ModelDropoutTest, GradientMatchesFiniteDifferencesOfTheTrainingLoss) {
  const ModelSpec spec = DnnSpec(0.4f, ModelConfig::TANH);
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  model.SetStep(/*step=*/7, /*seed=*/3);
  StepInputs in = MakeInputs(spec, 6, 43);
  const StepResult result = Train(&model, in, in.rows, in.dense_params);
  // Dropout ran: the training loss is not the evaluation loss.
  EXPECT_GT(std::abs(result.loss_sum / 6 -
                     MeanLoss(&model, in, in.rows, in.dense_params)),
            1e-6);
  std::vector<float> rows = in.rows, dense = in.dense_params;
  int significant = 0;
  for (size_t j = 0; j < dense.size(); ++j) {
    const double numeric =
        NumericTrainGrad(&model, in, &rows, &dense, &dense, j);
    ExpectGradClose(numeric, result.dense_grad[j],
                    "dense param " + std::to_string(j));
    if (std::abs(numeric) > 1e-3) ++significant;
  }
  for (size_t j = 0; j < rows.size(); ++j) {
    const double numeric =
        NumericTrainGrad(&model, in, &rows, &dense, &rows, j);
    ExpectGradClose(numeric, result.row_grad[j],
                    "row float " + std::to_string(j));
  }
  EXPECT_GT(significant, static_cast<int>(dense.size()) / 6);
}

// Eval and predict use the layers as they are: Predict of a model with
// dropout equals, bit for bit, Predict of the same model without it.
TEST(ModelDropoutTest, PredictIsTheModelWithoutDropout) {
  const ModelSpec with = DnnSpec(0.5f, ModelConfig::RELU);
  const ModelSpec without = DnnSpec(0.0f, ModelConfig::RELU);
  ASSERT_EQ(with.dense_size, without.dense_size);
  auto backend = MakeBackend();
  Model a(with, PoolMode::kSum, backend.get());
  Model b(without, PoolMode::kSum, backend.get());
  a.SetStep(3, 1);
  const StepInputs in = MakeInputs(with, 9, 44);
  StepResult ra, rb;
  ASSERT_TRUE(a.Predict(in.batch, in.unique.key_index,
                        in.unique.unique_keys.size(), in.rows, in.dense_params,
                        &ra)
                  .ok());
  ASSERT_TRUE(b.Predict(in.batch, in.unique.key_index,
                        in.unique.unique_keys.size(), in.rows, in.dense_params,
                        &rb)
                  .ok());
  EXPECT_EQ(ra.probs, rb.probs);
  EXPECT_EQ(ra.loss_sum, rb.loss_sum);
  // A training step in between changes nothing for the next Predict.
  Train(&a, in, in.rows, in.dense_params);
  StepResult again;
  ASSERT_TRUE(a.Predict(in.batch, in.unique.key_index,
                        in.unique.unique_keys.size(), in.rows, in.dense_params,
                        &again)
                  .ok());
  EXPECT_EQ(again.probs, rb.probs);
  // Without dropout training ignores the step and the seed.
  b.SetStep(3, 1);
  const StepResult t1 = Train(&b, in, in.rows, in.dense_params);
  b.SetStep(4, 2);
  const StepResult t2 = Train(&b, in, in.rows, in.dense_params);
  EXPECT_EQ(t1.dense_grad, t2.dense_grad);
}

TEST(ModelDropoutTest, MasksRepeatWithStepAndSeedAndChangeWithEither) {
  const ModelSpec spec = DnnSpec(0.3f, ModelConfig::RELU);
  auto backend = MakeBackend();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = MakeInputs(spec, 16, 45);
  model.SetStep(10, 0);
  const StepResult first = Train(&model, in, in.rows, in.dense_params);
  const StepResult repeat = Train(&model, in, in.rows, in.dense_params);
  EXPECT_EQ(first.dense_grad, repeat.dense_grad);
  EXPECT_EQ(first.loss_sum, repeat.loss_sum);
  model.SetStep(11, 0);
  EXPECT_NE(Train(&model, in, in.rows, in.dense_params).dense_grad,
            first.dense_grad);
  model.SetStep(10, 1);  // another worker at the same step
  EXPECT_NE(Train(&model, in, in.rows, in.dense_params).dense_grad,
            first.dense_grad);
}

}  // namespace
}  // namespace ps
