// Every model's analytic gradient (dense parameters and sparse row values)
// checked against central finite differences of the mean loss, with sum and
// mean pooling: LR, DNN, FM, WIDE_DEEP over a subset of slots, DEEPFM, and
// DCN with and without hidden layers; and models over several tables, with
// mixed dims where the model allows them.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
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
using testing_util::NumericGrad;
using testing_util::StepInputs;

struct ModelCase {
  std::string name;
  ModelConfig::Type type = ModelConfig::DNN;
  int dim = 0;
  std::vector<int> hidden;
  std::vector<int> wide_slots = {};
  std::vector<int> deep_slots = {};
  int cross_layers = -1;  // -1: unset
  ModelConfig::Activation activation = ModelConfig::RELU;
  testing_util::InputScale scale = {};
  // Row floats with a clearly non-zero gradient, at least; lower where
  // parts of rows or whole slots are read by no term.
  double significant_rows = 0.5;
  // More tables (model.slot_tables): their dims and slots; the rest of the
  // slots read a table of `dim`.
  std::vector<testing_util::TableSlots> more_tables = {};
};

// NORMALIZE data: 26 slots and 13 dense features.
ModelSpec MakeSpec(const ModelCase& c) {
  ModelConfig model;
  model.set_type(c.type);
  model.set_activation(c.activation);
  for (int units : c.hidden) model.add_hidden_units(units);
  for (int slot : c.wide_slots) model.add_wide_slots(slot);
  for (int slot : c.deep_slots) model.add_deep_slots(slot);
  if (c.cross_layers >= 0) model.set_cross_layers(c.cross_layers);
  if (c.more_tables.empty()) return testing_util::SpecOf(model, c.dim);
  std::vector<testing_util::TableSlots> tables = {{c.dim, {}}};
  tables.insert(tables.end(), c.more_tables.begin(), c.more_tables.end());
  return testing_util::SpecOfTables(model, tables);
}

std::vector<ModelCase> Cases() {
  std::vector<ModelCase> cases;
  // The returned reference is valid until the next call.
  auto add = [&cases](std::string name, ModelConfig::Type type, int dim,
                      std::vector<int> hidden) -> ModelCase& {
    ModelCase c;
    c.name = std::move(name);
    c.type = type;
    c.dim = dim;
    c.hidden = std::move(hidden);
    cases.push_back(std::move(c));
    return cases.back();
  };
  // Products of inputs (FM, DCN) need smaller inputs, or float logits grow
  // too large for finite differences.
  const testing_util::InputScale small_rows{0.2f, 1.0f};
  const testing_util::InputScale small_inputs{0.2f, 0.2f};

  add("Lr", ModelConfig::LR, 1, {});
  add("Dnn", ModelConfig::DNN, 4, {5, 3});
  add("DnnTanh", ModelConfig::DNN, 3, {4}).activation = ModelConfig::TANH;
  add("Fm", ModelConfig::FM, 4, {}).scale = small_rows;
  add("FwFm", ModelConfig::FWFM, 4, {}).scale = small_rows;
  {
    // Wide and deep over different, partly overlapping slot subsets (the
    // other slots' rows get no gradient); the deep slots are out of order,
    // with runs (2, 3, 4) and (10, 11).
    ModelCase& c = add("WideDeepSubsets", ModelConfig::WIDE_DEEP, 4, {5});
    c.wide_slots = {0, 3, 7, 25};
    c.deep_slots = {2, 3, 4, 10, 11, 1};
    c.significant_rows = 0.3;
  }
  add("WideDeepAllSlots", ModelConfig::WIDE_DEEP, 3, {4, 3});
  add("DeepFm", ModelConfig::DEEPFM, 4, {5, 3}).scale = small_rows;
  {
    ModelCase& c = add("DeepFmSigmoid", ModelConfig::DEEPFM, 3, {4});
    c.activation = ModelConfig::SIGMOID;
    c.scale = small_rows;
  }
  {
    ModelCase& c = add("DcnCross2Hidden", ModelConfig::DCN, 3, {4});
    c.cross_layers = 2;
    c.scale = small_inputs;
  }
  {
    ModelCase& c = add("DcnCross2NoHidden", ModelConfig::DCN, 3, {});
    c.cross_layers = 2;
    c.scale = small_inputs;
  }
  {
    ModelCase& c = add("DcnNoCross", ModelConfig::DCN, 3, {4});
    c.cross_layers = 0;
    c.scale = small_inputs;
  }
  // Several tables: slots of one table are not consecutive, so the pooled
  // row (table after table) is a permutation of the slots; dims differ
  // where the model allows.
  const std::vector<testing_util::TableSlots> mixed = {{2, {1, 5, 9, 20}},
                                                       {6, {0, 3, 4, 25}}};
  add("LrThreeTables", ModelConfig::LR, 1, {}).more_tables = {
      {1, {1, 5, 9, 20}}, {1, {0, 3, 4, 25}}};
  add("DnnMixedDims", ModelConfig::DNN, 4, {5, 3}).more_tables = mixed;
  {
    ModelCase& c = add("WideDeepMixedDims", ModelConfig::WIDE_DEEP, 4, {5});
    c.wide_slots = {0, 3, 7, 25};
    c.deep_slots = {2, 3, 4, 10, 11, 1, 5};
    c.significant_rows = 0.3;
    c.more_tables = {{3, {1, 5, 9, 20}}, {6, {0, 3, 4, 25}}};
  }
  {
    ModelCase& c = add("DeepFmTwoTables", ModelConfig::DEEPFM, 4, {5});
    c.scale = small_rows;
    c.more_tables = {{4, {0, 3, 4, 25, 7}}};
  }
  {
    ModelCase& c = add("DcnMixedDims", ModelConfig::DCN, 3, {4});
    c.cross_layers = 2;
    c.scale = small_inputs;
    c.more_tables = mixed;
  }
  return cases;
}

using GradCase = std::tuple<ModelCase, PoolMode>;

class ModelGradientTest : public ::testing::TestWithParam<GradCase> {};

TEST_P(ModelGradientTest, AnalyticGradientMatchesFiniteDifferences) {
  const auto& [model_case, pooling] = GetParam();
  const ModelSpec spec = MakeSpec(model_case);
  ASSERT_EQ(spec.num_slots, 26);
  ASSERT_EQ(spec.num_dense, 13);
  auto backend = MakeBackend();
  Model model(spec, pooling, backend.get());
  StepInputs in = MakeInputs(spec, 6, 41, model_case.scale);
  // Repeated keys: fewer unique rows than key occurrences.
  ASSERT_LT(in.unique.unique_keys.size(), in.batch.keys.size());

  StepResult result;
  const absl::Status status =
      model.TrainStep(in.batch, in.unique.key_index, in.unique.table_rows,
                      in.rows, in.dense_params, &result);
  ASSERT_TRUE(status.ok()) << status;
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
  const std::vector<int64_t> at = RowFloatOffsets(spec, in.unique.table_rows);
  for (size_t j = 0; j < rows.size(); ++j) {
    const double numeric = NumericGrad(&model, in, &rows, &dense, &rows, j);
    int t = 0;
    while (static_cast<int64_t>(j) >= at[t + 1]) ++t;
    const int dim = spec.tables[t].dim;
    const int64_t row = (static_cast<int64_t>(j) - at[t]) / dim;
    ExpectGradClose(
        numeric, result.row_grad[j],
        "row float " + std::to_string(j) + " (table " + std::to_string(t) +
            ", key " +
            std::to_string(
                in.unique.unique_keys[in.unique.TableBegin(t) + row]) +
            ", element " +
            std::to_string((static_cast<int64_t>(j) - at[t]) % dim) + ")");
    if (std::abs(numeric) > 1e-3) ++significant_rows;
  }
  // The check means something only if many gradients are far from zero
  // (ReLU units dead on all 6 examples zero whole columns of W_0).
  EXPECT_GT(significant_dense, static_cast<int>(dense.size()) / 6);
  EXPECT_GT(significant_rows,
            static_cast<int>(rows.size() * model_case.significant_rows));
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, ModelGradientTest,
    ::testing::Combine(::testing::ValuesIn(Cases()),
                       ::testing::Values(PoolMode::kSum, PoolMode::kMean,
                                         PoolMode::kSqrtN)),
    [](const ::testing::TestParamInfo<GradCase>& info) {
      return std::get<0>(info.param).name +
             (std::get<1>(info.param) == PoolMode::kSum    ? "Sum"
              : std::get<1>(info.param) == PoolMode::kMean ? "Mean"
                                                           : "SqrtN");
    });

}  // namespace
}  // namespace ps
