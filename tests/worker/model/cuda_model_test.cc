// The worker's Model (worker/model/model.h) on a device backend against the
// same Model on the CPU backend: one full training step of every model type
// (loss, probabilities, dense and sparse gradients), a short training run
// on planted data (the AUC reached), and that run again with the dense
// optimizer on the backend (GEO's way; the same AUC exactly). The suite
// runs for
//  - "cuda": the CUDA backend used directly, as workers do (the model is
//    device-resident);
//  - "staging_cuda": the CUDA backend behind the staging layer
//    (tests/testing/staging_backend.h), which host-memory callers use;
// both skipped with a message without CUDA or without a usable GPU; and
// everywhere for
//  - "checking_cpu": the CPU kernels on memory that behaves like device
//    memory (tests/testing/checking_backend.h), failing on any operand that
//    is not backend memory;
//  - "staging_cpu", which checks the staging layer's operand extents on the
//    real model code.
//
// Tolerances (ExpectClose): every
// value within 2e-4 * (the largest magnitude of its vector) + 1e-6 of the
// CPU's (FP32 rounding through a few layers of differently ordered sums);
// the loss sum within 1e-4 relative; the training run's AUCs within 0.005.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/model_spec.h"
#include "gtest/gtest.h"
#include "kernels/auc.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "tests/testing/checking_backend.h"
#include "tests/testing/kernel_test_util.h"
#include "tests/testing/model_test_util.h"
#include "tests/testing/staging_backend.h"
#include "worker/data/batch.h"
#include "worker/model/model.h"

namespace ps {
namespace {

struct ModelCase {
  std::string name;
  ModelConfig::Type type;
  int dim;
  std::vector<int> hidden;
  int cross_layers = -1;
};

ModelSpec MakeSpec(const ModelCase& c) {
  ModelConfig model;
  model.set_type(c.type);
  for (int units : c.hidden) model.add_hidden_units(units);
  if (c.cross_layers >= 0) model.set_cross_layers(c.cross_layers);
  return testing_util::SpecOf(model, c.dim);
}

class CudaModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    cpu_ = testing_util::MakeBackend();
    if (GetParam() == "staging_cpu") {
      device_ = std::make_unique<StagingBackend>(testing_util::MakeBackend());
      return;
    }
    if (GetParam() == "checking_cpu") {
      auto checking = std::make_unique<testing_util::CheckingBackend>(
          testing_util::MakeBackend());
      checking_ = checking.get();
      device_ = std::move(checking);
      return;
    }
    if (!BuiltWithCuda()) {
      GTEST_SKIP() << "CUDA model tests skipped: built without CUDA";
    }
    auto gpus = ListGpus();
    ASSERT_TRUE(gpus.ok()) << gpus.status();
    if (gpus->empty()) {
      GTEST_SKIP() << "CUDA model tests skipped: no usable GPU ("
                   << DescribeAccelerators() << ")";
    }
    auto cuda = Backend::CreateCuda(BackendOptions{});
    ASSERT_TRUE(cuda.ok()) << cuda.status();
    device_ = std::move(cuda).value();
    if (GetParam() == "staging_cuda") {
      device_ = std::make_unique<StagingBackend>(std::move(device_));
    }
  }

  void TearDown() override {
    if (checking_ == nullptr) return;
    for (const std::string& v : checking_->violations()) ADD_FAILURE() << v;
  }

  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<Backend> device_;
  testing_util::CheckingBackend* checking_ = nullptr;  // in device_, if so
};

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float scale = 0.0f;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 2e-4 * scale + 1e-6) << what << " at " << i;
  }
}

TEST_P(CudaModelTest, TrainStepMatchesCpu) {
  const ModelCase cases[] = {
      {"lr", ModelConfig::LR, 1, {}},
      {"fm", ModelConfig::FM, 5, {}},
      {"fwfm", ModelConfig::FWFM, 5, {}},
      {"dnn", ModelConfig::DNN, 8, {64, 32}},
      {"wide_deep", ModelConfig::WIDE_DEEP, 5, {7}},
      {"deepfm", ModelConfig::DEEPFM, 9, {65, 1}},
      {"dcn", ModelConfig::DCN, 4, {16}, 2},
  };
  for (const ModelCase& c : cases) {
    const ModelSpec spec = MakeSpec(c);
    for (int batch : {1, 7, 65, 1000}) {
      for (PoolMode mode : {PoolMode::kSum, PoolMode::kMean}) {
        testing_util::InputScale scale;
        if (c.type == ModelConfig::FM || c.type == ModelConfig::FWFM ||
            c.type == ModelConfig::DEEPFM || c.type == ModelConfig::DCN) {
          scale = {0.1f, 0.1f};
        }
        const testing_util::StepInputs in =
            testing_util::MakeInputs(spec, batch, 100 + batch, scale);
        Model cpu_model(spec, mode, cpu_.get());
        Model device_model(spec, mode, device_.get());
        StepResult want, got;
        const int64_t num_unique = in.unique.unique_keys.size();
        ASSERT_TRUE(cpu_model
                        .TrainStep(in.batch, in.unique.key_index, num_unique,
                                   in.rows, in.dense_params, &want)
                        .ok());
        ASSERT_TRUE(device_model
                        .TrainStep(in.batch, in.unique.key_index, num_unique,
                                   in.rows, in.dense_params, &got)
                        .ok());
        absl::Status status = device_->Synchronize();
        ASSERT_TRUE(status.ok()) << status;
        const std::string what = c.name + " batch " + std::to_string(batch) +
                                 (mode == PoolMode::kSum ? " sum" : " mean");
        EXPECT_NEAR(got.loss_sum, want.loss_sum,
                    1e-4 * std::fabs(want.loss_sum) + 1e-6)
            << what;
        ExpectClose(got.probs, want.probs, "probs of " + what);
        ExpectClose(got.dense_grad, want.dense_grad, "dense grad of " + what);
        ExpectClose(got.row_grad, want.row_grad, "row grad of " + what);
      }
    }
  }
}

// Planted data: one key per slot (a slot is empty with probability 1/5)
// from a vocabulary of 40 per slot with weights N(0, 0.6); label ~
// Bernoulli(sigmoid(sum of the weights)).
Batch PlantedBatch(const ModelSpec& spec, int size, std::mt19937* rng) {
  std::uniform_int_distribution<int> vocab(0, 39);
  std::uniform_int_distribution<int> empty(0, 4);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  Batch b;
  b.num_slots = spec.num_slots;
  b.num_dense = spec.num_dense;
  for (int i = 0; i < size; ++i) {
    double logit = 0;
    for (int s = 0; s < spec.num_slots; ++s) {
      if (empty(*rng) != 0) {
        const uint64_t key = uint64_t{1000} * s + vocab(*rng);
        std::mt19937 weight_rng(static_cast<uint32_t>(key * 7919 + 1));
        logit += std::normal_distribution<float>(0.0f, 0.6f)(weight_rng);
        b.keys.push_back(key);
      }
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
    for (int d = 0; d < spec.num_dense; ++d) {
      b.dense.push_back(uniform(*rng));
    }
    b.labels.push_back(uniform(*rng) < 1.0 / (1.0 + std::exp(-logit)) ? 1.0f
                                                                      : 0.0f);
  }
  return b;
}

// Progressive-validation AUC of `steps` SGD steps of a DNN on planted data.
// The dense vector is updated on the host and handed over with every step,
// or, with `dense_on_backend`, by the model's dense optimizer (GEO's way).
double TrainAuc(Backend* backend, int steps, bool dense_on_backend = false) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {32, 16}});
  Model model(spec, PoolMode::kSum, backend);
  std::vector<float> dense(spec.dense_size);
  for (int64_t j = 0; j < spec.dense_size; ++j) {
    dense[j] = DenseInitValue(spec, 1, j);
  }
  if (dense_on_backend) {
    OptimizerConfig sgd;
    sgd.set_type(OptimizerConfig::SGD);
    sgd.set_learning_rate(0.2f);
    absl::Status status = model.SetDenseOptimizer(sgd);
    if (status.ok()) status = model.SetDenseParams(dense);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) return 0;
  }
  std::unordered_map<uint64_t, std::vector<float>> table;
  std::mt19937 rng(5);
  AucAccumulator auc;
  StepResult result;
  for (int step = 0; step < steps; ++step) {
    const Batch batch = PlantedBatch(spec, 253, &rng);
    const UniqueKeys unique = Deduplicate(batch);
    std::vector<float> rows;
    for (uint64_t key : unique.unique_keys) {
      auto [it, fresh] = table.try_emplace(key);
      if (fresh) {
        std::mt19937 init(static_cast<uint32_t>(key));
        it->second = RandomVector(spec.emb_dim, &init, -0.05f, 0.05f);
      }
      rows.insert(rows.end(), it->second.begin(), it->second.end());
    }
    absl::Status status =
        dense_on_backend
            ? model.TrainStep(batch, unique.key_index,
                              unique.unique_keys.size(), rows, &result)
            : model.TrainStep(batch, unique.key_index,
                              unique.unique_keys.size(), rows, dense, &result);
    if (status.ok()) status = backend->Synchronize();
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) return 0;
    if (step >= steps / 2) {
      for (int i = 0; i < batch.size(); ++i) {
        auc.Add(result.probs[i], batch.labels[i]);
      }
    }
    for (int64_t j = 0; j < spec.dense_size && !dense_on_backend; ++j) {
      dense[j] -= 0.2f * result.dense_grad[j];
    }
    for (size_t u = 0; u < unique.unique_keys.size(); ++u) {
      std::vector<float>& row = table[unique.unique_keys[u]];
      for (int d = 0; d < spec.emb_dim; ++d) {
        row[d] -= 8.0f * result.row_grad[u * spec.emb_dim + d];
      }
    }
  }
  return auc.Auc();
}

TEST_P(CudaModelTest, ShortTrainingRunReachesTheCpuAuc) {
  constexpr int kSteps = 200;
  const double cpu_auc = TrainAuc(cpu_.get(), kSteps);
  const double device_auc = TrainAuc(device_.get(), kSteps);
  RecordProperty("cpu_auc", std::to_string(cpu_auc));
  RecordProperty("device_auc", std::to_string(device_auc));
  EXPECT_GT(cpu_auc, 0.8) << "the DNN did not learn the planted model";
  EXPECT_NEAR(device_auc, cpu_auc, 0.005);
}

// The same run with the dense optimizer on the backend (its SGD rounds as
// the host's w -= 0.2f * g: the device kernel has no FMA contraction) gives
// the same predictions, so the same AUC.
TEST_P(CudaModelTest, DenseOptimizerOnTheBackendTrainsAsOnTheHost) {
  constexpr int kSteps = 40;
  const double host_dense = TrainAuc(device_.get(), kSteps);
  const double backend_dense = TrainAuc(device_.get(), kSteps, true);
  EXPECT_GT(host_dense, 0.6);
  EXPECT_EQ(backend_dense, host_dense);
}

INSTANTIATE_TEST_SUITE_P(Backends, CudaModelTest,
                         ::testing::Values("staging_cpu", "checking_cpu",
                                           "staging_cuda", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ps
