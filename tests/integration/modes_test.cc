// Every training mode on a real 2-server/2-worker loopback cluster (servers
// in this process, workers in threads) on generated data with a known oracle
// AUC; plus what each mode promises about staleness and pushes; a model
// over three tables of mixed dims in the ASYNC, BOUNDED and GEO modes; and
// FWFM against LR on data with planted slot-pair interactions.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/service/ps_handler.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/temp_dir.h"
#include "tools/datagen/datagen.h"
#include "worker/train/worker_job.h"

namespace ps {
namespace {

using testing_util::TempDir;

constexpr char kJob[] = R"pb(
cluster { servers: "127.0.0.1:1" servers: "127.0.0.1:2" num_workers: 2 }
sparse_tables {
  name: "embedding"
  dim: 8
  optimizer { type: ADAGRAD learning_rate: 0.05 }
}
model {
  type: DNN
  sparse_table: "embedding"
  hidden_units: 32
  dense_optimizer { type: ADAGRAD learning_rate: 0.01 }
}
data {
  batch_size: 512
  generate {
    output_dir: "unused"
    seed: 11
    train_rows: 400000
    eval_rows: 30000
    vocab_size: 100
    num_interactions: 0
  }
}
training { log_every_steps: 200 }
)pb";

class ModesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One data folder for the tests of this process (ctest runs each test
    // of this file in a process of its own).
    data_dir_ = new TempDir();
    ConfigOverrides overrides;
    overrides.data_dir = data_dir_->path();
    auto config = ParseJobConfig(kJob, "modes_test", "", overrides);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = new JobConfig(*config);
    auto report = GenerateCriteoData(config_->data().generate());
    ASSERT_TRUE(report.ok()) << report.status();
    report_ = new GeneratorReport(*report);
  }
  static void TearDownTestSuite() {
    delete config_;
    delete report_;
    delete data_dir_;
  }

  // Trains in `mode` and checks the eval AUC against the oracle.
  std::unique_ptr<LocalCluster> TrainAndCheck(TrainingConfig::Mode mode,
                                              double max_gap) {
    JobConfig config = *config_;
    config.mutable_training()->set_mode(mode);
    Customize(&config);
    auto cluster = RunLocalCluster(config);
    EXPECT_TRUE(cluster->servers_stopped);
    if (cluster->results.empty()) return cluster;
    int64_t examples = 0;
    for (const auto& r : cluster->results) {
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) examples += r->train.examples;
    }
    EXPECT_EQ(examples, report_->train_rows);
    const auto& r0 = cluster->results[0];
    if (r0.ok() && r0->eval.has_value()) {
      std::cout << TrainingConfig::Mode_Name(mode) << ": eval auc "
                << r0->eval->auc << " (oracle " << report_->oracle_auc << ")\n";
      EXPECT_GE(r0->eval->auc, report_->oracle_auc - max_gap);
    } else {
      ADD_FAILURE() << "worker 0 did not evaluate";
    }
    return cluster;
  }

  virtual void Customize(JobConfig*) {}

  static JobConfig* config_;
  static GeneratorReport* report_;
  static TempDir* data_dir_;
};

JobConfig* ModesTest::config_ = nullptr;
GeneratorReport* ModesTest::report_ = nullptr;
TempDir* ModesTest::data_dir_ = nullptr;

TEST_F(ModesTest, AsyncWithinPoint01OfOracle) {
  TrainAndCheck(TrainingConfig::ASYNC, 0.01);
}

TEST_F(ModesTest, SyncWithinPoint01OfOracle) {
  TrainAndCheck(TrainingConfig::SYNC, 0.01);
}

TEST_F(ModesTest, BoundedWithinPoint01OfOracleAndNeverTooFarAhead) {
  auto cluster = TrainAndCheck(TrainingConfig::BOUNDED, 0.01);
  ASSERT_FALSE(cluster->servers.empty());
  // The coordinator's own record of the leads it allowed.
  CoordinatorImpl* coordinator = cluster->servers[0]->coordinator();
  ASSERT_NE(coordinator, nullptr);
  EXPECT_LE(coordinator->max_granted_lead(), config_->training().staleness());
}

class GeoTest : public ModesTest {
 protected:
  void Customize(JobConfig* config) override {
    config->mutable_training()->set_geo_every(5);
  }
};

TEST_F(GeoTest, GeoWithinPoint01OfOracleAndPushesDeltasEveryKSteps) {
  auto cluster = TrainAndCheck(TrainingConfig::GEO, 0.01);
  ASSERT_EQ(cluster->servers.size(), 2u);
  ASSERT_EQ(cluster->results.size(), 2u);
  // Server 0 holds dense block 0, so it sees every dense push of a worker.
  PsHandler* handler = cluster->servers[0]->handler();
  for (int w = 0; w < 2; ++w) {
    ASSERT_TRUE(cluster->results[w].ok());
    const int64_t steps = cluster->results[w]->train.steps;
    PushCounts counts = handler->PushCountsOf(w);
    EXPECT_EQ(counts.dense_deltas, (steps + 4) / 5) << "worker " << w;
    EXPECT_EQ(counts.dense_gradients, 0) << "worker " << w;
    EXPECT_EQ(counts.sparse_gradients, 0) << "worker " << w;
    EXPECT_GT(counts.sparse_deltas, 0) << "worker " << w;
    EXPECT_LE(counts.sparse_deltas, (steps + 4) / 5) << "worker " << w;
  }
}

// The same job over three tables of mixed dims (model.slot_tables): the
// integer slots in a table of dim 4, half of the categorical ones in a
// table of dim 12 with its own optimizer, the rest in the job's table.
class MultiTableTest
    : public ModesTest,
      public ::testing::WithParamInterface<TrainingConfig::Mode> {
 protected:
  void Customize(JobConfig* config) override {
    SparseTableConfig* ints = config->add_sparse_tables();
    ints->set_name("ints");
    ints->set_dim(4);
    SparseTableConfig* ids = config->add_sparse_tables();
    ids->set_name("ids");
    ids->set_dim(12);
    ids->mutable_optimizer()->set_type(OptimizerConfig::ADAGRAD);
    ids->mutable_optimizer()->set_learning_rate(0.08f);
    SlotTableConfig* g = config->mutable_model()->add_slot_tables();
    g->set_table("ints");
    for (int s = 0; s < 13; ++s) g->add_slots(s);
    g = config->mutable_model()->add_slot_tables();
    g->set_table("ids");
    for (int s = 13; s < 39; s += 2) g->add_slots(s);
    config->mutable_training()->set_geo_every(5);
  }
};

TEST_P(MultiTableTest, MixedDimsTrainWithinPoint01OfOracle) {
  auto cluster = TrainAndCheck(GetParam(), 0.01);
  ASSERT_FALSE(cluster->servers.empty());
  // Every table got rows on the servers.
  for (uint32_t t = 0; t < 3; ++t) {
    int64_t rows = 0;
    for (const auto& server : cluster->servers) {
      rows += server->handler()->ExactRows(t).value_or(0);
    }
    EXPECT_GT(rows, 0) << "table " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, MultiTableTest,
    ::testing::Values(TrainingConfig::ASYNC, TrainingConfig::BOUNDED,
                      TrainingConfig::GEO),
    [](const ::testing::TestParamInfo<TrainingConfig::Mode>& info) {
      return TrainingConfig::Mode_Name(info.param);
    });

// Data with the generator's planted slot-pair interactions (6 of the 325
// categorical pairs), which an additive model cannot express: FWFM, which
// learns one weight per slot pair, must beat LR on it by a clear margin and
// come within 0.01 of the oracle. SYNC, so that the figures do not depend on
// timing: LR 0.7783, FWFM 0.7841 (oracle 0.7913), the same to 1e-5 with
// OpenBLAS's Prescott kernels; in ASYNC FWFM varied from 0.7822 to 0.7851.
constexpr char kPlantedPairsJob[] = R"pb(
cluster { servers: "127.0.0.1:1" servers: "127.0.0.1:2" num_workers: 2 }
sparse_tables {
  name: "embedding"
  dim: 9
  optimizer { type: ADAGRAD learning_rate: 0.05 initial_accumulator: 1e-4 }
  initializer { type: UNIFORM scale: 0.01 }
}
model {
  type: FWFM
  sparse_table: "embedding"
  dense_optimizer { type: ADAGRAD learning_rate: 0.1 }
}
data {
  batch_size: 512
  generate {
    output_dir: "unused"
    seed: 11
    train_rows: 1000000
    eval_rows: 30000
    vocab_size: 100
  }
}
training { mode: SYNC log_every_steps: 500 }
)pb";

TEST(PlantedPairsTest, FwFmLearnsTheInteractionsLrCannot) {
  TempDir data_dir;
  ConfigOverrides overrides;
  overrides.data_dir = data_dir.path();
  auto fwfm = ParseJobConfig(kPlantedPairsJob, "planted_pairs", "", overrides);
  ASSERT_TRUE(fwfm.ok()) << fwfm.status();
  auto report = GenerateCriteoData(fwfm->data().generate());
  ASSERT_TRUE(report.ok()) << report.status();
  JobConfig lr = *fwfm;
  lr.mutable_sparse_tables(0)->set_dim(1);
  lr.mutable_model()->set_type(ModelConfig::LR);

  auto eval_auc = [&](const JobConfig& config) -> double {
    auto cluster = RunLocalCluster(config);
    EXPECT_TRUE(cluster->servers_stopped);
    if (cluster->results.empty() || !cluster->results[0].ok() ||
        !cluster->results[0]->eval.has_value()) {
      ADD_FAILURE() << ModelConfig::Type_Name(config.model().type())
                    << ": worker 0 did not evaluate";
      return 0;
    }
    return cluster->results[0]->eval->auc;
  };
  const double lr_auc = eval_auc(lr);
  const double fwfm_auc = eval_auc(*fwfm);
  std::cout << "LR " << lr_auc << ", FWFM " << fwfm_auc << " (oracle "
            << report->oracle_auc << ")\n";
  EXPECT_GE(fwfm_auc, lr_auc + 0.004);
  EXPECT_GE(fwfm_auc, report->oracle_auc - 0.01);
}

}  // namespace
}  // namespace ps
