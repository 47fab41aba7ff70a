// The worker's Model (worker/model/model.h) is device-resident: run on a
// backend whose Allocate memory behaves like device memory (CheckingBackend,
// which faults on any host access to it outside a backend call and checks every
// kernel operand), a step
//  - gives the CPU backend's results bit for bit (CheckingBackend runs the
//    CPU kernels themselves on the same shapes: the same code path);
//  - hands kernels only Allocate'd memory;
//  - copies host <-> backend a bounded number of times, independent of the
//    number of layers: one upload of the batch, four downloads (probs,
//    loss, dense gradient, row gradients) for TrainStep, two for Predict;
//    the dense parameters are uploaded by SetDenseParams only;
//  - allocates nothing once its buffers fit the batch;
// and backend errors (allocation, a failed kernel) come back as the step's
// Status.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/model_spec.h"
#include "common/optimizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/testing/checking_backend.h"
#include "tests/testing/model_test_util.h"
#include "tests/testing/status_matchers.h"
#include "worker/data/batch.h"
#include "worker/model/model.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::BackendCounts;
using testing_util::CheckingBackend;
using testing_util::MakeInputs;
using testing_util::StatusIs;
using testing_util::StepInputs;

struct ModelCase {
  std::string name;
  ModelConfig::Type type;
  int dim;
  std::vector<int> hidden;
  int cross_layers = -1;
  DataConfig::IntFeatures ints = DataConfig::NORMALIZE;
};

ModelSpec MakeSpec(const ModelCase& c) {
  ModelConfig model;
  model.set_type(c.type);
  for (int units : c.hidden) model.add_hidden_units(units);
  if (c.cross_layers >= 0) model.set_cross_layers(c.cross_layers);
  return testing_util::SpecOf(model, c.dim, c.ints);
}

const std::vector<ModelCase>& Cases() {
  static const auto* cases = new std::vector<ModelCase>{
      {"lr", ModelConfig::LR, 1, {}},
      {"fm", ModelConfig::FM, 5, {}},
      {"fwfm", ModelConfig::FWFM, 5, {}},
      {"dnn", ModelConfig::DNN, 8, {64, 32}},
      {"dnn_6_layers", ModelConfig::DNN, 8, {64, 32, 16, 16, 8, 4}},
      {"dnn_no_hidden", ModelConfig::DNN, 4, {}},
      {"wide_deep", ModelConfig::WIDE_DEEP, 5, {7}},
      {"deepfm", ModelConfig::DEEPFM, 9, {65, 1}},
      {"dcn", ModelConfig::DCN, 4, {16}, 2},
      {"dcn_cross_only", ModelConfig::DCN, 4, {}, 3},
      {"dnn_log_bucket", ModelConfig::DNN, 4, {8}, -1, DataConfig::LOG_BUCKET},
  };
  return *cases;
}

StepInputs Inputs(const ModelSpec& spec, int batch, uint32_t seed) {
  return MakeInputs(spec, batch, seed, testing_util::InputScale{0.1f, 0.1f});
}

std::unique_ptr<CheckingBackend> MakeChecking() {
  return std::make_unique<CheckingBackend>(testing_util::MakeBackend());
}

// The reference: the same step on the CPU backend, dense params per step.
StepResult CpuStep(const ModelSpec& spec, PoolMode mode, const StepInputs& in,
                   bool train) {
  auto cpu = testing_util::MakeBackend();
  Model model(spec, mode, cpu.get());
  StepResult result;
  const int64_t num_unique = in.unique.unique_keys.size();
  absl::Status status =
      train ? model.TrainStep(in.batch, in.unique.key_index, num_unique,
                              in.rows, in.dense_params, &result)
            : model.Predict(in.batch, in.unique.key_index, num_unique, in.rows,
                            in.dense_params, &result);
  EXPECT_TRUE(status.ok()) << status;
  return result;
}

void ExpectSameResult(const StepResult& got, const StepResult& want,
                      const std::string& what) {
  EXPECT_EQ(got.probs, want.probs) << what;
  EXPECT_EQ(got.loss_sum, want.loss_sum) << what;
  EXPECT_EQ(got.dense_grad, want.dense_grad) << what;
  EXPECT_EQ(got.row_grad, want.row_grad) << what;
}

void ExpectNoViolations(const CheckingBackend& backend,
                        const std::string& what) {
  for (const std::string& v : backend.violations()) {
    ADD_FAILURE() << what << ": " << v;
  }
}

// The steady state of training: dense parameters set once, then steps of a
// batch size seen before.
TEST(ModelDeviceTest, TrainStepCopiesOnlyAtTheBoundaries) {
  for (const ModelCase& c : Cases()) {
    const ModelSpec spec = MakeSpec(c);
    for (PoolMode mode : {PoolMode::kSum, PoolMode::kMean}) {
      const std::string what =
          c.name + (mode == PoolMode::kSum ? " sum" : " mean");
      auto backend = MakeChecking();
      {
        Model model(spec, mode, backend.get());
        // Batch sizes: growing, then smaller and repeated (no allocation).
        const int sizes[] = {7, 65, 33, 65};
        for (int step = 0; step < 4; ++step) {
          const std::string at = what + " step " + std::to_string(step);
          const StepInputs in = Inputs(spec, sizes[step], 100 + step);
          const int64_t num_unique = in.unique.unique_keys.size();
          backend->ResetCounts();
          if (step == 0) {
            ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok()) << at;
            EXPECT_EQ(backend->counts().copies_to_backend, 1) << at;
            EXPECT_EQ(backend->counts().bytes_to_backend, spec.dense_size * 4)
                << at;
            EXPECT_EQ(backend->counts().copies_to_host, 0) << at;
            backend->ResetCounts();
          }
          StepResult result;
          const absl::Status status = model.TrainStep(
              in.batch, in.unique.key_index, num_unique, in.rows, &result);
          ASSERT_TRUE(status.ok()) << at << ": " << status;
          ExpectNoViolations(*backend, at);
          const BackendCounts& k = backend->counts();
          // The linear term's selector is uploaded with the first step.
          const int selector = step == 0 && spec.has_linear ? 1 : 0;
          EXPECT_EQ(k.copies_to_backend, 1 + selector) << at;
          EXPECT_EQ(k.copies_to_host, 4) << at;
          EXPECT_LE(k.copies(), 8) << at;
          EXPECT_EQ(k.synchronizes, 1) << at;
          if (step == 3) {
            EXPECT_EQ(k.allocations, 0) << at;
          }
          // The dense parameters stayed in backend memory.
          const StepInputs with_params = [&] {
            StepInputs copy = in;
            copy.dense_params = Inputs(spec, sizes[0], 100).dense_params;
            return copy;
          }();
          ExpectSameResult(result, CpuStep(spec, mode, with_params, true), at);
        }
      }
      EXPECT_EQ(backend->allocated_bytes(), 0) << what << ": leaked buffers";
    }
  }
}

TEST(ModelDeviceTest, CopiesDoNotGrowWithLayers) {
  std::vector<BackendCounts> counts;
  for (int layers : {1, 2, 8}) {
    const ModelSpec spec =
        MakeSpec({"dnn", ModelConfig::DNN, 8, std::vector<int>(layers, 16)});
    auto backend = MakeChecking();
    Model model(spec, PoolMode::kSum, backend.get());
    const StepInputs in = Inputs(spec, 40, 7);
    ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok());
    StepResult result;
    for (int step = 0; step < 2; ++step) {
      backend->ResetCounts();
      ASSERT_TRUE(model
                      .TrainStep(in.batch, in.unique.key_index,
                                 in.unique.unique_keys.size(), in.rows, &result)
                      .ok());
    }
    ExpectNoViolations(*backend, std::to_string(layers) + " layers");
    counts.push_back(backend->counts());
  }
  for (const BackendCounts& k : counts) {
    EXPECT_EQ(k.copies_to_backend, counts[0].copies_to_backend);
    EXPECT_EQ(k.copies_to_host, counts[0].copies_to_host);
    EXPECT_EQ(k.bytes_to_backend, counts[0].bytes_to_backend);
    EXPECT_EQ(k.allocations, 0);
  }
  EXPECT_GT(counts[2].kernels, counts[0].kernels);
}

TEST(ModelDeviceTest, StepDoesNotUploadTheDenseParameters) {
  // A DNN whose dense parameters outweigh a small batch's inputs.
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {256, 64}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = Inputs(spec, 4, 9);
  ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok());
  StepResult result;
  backend->ResetCounts();
  ASSERT_TRUE(model
                  .TrainStep(in.batch, in.unique.key_index,
                             in.unique.unique_keys.size(), in.rows, &result)
                  .ok());
  EXPECT_EQ(backend->counts().copies_to_backend, 1);
  EXPECT_LT(backend->counts().bytes_to_backend, spec.dense_size * 4);
  // Downloads: probs + loss + dense gradient + row gradients, exactly.
  EXPECT_EQ(backend->counts().bytes_to_host,
            4 * 4 + 8 + spec.dense_size * 4 +
                static_cast<int64_t>(in.rows.size()) * 4);
}

TEST(ModelDeviceTest, PredictCopiesTheInputsInAndTheProbabilitiesOut) {
  for (const ModelCase& c : Cases()) {
    const ModelSpec spec = MakeSpec(c);
    auto backend = MakeChecking();
    Model model(spec, PoolMode::kMean, backend.get());
    const StepInputs in = Inputs(spec, 65, 21);
    ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok());
    StepResult result;
    for (int step = 0; step < 2; ++step) {
      backend->ResetCounts();
      ASSERT_TRUE(model
                      .Predict(in.batch, in.unique.key_index,
                               in.unique.unique_keys.size(), in.rows, &result)
                      .ok())
          << c.name;
    }
    ExpectNoViolations(*backend, c.name);
    EXPECT_EQ(backend->counts().copies_to_backend, 1) << c.name;
    EXPECT_EQ(backend->counts().copies_to_host, 2) << c.name;
    EXPECT_EQ(backend->counts().allocations, 0) << c.name;
    ExpectSameResult(result, CpuStep(spec, PoolMode::kMean, in, false), c.name);
    EXPECT_TRUE(result.dense_grad.empty());
    EXPECT_TRUE(result.row_grad.empty());
  }
}

TEST(ModelDeviceTest, DenseParamsPerStepCostOneMoreUpload) {
  const ModelSpec spec = MakeSpec({"deepfm", ModelConfig::DEEPFM, 9, {65, 1}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = Inputs(spec, 33, 5);
  StepResult result;
  for (int step = 0; step < 2; ++step) {
    backend->ResetCounts();
    ASSERT_TRUE(model
                    .TrainStep(in.batch, in.unique.key_index,
                               in.unique.unique_keys.size(), in.rows,
                               in.dense_params, &result)
                    .ok());
  }
  ExpectNoViolations(*backend, "deepfm");
  EXPECT_EQ(backend->counts().copies_to_backend, 2);
  EXPECT_EQ(backend->counts().copies_to_host, 4);
  ExpectSameResult(result, CpuStep(spec, PoolMode::kSum, in, true), "deepfm");
}

TEST(ModelDeviceTest, SetDenseParamsCopiesTheValuesAtOnce) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {16}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = Inputs(spec, 9, 13);
  std::vector<float> params = in.dense_params;
  ASSERT_TRUE(model.SetDenseParams(params).ok());
  for (float& p : params) p = 100.0f;  // the model holds its own copy
  StepResult result;
  ASSERT_TRUE(model
                  .TrainStep(in.batch, in.unique.key_index,
                             in.unique.unique_keys.size(), in.rows, &result)
                  .ok());
  ExpectSameResult(result, CpuStep(spec, PoolMode::kSum, in, true), "dnn");
}

TEST(ModelDeviceTest, StepWithoutDenseParamsFails) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {16}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = Inputs(spec, 3, 1);
  StepResult result;
  const absl::Status status =
      model.TrainStep(in.batch, in.unique.key_index,
                      in.unique.unique_keys.size(), in.rows, &result);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("SetDenseParams")));
}

TEST(ModelDeviceTest, SetDenseParamsChecksTheSize) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {16}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const std::vector<float> params(spec.dense_size - 1, 0.0f);
  const absl::Status status = model.SetDenseParams(params);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "dense_params has " +
                                   std::to_string(spec.dense_size - 1) +
                                   " floats but DNN model has " +
                                   std::to_string(spec.dense_size)));
  EXPECT_EQ(backend->counts().copies(), 0);
}

TEST(ModelDeviceTest, AllocationFailureIsTheStepsError) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {64, 32}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs small = Inputs(spec, 2, 3);
  ASSERT_TRUE(model.SetDenseParams(small.dense_params).ok());
  StepResult result;
  ASSERT_TRUE(model
                  .TrainStep(small.batch, small.unique.key_index,
                             small.unique.unique_keys.size(), small.rows,
                             &result)
                  .ok());
  // A batch 100 times larger does not fit.
  backend->set_allocation_limit(backend->allocated_bytes() + 4096);
  const StepInputs large = Inputs(spec, 200, 4);
  absl::Status status =
      model.TrainStep(large.batch, large.unique.key_index,
                      large.unique.unique_keys.size(), large.rows, &result);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  // With the memory back, the model recovers.
  backend->set_allocation_limit(-1);
  status =
      model.TrainStep(large.batch, large.unique.key_index,
                      large.unique.unique_keys.size(), large.rows, &result);
  ASSERT_TRUE(status.ok()) << status;
  StepInputs want = large;
  want.dense_params = small.dense_params;
  ExpectSameResult(result, CpuStep(spec, PoolMode::kSum, want, true), "dnn");
}

TEST(ModelDeviceTest, KernelErrorIsTheStepsError) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {16}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = Inputs(spec, 5, 2);
  ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok());
  backend->FailNextSynchronize(absl::InternalError(
      "cublasSgemm failed: CUBLAS_STATUS_EXECUTION_FAILED"));
  StepResult result;
  const absl::Status status =
      model.TrainStep(in.batch, in.unique.key_index,
                      in.unique.unique_keys.size(), in.rows, &result);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInternal, HasSubstr("cublasSgemm")));
}

// The check has teeth: host access to Allocate'd memory outside a backend
// call faults.
TEST(ModelDeviceDeathTest, HostAccessToBackendMemoryFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto backend = MakeChecking();
  auto buffer = backend->Allocate(64);
  ASSERT_TRUE(buffer.ok());
  float* data = buffer->as<float>();
  backend->SetZero(64, data);  // fine: inside a backend call
  EXPECT_DEATH(
      {
        volatile float x = data[0];
        (void)x;
      },
      "");
}

// The test backend's deferred mode really reorders: an upload queued after
// a kernel runs before it, so the overlap test below can fail.
TEST(ModelDeviceTest, DeferredBackendRunsUploadsAheadOfQueuedKernels) {
  for (bool deferred : {false, true}) {
    auto backend = MakeChecking();
    backend->set_deferred(deferred);
    auto x = backend->Allocate(4 * sizeof(float));
    auto y = backend->Allocate(4 * sizeof(float));
    ASSERT_TRUE(x.ok() && y.ok());
    const float a[4] = {1, 2, 3, 4};
    const float b[4] = {5, 6, 7, 8};
    backend->CopyToBackend(a, sizeof(a), x->data());
    ASSERT_TRUE(backend->Synchronize().ok());
    backend->CopyBlocks(1, 1, 4, x->as<float>(), {4, 0}, y->as<float>(), {4, 0},
                        /*accumulate=*/false);
    backend->CopyToBackend(b, sizeof(b), x->data());
    float out[4] = {0, 0, 0, 0};
    backend->CopyToHost(y->data(), sizeof(out), out);
    ASSERT_TRUE(backend->Synchronize().ok());
    EXPECT_EQ(out[0], deferred ? 5.0f : 1.0f);
  }
}

// Steps split into Stage / Launch / Finish, each batch staged while the one
// before is launched, on a backend that runs uploads ahead of queued
// kernels: every step's result is the CPU backend's, bit for bit, and the
// steady state allocates nothing.
TEST(ModelDeviceTest, OverlappedStepsMatchTheCpuStepByStep) {
  for (const ModelCase& c : Cases()) {
    const ModelSpec spec = MakeSpec(c);
    auto backend = MakeChecking();
    backend->set_deferred(true);
    Model model(spec, PoolMode::kMean, backend.get());
    std::vector<StepInputs> ins;
    const int sizes[] = {33, 65, 7, 65, 33, 65};
    for (int t = 0; t < 6; ++t) ins.push_back(Inputs(spec, sizes[t], 300 + t));
    for (StepInputs& in : ins) in.dense_params = ins[0].dense_params;
    ASSERT_TRUE(model.SetDenseParams(ins[0].dense_params).ok());
    auto stage = [&](const StepInputs& in) {
      return model.Stage(in.batch, in.unique.key_index,
                         in.unique.unique_keys.size(), in.rows);
    };
    ASSERT_TRUE(stage(ins[0]).ok()) << c.name;
    std::vector<StepResult> results(ins.size());
    for (size_t t = 0; t < ins.size(); ++t) {
      const std::string at = c.name + " step " + std::to_string(t);
      if (t == 4) backend->ResetCounts();
      ASSERT_TRUE(model.Launch(/*train=*/t % 3 != 2, &results[t]).ok()) << at;
      EXPECT_TRUE(model.launched());
      if (t + 1 < ins.size()) {
        ASSERT_TRUE(stage(ins[t + 1]).ok()) << at;
      }
      const absl::Status done = model.Finish();
      ASSERT_TRUE(done.ok()) << at << ": " << done;
      ExpectSameResult(results[t],
                       CpuStep(spec, PoolMode::kMean, ins[t], t % 3 != 2), at);
    }
    EXPECT_EQ(backend->counts().allocations, 0) << c.name;
    ExpectNoViolations(*backend, c.name);
  }
}

TEST(ModelDeviceTest, SplitStepCallsOutOfOrderAreRefused) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {16}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  const StepInputs in = Inputs(spec, 9, 13);
  const int64_t num_unique = in.unique.unique_keys.size();
  StepResult result;
  AucAccumulator acc;
  EXPECT_THAT(model.Finish(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(model.Launch(true, &result).message(),
            "Launch: no batch is staged");
  ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok());
  ASSERT_TRUE(
      model.Stage(in.batch, in.unique.key_index, num_unique, in.rows).ok());
  EXPECT_EQ(
      model.Stage(in.batch, in.unique.key_index, num_unique, in.rows).message(),
      "Stage: the batch staged before was not launched yet");
  EXPECT_THAT(model.TrainStep(in.batch, in.unique.key_index, num_unique,
                              in.rows, &result),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE(model.Launch(true, &result).ok());
  EXPECT_EQ(model.Launch(true, &result).message(),
            "Launch: the launched step was not finished");
  EXPECT_THAT(model.SetDenseParams(in.dense_params),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(model.TakeMetrics(&acc),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE(model.Finish().ok());
  ExpectSameResult(result, CpuStep(spec, PoolMode::kSum, in, true), "dnn");
  // A batch that does not fit the spec is refused at Stage.
  StepInputs bad = in;
  bad.batch.num_slots += 1;
  EXPECT_THAT(
      model.Stage(bad.batch, bad.unique.key_index, num_unique, bad.rows),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

// Metrics kept on the backend equal those of the downloaded probabilities,
// and the probabilities are not downloaded.
TEST(ModelDeviceTest, BackendMetricsMatchHostMetrics) {
  const ModelSpec spec = MakeSpec({"deepfm", ModelConfig::DEEPFM, 9, {65, 1}});
  auto backend = MakeChecking();
  backend->set_deferred(true);
  Model model(spec, PoolMode::kSum, backend.get());
  model.SetBackendMetrics(true);
  AucAccumulator want;
  int64_t examples = 0;
  for (int step = 0; step < 4; ++step) {
    const StepInputs in = Inputs(spec, 65 + step, 500 + step);
    ASSERT_TRUE(model.SetDenseParams(in.dense_params).ok());
    StepResult result;
    backend->ResetCounts();
    ASSERT_TRUE(model
                    .TrainStep(in.batch, in.unique.key_index,
                               in.unique.unique_keys.size(), in.rows, &result)
                    .ok());
    EXPECT_TRUE(result.probs.empty());
    EXPECT_EQ(backend->counts().copies_to_host, 3);  // loss, 2 gradients
    const StepResult cpu = CpuStep(spec, PoolMode::kSum, in, true);
    EXPECT_EQ(result.row_grad, cpu.row_grad);
    for (size_t i = 0; i < cpu.probs.size(); ++i) {
      want.Add(cpu.probs[i], in.batch.labels[i]);
    }
    examples += in.batch.size();
  }
  AucAccumulator got;
  ASSERT_TRUE(model.TakeMetrics(&got).ok());
  EXPECT_EQ(got.count(), examples);
  EXPECT_EQ(got.Auc(), want.Auc());
  EXPECT_NEAR(got.LogLoss(), want.LogLoss(), 1e-12);
  EXPECT_NEAR(got.Calibration(), want.Calibration(), 1e-12);
  // Taken: the next call adds nothing.
  AucAccumulator again;
  ASSERT_TRUE(model.TakeMetrics(&again).ok());
  EXPECT_EQ(again.count(), 0);
  ExpectNoViolations(*backend, "deepfm");
}

// Dropout (ModelConfig.dropout) keeps to backend memory: its kernels get
// only backend buffers, and training and prediction equal the CPU
// backend's bit for bit (both at the default step and seed).
TEST(ModelDeviceTest, DropoutRunsOnBackendMemory) {
  ModelConfig config;
  config.set_type(ModelConfig::DNN);
  config.add_hidden_units(32);
  config.add_hidden_units(16);
  config.set_dropout(0.25f);
  const ModelSpec spec = testing_util::SpecOf(config, 8);
  auto backend = MakeChecking();
  backend->set_deferred(true);
  Model model(spec, PoolMode::kSum, backend.get());
  for (int step = 0; step < 2; ++step) {
    const StepInputs in = Inputs(spec, 65, 800 + step);
    const int64_t num_unique = in.unique.unique_keys.size();
    for (bool train : {true, false}) {
      const std::string what = train ? "train" : "predict";
      StepResult result;
      const absl::Status status =
          train ? model.TrainStep(in.batch, in.unique.key_index, num_unique,
                                  in.rows, in.dense_params, &result)
                : model.Predict(in.batch, in.unique.key_index, num_unique,
                                in.rows, in.dense_params, &result);
      ASSERT_TRUE(status.ok()) << status;
      ExpectSameResult(result, CpuStep(spec, PoolMode::kSum, in, train), what);
    }
  }
  ExpectNoViolations(*backend, "dropout");
}

OptimizerConfig DenseRule(OptimizerConfig::Type type) {
  OptimizerConfig c;
  c.set_type(type);
  c.set_learning_rate(0.3f);
  c.set_weight_bound(0.5f);  // clips now and then
  c.set_l2(0.01f);
  c.set_l1(0.001f);
  // A schedule that changes the rate at every step of the test below.
  c.set_warmup_steps(3);
  c.set_decay(OptimizerConfig::INVERSE_SQRT);
  c.set_decay_steps(2);
  c.set_min_learning_rate(0.05f);
  return c;
}

// GEO's local training: the dense optimizer runs on the backend. After every
// step the parameters equal, bit for bit, those of the servers' rule
// (OptimizerRule, on the host, at the same step of the learning-rate
// schedule) applied to the CPU backend's gradient, and neither the gradient
// nor the parameters cross to the host.
TEST(ModelDeviceTest, DenseOptimizerOnTheBackendIsTheServersRule) {
  const ModelSpec spec = MakeSpec({"deepfm", ModelConfig::DEEPFM, 9, {65, 1}});
  for (auto type : {OptimizerConfig::SGD, OptimizerConfig::ADAGRAD,
                    OptimizerConfig::ADAM, OptimizerConfig::FTRL}) {
    const std::string what = OptimizerConfig::Type_Name(type);
    const OptimizerConfig config = DenseRule(type);
    auto backend = MakeChecking();
    backend->set_deferred(true);
    Model model(spec, PoolMode::kSum, backend.get());
    ASSERT_TRUE(model.SetDenseOptimizer(config).ok()) << what;
    EXPECT_TRUE(model.has_dense_optimizer());
    // The reference: the host rule on a host copy of the vector.
    auto rule = OptimizerRule::Create(config);
    ASSERT_TRUE(rule.ok()) << rule.status();
    std::vector<float> want = Inputs(spec, 1, 600).dense_params;
    std::vector<float> state(
        (*rule)->StateSize(static_cast<int>(spec.dense_size)));
    (*rule)->InitState(absl::MakeSpan(state));
    ASSERT_TRUE(model.SetDenseParams(want).ok());
    for (int step = 0; step < 5; ++step) {
      StepInputs in = Inputs(spec, 33 + step * 16, 610 + step);
      in.dense_params = want;
      const StepResult cpu = CpuStep(spec, PoolMode::kSum, in, true);
      (*rule)->Update(RowView{absl::MakeSpan(want), absl::MakeSpan(state)},
                      cpu.dense_grad, UpdateContext{step + 1, {}});
      model.SetStep(step + 1, /*seed=*/0);
      StepResult result;
      backend->ResetCounts();
      ASSERT_TRUE(model
                      .TrainStep(in.batch, in.unique.key_index,
                                 in.unique.unique_keys.size(), in.rows, &result)
                      .ok())
          << what;
      EXPECT_TRUE(result.dense_grad.empty()) << what;
      EXPECT_EQ(result.row_grad, cpu.row_grad) << what << " step " << step;
      // Past the first step (which sets up the terms' constants): the batch
      // up; probabilities, loss and row gradients down.
      if (step > 0) {
        EXPECT_EQ(backend->counts().copies_to_backend, 1) << what;
        EXPECT_EQ(backend->counts().copies_to_host, 3) << what;
      }
      std::vector<float> got(spec.dense_size);
      ASSERT_TRUE(model.GetDenseParams(absl::MakeSpan(got)).ok());
      ASSERT_EQ(got, want) << what << " step " << step;
    }
    // Not a no-op: the vector moved, and clipping bit.
    EXPECT_NE(want, Inputs(spec, 1, 600).dense_params) << what;
    // A new pull keeps the rule's state: the next step continues it.
    const std::vector<float> pulled = Inputs(spec, 1, 700).dense_params;
    ASSERT_TRUE(model.SetDenseParams(pulled).ok());
    want = pulled;
    StepInputs in = Inputs(spec, 40, 701);
    in.dense_params = want;
    const StepResult cpu = CpuStep(spec, PoolMode::kSum, in, true);
    (*rule)->Update(RowView{absl::MakeSpan(want), absl::MakeSpan(state)},
                    cpu.dense_grad, UpdateContext{6, {}});
    model.SetStep(6, /*seed=*/0);
    StepResult result;
    ASSERT_TRUE(model
                    .TrainStep(in.batch, in.unique.key_index,
                               in.unique.unique_keys.size(), in.rows, &result)
                    .ok());
    std::vector<float> got(spec.dense_size);
    ASSERT_TRUE(model.GetDenseParams(absl::MakeSpan(got)).ok());
    EXPECT_EQ(got, want) << what << " after a pull";
    ExpectNoViolations(*backend, what);
  }
}

TEST(ModelDeviceTest, DenseOptimizerErrorsNameTheProblem) {
  const ModelSpec spec = MakeSpec({"dnn", ModelConfig::DNN, 8, {64, 32}});
  auto backend = MakeChecking();
  Model model(spec, PoolMode::kSum, backend.get());
  OptimizerConfig bad = DenseRule(OptimizerConfig::ADAM);
  bad.set_beta1(1.5f);
  absl::Status status = model.SetDenseOptimizer(bad);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("adam beta1")));
  EXPECT_FALSE(model.has_dense_optimizer());
  std::vector<float> out(spec.dense_size);
  status = model.GetDenseParams(absl::MakeSpan(out));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("no dense parameters")));
  ASSERT_TRUE(model.SetDenseOptimizer(DenseRule(OptimizerConfig::SGD)).ok());
  status = model.SetDenseOptimizer(DenseRule(OptimizerConfig::SGD));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE(model.SetDenseParams(out).ok());
  std::vector<float> short_out(spec.dense_size - 1);
  status = model.GetDenseParams(absl::MakeSpan(short_out));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("floats asked for")));
  ExpectNoViolations(*backend, "dnn");
}

}  // namespace
}  // namespace ps
