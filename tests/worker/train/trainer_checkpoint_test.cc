// The trainer's side of coordinated checkpoints (worker/train/trainer.h)
// against a fake client: when it arrives at a cut (every_steps, a round
// reported by a heartbeat or by StepGate), that every push is acknowledged
// first, the position it reports (the next untrained example, though the
// trainer reads ahead), what barriers carry, and resuming from a position.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/testing/fake_ps_client.h"
#include "tests/testing/reader_test_util.h"
#include "worker/data/data_reader.h"
#include "worker/train/trainer.h"

namespace ps {
namespace {

using testing_util::FakePsClient;

constexpr int kLines = 20;
constexpr int kBatch = 2;
constexpr int kSteps = kLines / kBatch;

class TrainerCheckpointTest : public testing_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // SLOT lines "label 0:id" of varying length.
    std::string content;
    for (int id = 0; id < kLines; ++id) {
      line_offsets_.push_back(static_cast<int64_t>(content.size()));
      absl::StrAppend(&content, id % 2, " 0:", id * 37, "\n");
    }
    line_offsets_.push_back(static_cast<int64_t>(content.size()));
    file_ = Write("train.txt", content);
    auto backend = Backend::CreateCpu(BackendOptions{});
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(backend).value();
  }

  JobConfig Config(TrainingConfig::Mode mode, int64_t every_steps,
                   bool checkpoints = true) {
    JobConfig c;
    c.mutable_cluster()->add_servers("127.0.0.1:1");
    c.mutable_cluster()->set_dense_block_size(64);
    SparseTableConfig* table = c.add_sparse_tables();
    table->set_name("emb");
    table->set_dim(4);
    table->mutable_optimizer()->set_type(OptimizerConfig::SGD);
    ModelConfig* model = c.mutable_model();
    model->set_type(ModelConfig::DNN);
    model->set_sparse_table("emb");
    model->mutable_dense_optimizer()->set_type(OptimizerConfig::SGD);
    DataConfig* data = c.mutable_data();
    data->set_format(DataConfig::SLOT);
    data->set_num_slots(1);
    data->set_batch_size(kBatch);
    data->add_train_files(file_);
    c.mutable_training()->set_mode(mode);
    if (checkpoints) {
      c.mutable_checkpoint()->set_dir(dir_ + "/ckpt");
      c.mutable_checkpoint()->set_every_steps(every_steps);
    }
    return c;
  }

  // The position of the next example after `examples` of the file.
  void ExpectPositionAfter(const DataPosition& p, int examples) {
    EXPECT_EQ(p.worker_rank(), 0);
    EXPECT_EQ(p.epoch(), 0);
    if (examples < kLines) {
      EXPECT_EQ(p.file_index(), 0);
      EXPECT_EQ(p.file(), file_);
      EXPECT_EQ(p.offset(), line_offsets_[examples]);
    }
    EXPECT_EQ(p.examples_done(), examples);
  }

  std::string file_;
  std::vector<int64_t> line_offsets_;
  std::unique_ptr<Backend> backend_;
};

TEST_F(TrainerCheckpointTest,
       ArrivesEveryStepsWithThePositionOfTheNextExample) {
  for (auto mode : {TrainingConfig::ASYNC, TrainingConfig::SYNC,
                    TrainingConfig::BOUNDED, TrainingConfig::GEO}) {
    SCOPED_TRACE(TrainingConfig::Mode_Name(mode));
    FakePsClient client;
    Trainer trainer(Config(mode, 3), 0, &client, backend_.get(), nullptr);
    ASSERT_TRUE(trainer.TrainEpoch(0).ok());
    ASSERT_EQ(client.arrivals.size(), 3u);
    for (int k = 0; k < 3; ++k) {
      const FakePsClient::Arrival& a = client.arrivals[k];
      EXPECT_EQ(a.step, 3 * (k + 1));
      EXPECT_EQ(a.id, 0);
      EXPECT_EQ(a.unacked_pushes, 0) << "arrived with pushes in flight";
      // The reader is a batch ahead; the position is of the trained one.
      ExpectPositionAfter(a.position, 3 * (k + 1) * kBatch);
    }
    EXPECT_EQ(trainer.step(), kSteps);
    ExpectPositionAfter(trainer.position(), kLines);
  }
}

TEST_F(TrainerCheckpointTest, AFailedCheckpointDoesNotStopTraining) {
  FakePsClient client;
  client.checkpoint_error =
      absl::UnavailableError("server 1: cannot write rows.bin: disk full");
  Trainer trainer(Config(TrainingConfig::ASYNC, 3), 0, &client, backend_.get(),
                  nullptr);
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  EXPECT_EQ(client.arrivals.size(), 3u);  // it kept arriving, and training
  EXPECT_EQ(trainer.step(), kSteps);
  ExpectPositionAfter(trainer.position(), kLines);
}

TEST_F(TrainerCheckpointTest, RoundFromAHeartbeatIsJoinedOnceAtTheNextStep) {
  FakePsClient client;
  Trainer trainer(Config(TrainingConfig::ASYNC, 0), 0, &client, backend_.get(),
                  nullptr);
  // A round reported before training; another one reported while step 5 is
  // prepared (a heartbeat arrives mid-training).
  trainer.SetCheckpointPending(5, absl::Now());
  client.on_pull_sparse = [&](int64_t step) {
    if (step == 5) trainer.SetCheckpointPending(7, absl::Now());
  };
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  ASSERT_EQ(client.arrivals.size(), 2u);
  EXPECT_EQ(client.arrivals[0].step, 1);
  EXPECT_EQ(client.arrivals[0].id, 5);
  ExpectPositionAfter(client.arrivals[0].position, kBatch);
  // Pulled for step 5 while step 4 trains (prefetch): after step 4 or 5.
  EXPECT_EQ(client.arrivals[1].id, 7);
  EXPECT_GE(client.arrivals[1].step, 4);
  EXPECT_LE(client.arrivals[1].step, 5);
  ExpectPositionAfter(client.arrivals[1].position,
                      client.arrivals[1].step * kBatch);
  for (const auto& a : client.arrivals) EXPECT_EQ(a.unacked_pushes, 0);
}

TEST_F(TrainerCheckpointTest, AnswerAskedBeforeTheLastArrivalIsIgnored) {
  FakePsClient client;
  Trainer trainer(Config(TrainingConfig::ASYNC, 0), 0, &client, backend_.get(),
                  nullptr);
  const absl::Time before = absl::Now();
  trainer.SetCheckpointPending(5, before);
  client.on_pull_sparse = [&](int64_t step) {
    // A heartbeat sent before the arrival returned still names round 6.
    if (step == 4) trainer.SetCheckpointPending(6, before);
  };
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  ASSERT_EQ(client.arrivals.size(), 1u);
  EXPECT_EQ(client.arrivals[0].id, 5);
}

TEST_F(TrainerCheckpointTest, RoundOpenDuringABarrierIsNotJoinedAgain) {
  FakePsClient client;
  Trainer trainer(Config(TrainingConfig::ASYNC, 0), 0, &client, backend_.get(),
                  nullptr);
  // Reported while the worker waits at the barrier: the coordinator counted
  // it there.
  trainer.SetCheckpointPending(5, absl::Now());
  ASSERT_TRUE(trainer.Barrier("epoch-0-start", true).ok());
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  EXPECT_TRUE(client.arrivals.empty());
}

TEST_F(TrainerCheckpointTest, BoundedStepGateRoundLeadsToAnArrival) {
  FakePsClient client;
  client.gate_pending = [](int64_t step) -> int64_t {
    return step == 4 ? 3 : 0;  // open when the worker is about to start step 5
  };
  Trainer trainer(Config(TrainingConfig::BOUNDED, 0), 0, &client,
                  backend_.get(), nullptr);
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  ASSERT_EQ(client.arrivals.size(), 1u);
  EXPECT_EQ(client.arrivals[0].step, 5);
  EXPECT_EQ(client.arrivals[0].id, 3);
  ExpectPositionAfter(client.arrivals[0].position, 5 * kBatch);
}

TEST_F(TrainerCheckpointTest, SyncBarriersCarryStepAndPosition) {
  FakePsClient client;
  Trainer trainer(Config(TrainingConfig::SYNC, 0), 0, &client, backend_.get(),
                  nullptr);
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  ASSERT_EQ(client.barriers.size(), static_cast<size_t>(kSteps + 1));
  for (int k = 0; k <= kSteps; ++k) {
    const FakePsClient::BarrierCall& b = client.barriers[k];
    EXPECT_EQ(b.name, absl::StrCat("epoch-0-step-", k));
    EXPECT_EQ(b.has_more, k < kSteps);
    EXPECT_EQ(b.step, std::min(k + 1, kSteps));
    EXPECT_EQ(b.unacked_pushes, 0);
    ExpectPositionAfter(b.position, std::min(k + 1, kSteps) * kBatch);
  }
  EXPECT_TRUE(client.arrivals.empty());
}

TEST_F(TrainerCheckpointTest, BarrierSendsMergedGradientsFirst) {
  FakePsClient client;
  JobConfig config = Config(TrainingConfig::ASYNC, 0);
  config.mutable_training()->set_max_inflight_pushes(1);
  config.mutable_training()->set_max_merged_steps(100);
  Trainer trainer(config, 0, &client, backend_.get(), nullptr);
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  const int pushes_before = client.pushes;
  auto done = trainer.Barrier("epoch-1-done", false);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(client.barriers.size(), 1u);
  EXPECT_EQ(client.barriers[0].unacked_pushes, 0);
  EXPECT_EQ(client.barriers[0].step, kSteps);
  // Steps merged behind the full queue went out before the barrier.
  EXPECT_GT(client.pushes, pushes_before);
  ExpectPositionAfter(client.barriers[0].position, kLines);
}

TEST_F(TrainerCheckpointTest, WithoutACheckpointSectionNothingArrives) {
  FakePsClient client;
  client.gate_pending = [](int64_t) -> int64_t { return 4; };
  Trainer trainer(Config(TrainingConfig::BOUNDED, 0, /*checkpoints=*/false), 0,
                  &client, backend_.get(), nullptr);
  trainer.SetCheckpointPending(5, absl::Now());
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  EXPECT_TRUE(client.arrivals.empty());
  EXPECT_EQ(trainer.step(), kSteps);
  EXPECT_FALSE(trainer.position().has_file_index());
  auto done = trainer.Barrier("b", false);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(client.barriers[0].step, kSteps);
  EXPECT_EQ(client.barriers[0].position.ByteSizeLong(), 0u);
}

TEST_F(TrainerCheckpointTest, ResumeContinuesAtThePositionAndStep) {
  // A first run stops after 3 steps (a checkpoint there).
  DataPosition at;
  {
    FakePsClient client;
    JobConfig config = Config(TrainingConfig::ASYNC, 3);
    config.mutable_training()->set_max_steps(3);
    Trainer trainer(config, 0, &client, backend_.get(), nullptr);
    ASSERT_TRUE(trainer.TrainEpoch(0).ok());
    ASSERT_EQ(client.arrivals.size(), 1u);
    at = client.arrivals[0].position;
  }
  FakePsClient client;
  Trainer trainer(Config(TrainingConfig::ASYNC, 3), 0, &client, backend_.get(),
                  nullptr);
  trainer.ResumeFrom(3, at);
  EXPECT_EQ(trainer.step(), 3);
  ASSERT_TRUE(trainer.TrainEpoch(0).ok());
  // The other 7 batches, counted on from step 3.
  EXPECT_EQ(trainer.stats().examples, kLines - 3 * kBatch);
  EXPECT_EQ(trainer.step(), kSteps);
  ASSERT_EQ(client.arrivals.size(), 2u);
  EXPECT_EQ(client.arrivals[0].step, 6);
  ExpectPositionAfter(client.arrivals[0].position, 6 * kBatch);
  EXPECT_EQ(client.arrivals[1].step, 9);
  // The next epoch starts from its beginning.
  ASSERT_TRUE(trainer.TrainEpoch(1).ok());
  EXPECT_EQ(trainer.stats().examples, 2 * kLines - 3 * kBatch);
  EXPECT_EQ(trainer.position().epoch(), 1);
}

// A pipelined job resumed at a step that is not a multiple of
// pull_dense_every pulls the dense vector at its first step, then on the
// schedule (it used to fail: "model has no dense parameters").
TEST_F(TrainerCheckpointTest, ResumeBetweenDensePullsPullsAtTheFirstStep) {
  for (auto mode : {TrainingConfig::ASYNC, TrainingConfig::BOUNDED}) {
    SCOPED_TRACE(TrainingConfig::Mode_Name(mode));
    DataPosition at;
    {
      FakePsClient client;
      JobConfig config = Config(mode, 3);
      config.mutable_training()->set_max_steps(3);
      Trainer trainer(config, 0, &client, backend_.get(), nullptr);
      ASSERT_TRUE(trainer.TrainEpoch(0).ok());
      ASSERT_EQ(client.arrivals.size(), 1u);
      at = client.arrivals[0].position;
    }
    FakePsClient client;
    JobConfig config = Config(mode, 3);
    config.mutable_training()->set_pull_dense_every(4);
    Trainer trainer(config, 0, &client, backend_.get(), nullptr);
    trainer.ResumeFrom(3, at);
    absl::Status s = trainer.TrainEpoch(0);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(trainer.step(), kSteps);
    EXPECT_THAT(client.dense_pull_steps, testing::ElementsAre(3, 4, 8));
  }
}

}  // namespace
}  // namespace ps
