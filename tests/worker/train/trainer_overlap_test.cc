// The trainer's overlapped steps (worker/train/trainer.h: in ASYNC and BOUNDED
// the next batch is staged while this one is launched) on a backend that runs
// uploads ahead of queued kernels (CheckingBackend's deferred mode, a GPU's
// streams at their most adversarial) train exactly as on the CPU backend:
// the same examples, the same metrics (gathered on the backend), the same
// gradients pushed. Exact comparisons are sound: CheckingBackend runs the
// CPU backend's kernels on the same shapes, only its memory and ordering
// differ. The fake client serves fixed rows, so a batch computed
// with another batch's inputs would show.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/metrics_log.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/testing/checking_backend.h"
#include "tests/testing/fake_ps_client.h"
#include "tests/testing/model_test_util.h"
#include "tests/testing/reader_test_util.h"
#include "worker/train/trainer.h"

namespace ps {
namespace {

using testing_util::CheckingBackend;
using testing_util::FakePsClient;

constexpr int kLines = 203;  // 12 full batches of 16 and one of 11

class TrainerOverlapTest : public testing_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // SLOT lines "label 0:a 1:b 1:c 2:d": a label that depends on the keys,
    // slot 1 with two keys.
    std::string content;
    for (int i = 0; i < kLines; ++i) {
      const int a = i % 7, b = (i * 3) % 11, c = (i * 5) % 13, d = i % 4;
      absl::StrAppend(&content, (a + d) % 3 == 0 ? 1 : 0, " 0:", a,
                      " 1:", 100 + b, " 1:", 200 + c, " 2:", 300 + d, "\n");
    }
    file_ = Write("train.txt", content);
  }

  JobConfig Config(TrainingConfig::Mode mode) {
    JobConfig c;
    c.mutable_cluster()->add_servers("127.0.0.1:1");
    c.mutable_cluster()->set_dense_block_size(64);
    SparseTableConfig* table = c.add_sparse_tables();
    table->set_name("emb");
    table->set_dim(4);
    table->mutable_optimizer()->set_type(OptimizerConfig::SGD);
    ModelConfig* model = c.mutable_model();
    model->set_type(ModelConfig::DEEPFM);
    model->set_sparse_table("emb");
    model->add_hidden_units(8);
    model->mutable_dense_optimizer()->set_type(OptimizerConfig::SGD);
    DataConfig* data = c.mutable_data();
    data->set_format(DataConfig::SLOT);
    data->set_num_slots(3);
    data->set_batch_size(16);
    data->add_train_files(file_);
    c.mutable_training()->set_mode(mode);
    c.mutable_training()->set_log_every_steps(5);
    return c;
  }

  struct Run {
    TrainStats stats;
    double sparse_sum = 0;
    double dense_sum = 0;
    double sparse_delta_sum = 0;                   // GEO
    std::vector<std::vector<float>> dense_deltas;  // GEO
  };

  Run Train(TrainingConfig::Mode mode, Backend* backend) {
    FakePsClient client;
    client.row_value = [](uint64_t key, int i) {
      return 0.05f * static_cast<float>((key * 7 + i * 3) % 11) - 0.25f;
    };
    Trainer trainer(Config(mode), 0, &client, backend, nullptr);
    for (int epoch = 0; epoch < 2; ++epoch) {
      absl::Status s = trainer.TrainEpoch(epoch);
      EXPECT_TRUE(s.ok()) << s;
    }
    EXPECT_TRUE(trainer.FinishTraining().ok());
    absl::MutexLock lock(&client.mu);
    return {trainer.stats(), client.pushed_sparse_sum, client.pushed_dense_sum,
            client.pushed_sparse_delta_sum, client.pushed_dense_deltas};
  }

  std::string file_;
};

TEST_F(TrainerOverlapTest, OverlappedStepsTrainAsOnTheCpu) {
  for (auto mode : {TrainingConfig::ASYNC, TrainingConfig::BOUNDED}) {
    const std::string what = TrainingConfig::Mode_Name(mode);
    auto cpu = testing_util::MakeBackend();
    const Run want = Train(mode, cpu.get());
    auto checking =
        std::make_unique<CheckingBackend>(testing_util::MakeBackend());
    checking->set_deferred(true);
    const Run got = Train(mode, checking.get());
    for (const std::string& v : checking->violations()) {
      ADD_FAILURE() << what << ": " << v;
    }
    EXPECT_EQ(want.stats.examples, 2 * kLines) << what;
    EXPECT_EQ(got.stats.examples, want.stats.examples) << what;
    EXPECT_EQ(got.stats.steps, want.stats.steps) << what;
    // Not a degenerate model: the rows make the predictions differ.
    EXPECT_NE(want.stats.auc, 0.5) << what;
    EXPECT_EQ(got.stats.auc, want.stats.auc) << what;
    EXPECT_NEAR(got.stats.logloss, want.stats.logloss, 1e-12) << what;
    EXPECT_NE(want.sparse_sum, 0.0) << what;
    EXPECT_NEAR(got.sparse_sum, want.sparse_sum,
                1e-9 + 1e-6 * std::abs(want.sparse_sum))
        << what;
    EXPECT_NEAR(got.dense_sum, want.dense_sum,
                1e-9 + 1e-6 * std::abs(want.dense_sum))
        << what;
  }
}

// GEO trains the dense vector where the model runs (Model::SetDenseOptimizer):
// on a device-like backend it is uploaded only at pulls, never per step, and
// the deltas pushed are the CPU backend's, bit for bit.
TEST_F(TrainerOverlapTest, GeoTrainsTheDenseVectorOnTheBackend) {
  auto cpu = testing_util::MakeBackend();
  const Run want = Train(TrainingConfig::GEO, cpu.get());
  auto checking =
      std::make_unique<CheckingBackend>(testing_util::MakeBackend());
  checking->set_deferred(true);
  const Run got = Train(TrainingConfig::GEO, checking.get());
  for (const std::string& v : checking->violations()) ADD_FAILURE() << v;
  EXPECT_EQ(got.stats.examples, 2 * kLines);
  EXPECT_EQ(got.stats.steps, want.stats.steps);
  EXPECT_EQ(got.stats.auc, want.stats.auc);
  // A delta per sync (every geo_every = 10 steps, and at the end).
  ASSERT_EQ(got.dense_deltas.size(), want.dense_deltas.size());
  EXPECT_EQ(got.stats.pushes, static_cast<int64_t>(got.dense_deltas.size()));
  bool moved = false;
  for (size_t i = 0; i < want.dense_deltas.size(); ++i) {
    ASSERT_EQ(got.dense_deltas[i], want.dense_deltas[i]) << "sync " << i;
    for (float d : want.dense_deltas[i]) moved = moved || d != 0.0f;
  }
  EXPECT_TRUE(moved) << "the dense vector never moved";
  EXPECT_NE(want.sparse_delta_sum, 0.0);
  EXPECT_EQ(got.sparse_delta_sum, want.sparse_delta_sum);
  // Uploads: the optimizer's initial state, the first pull and the model
  // terms' constants once, one batch per step, one dense pull after each
  // sync. The dense vector does not go up with the steps.
  EXPECT_EQ(checking->counts().copies_to_backend,
            3 + got.stats.steps + got.stats.pushes);
}

// GEO with an evaluation between epochs (worker 0 in a job with
// eval_every_epoch): the evaluation pulls the servers' dense vector, which
// by then holds another worker's delta; the next delta this worker pushes
// must not carry that delta again.
TEST_F(TrainerOverlapTest, GeoEvaluationBetweenEpochsDoesNotPushOthersDeltas) {
  FakePsClient client;
  client.row_value = [](uint64_t key, int i) {
    return 0.05f * static_cast<float>((key * 7 + i * 3) % 11) - 0.25f;
  };
  JobConfig config = Config(TrainingConfig::GEO);
  config.mutable_training()->set_geo_every(1000);  // syncs at barriers only
  auto cpu = testing_util::MakeBackend();
  Trainer trainer(config, 0, &client, cpu.get(), nullptr);
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  ASSERT_TRUE(trainer.Barrier("epoch-1-done", false).ok());  // syncs
  {
    absl::MutexLock lock(&client.mu);
    client.dense_value += 1.0f;  // another worker's delta reached the servers
  }
  auto eval = trainer.Evaluate({file_}, 0, 1);
  ASSERT_TRUE(eval.ok()) << eval.status();
  ASSERT_TRUE(trainer.TrainEpoch(1).ok());
  ASSERT_TRUE(trainer.FinishTraining().ok());
  absl::MutexLock lock(&client.mu);
  ASSERT_EQ(client.pushed_dense_deltas.size(), 2u);
  float largest = 0;
  for (float d : client.pushed_dense_deltas.back()) {
    largest = std::max(largest, std::abs(d));
  }
  EXPECT_GT(largest, 0.0f);  // it trained
  EXPECT_LT(largest, 0.5f) << "the other worker's +1 was pushed again";
}

// The progress fields of each log line (also in the metrics file and on
// /metrics): the epoch's fraction climbs to 1 and the ETA to 0.
TEST_F(TrainerOverlapTest, ProgressLinesCarryTheEpochFractionAndEta) {
  FakePsClient client;
  auto cpu = testing_util::MakeBackend();
  auto metrics = MetricsLog::InMemory();
  JobConfig config = Config(TrainingConfig::ASYNC);
  config.mutable_training()->set_epochs(2);
  Trainer trainer(config, 0, &client, cpu.get(), metrics.get());
  auto fields = [&metrics] {
    std::map<std::string, double> out;
    for (const auto& [type, f] : metrics->Latest()) {
      if (type != "train") continue;
      for (const auto& [name, value] : f) out[name] = value;
    }
    return out;
  };
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  auto first = fields();
  // 13 steps, logged every 5: the last line at step 10 of 13.
  EXPECT_GT(first["epoch_fraction"], 0.5);
  EXPECT_LE(first["epoch_fraction"], 1.0);
  EXPECT_GT(first["eta_sec"], 0);  // the second epoch is still to come
  ASSERT_TRUE(trainer.TrainEpoch(1).ok());
  auto second = fields();
  EXPECT_LT(second["eta_sec"], first["eta_sec"]);
  EXPECT_GE(second["eta_sec"], 0);
}

}  // namespace
}  // namespace ps
