// Helpers shared by the model tests (tests/worker/model*_test.cc): a CPU
// backend, the inputs of one step with repeated keys, and central finite
// differences of a model's mean loss.
#ifndef PS_TESTS_TESTING_MODEL_TEST_UTIL_H_
#define PS_TESTS_TESTING_MODEL_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "worker/data/batch.h"
#include "worker/model/model.h"

namespace ps {
namespace testing_util {

// The spec of `model` (its type and layers; the sparse table is set here)
// over sparse table "emb" of `dim` floats, on Criteo-shaped data with
// integer features `ints`.
inline ModelSpec SpecOf(ModelConfig model, int dim,
                        DataConfig::IntFeatures ints = DataConfig::NORMALIZE) {
  JobConfig config;
  SparseTableConfig* table = config.add_sparse_tables();
  table->set_name("emb");
  table->set_dim(dim);
  model.set_sparse_table("emb");
  *config.mutable_model() = std::move(model);
  config.mutable_data()->set_int_features(ints);
  return MakeModelSpec(config);
}

// A sparse table of a multi-table spec and the slots mapped to it.
struct TableSlots {
  int dim = 0;
  std::vector<int> slots;
};

// As SpecOf, over several tables "emb0", "emb1", ...: tables[0] is
// model.sparse_table (its `slots` are ignored: it gets every slot not mapped
// elsewhere), the others are model.slot_tables entries.
inline ModelSpec SpecOfTables(
    ModelConfig model, const std::vector<TableSlots>& tables,
    DataConfig::IntFeatures ints = DataConfig::NORMALIZE) {
  JobConfig config;
  for (size_t t = 0; t < tables.size(); ++t) {
    SparseTableConfig* table = config.add_sparse_tables();
    table->set_name("emb" + std::to_string(t));
    table->set_dim(tables[t].dim);
    if (t == 0) continue;
    SlotTableConfig* group = model.add_slot_tables();
    group->set_table(table->name());
    for (int s : tables[t].slots) group->add_slots(s);
  }
  model.set_sparse_table("emb0");
  *config.mutable_model() = std::move(model);
  config.mutable_data()->set_int_features(ints);
  return MakeModelSpec(config);
}

inline std::unique_ptr<Backend> MakeBackend() {
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

// Magnitudes of the inputs: row floats are U(-row_scale, row_scale), dense
// features dense_scale * log(1 + max(v, 0)) for v in [-1, 300]. Models with
// products of inputs (FM, DCN) need smaller ones, or their float logits
// grow too large for finite differences.
struct InputScale {
  float row_scale = 0.5f;
  float dense_scale = 1.0f;
};

inline StepInputs MakeInputs(const ModelSpec& spec, int batch_size,
                             uint32_t seed, InputScale scale = {}) {
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
      b.dense.push_back(scale.dense_scale * std::log1p(static_cast<float>(
                                                std::max(raw_int(rng), 0))));
    }
  }
  in.unique =
      Deduplicate(b, spec.slot_table, static_cast<int>(spec.tables.size()));
  in.rows.resize(RowFloatOffsets(spec, in.unique.table_rows).back());
  for (float& x : in.rows) x = 2.0f * scale.row_scale * uniform(rng);
  in.dense_params.resize(spec.dense_size);
  for (int64_t j = 0; j < spec.dense_size; ++j) {
    in.dense_params[j] = DenseInitValue(spec, seed, j) + 0.1f * uniform(rng);
  }
  return in;
}

inline double MeanLoss(Model* model, const StepInputs& in,
                       const std::vector<float>& rows,
                       const std::vector<float>& dense_params) {
  StepResult result;
  absl::Status status =
      model->Predict(in.batch, in.unique.key_index, in.unique.table_rows, rows,
                     dense_params, &result);
  EXPECT_TRUE(status.ok()) << status;
  return result.loss_sum / in.batch.size();
}

// Central difference of the mean loss in one float of `params`.
inline double NumericGrad(Model* model, const StepInputs& in,
                          std::vector<float>* rows, std::vector<float>* dense,
                          std::vector<float>* params, size_t j) {
  constexpr float kEps = 1e-3f;
  const float saved = (*params)[j];
  (*params)[j] = saved + kEps;
  const double plus = MeanLoss(model, in, *rows, *dense);
  (*params)[j] = saved - kEps;
  const double minus = MeanLoss(model, in, *rows, *dense);
  (*params)[j] = saved;
  return (plus - minus) / (2.0 * kEps);
}

inline void ExpectGradClose(double numeric, double analytic,
                            const std::string& what) {
  const double tol =
      2e-2 * std::max(std::abs(numeric), std::abs(analytic)) + 2e-4;
  EXPECT_NEAR(analytic, numeric, tol) << what;
}

}  // namespace testing_util
}  // namespace ps

#endif  // PS_TESTS_TESTING_MODEL_TEST_UTIL_H_
