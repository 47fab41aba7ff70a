// A real cluster on loopback: 2 parameter servers (gRPC, port 0) and 2
// workers in threads of this process, training on generated data whose
// oracle AUC is known.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/config_validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tools/datagen/datagen.h"
#include "worker/train/worker_job.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::StatusIs;
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
  hidden_units: 64
  hidden_units: 32
  dense_optimizer { type: ADAGRAD learning_rate: 0.01 }
}
data {
  batch_size: 512
  generate {
    output_dir: "unused"
    seed: 5
    train_rows: 300000
    eval_rows: 30000
    vocab_size: 500
    num_interactions: 0
  }
}
training { log_every_steps: 200 }
)pb";

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigOverrides overrides;
    overrides.data_dir = dir_;
    auto config = ParseJobConfig(kJob, "cluster_test", "", overrides);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
  }

  GeneratorReport Generate() {
    auto report = GenerateCriteoData(config_.data().generate());
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : GeneratorReport();
  }

  TempDir temp_dir_;
  const std::string dir_ = temp_dir_.path();
  JobConfig config_;
};

TEST_F(ClusterTest, AsyncTrainingComesWithin002OfOracleAuc) {
  GeneratorReport data = Generate();
  ASSERT_GT(data.oracle_auc, 0.7);
  auto run = RunLocalCluster(config_);
  ASSERT_EQ(run->results.size(), 2u);
  int64_t examples = 0;
  for (const auto& r : run->results) {
    ASSERT_TRUE(r.ok()) << r.status();
    examples += r->train.examples;
    EXPECT_EQ(r->train.bad_lines, 0);
  }
  // Byte-range sharding: every training row is read by exactly one worker.
  EXPECT_EQ(examples, data.train_rows);
  ASSERT_TRUE(run->results[0]->eval.has_value());
  const EvalStats& eval = *run->results[0]->eval;
  EXPECT_EQ(eval.examples, data.eval_rows);
  std::cout << "eval auc " << eval.auc << " (oracle " << data.oracle_auc
            << "), logloss " << eval.logloss << " (oracle "
            << data.oracle_logloss << ")\n";
  EXPECT_GE(eval.auc, data.oracle_auc - 0.02)
      << "oracle " << data.oracle_auc << ", logloss " << eval.logloss;
  EXPECT_LT(eval.logloss, data.oracle_logloss + 0.03);
  EXPECT_NEAR(eval.calibration, 1.0, 0.1);
  EXPECT_FALSE(run->results[1]->eval.has_value());
  EXPECT_TRUE(run->servers_stopped);
  for (const auto& server : run->servers) {
    EXPECT_TRUE(server->job_outcome().ok()) << server->job_outcome();
  }
}

TEST_F(ClusterTest, DeepPrefetchTrainsEveryRowOnceAndLearnsAsTheNextBatchOnly) {
  // Three batches ahead, two pulls in flight, the dense vector with the
  // rows: every row still trained once, and on data with a vocabulary
  // large enough that a batch touches a small part of the table, the
  // staleness costs little against prefetching the next batch only
  // (measured: 0.004-0.005 of AUC on this job, 0.0065 under ThreadSanitizer;
  // on data whose every batch updates every row it lost 0.19).
  config_.mutable_data()->mutable_generate()->set_vocab_size(20000);
  GeneratorReport data = Generate();
  double auc[2] = {0, 0};
  const int depths[2] = {1, 3};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(testing::Message() << "prefetch_batches " << depths[i]);
    config_.mutable_training()->set_prefetch_batches(depths[i]);
    auto run = RunLocalCluster(config_);
    ASSERT_EQ(run->results.size(), 2u);
    int64_t examples = 0;
    for (const auto& r : run->results) {
      ASSERT_TRUE(r.ok()) << r.status();
      examples += r->train.examples;
      EXPECT_EQ(r->train.stages.steps, r->train.steps);
    }
    EXPECT_EQ(examples, data.train_rows);
    ASSERT_TRUE(run->results[0]->eval.has_value());
    auc[i] = run->results[0]->eval->auc;
    EXPECT_TRUE(run->servers_stopped);
  }
  std::cout << "eval auc " << auc[0] << " (1 ahead), " << auc[1]
            << " (3 ahead), oracle " << data.oracle_auc << "\n";
  EXPECT_GE(auc[0], data.oracle_auc - 0.025);
  EXPECT_GE(auc[1], auc[0] - 0.012);
}

TEST_F(ClusterTest, SyncTrainingWithUnequalSharesFinishes) {
  // 3 workers over 2 servers; the byte ranges give them different numbers
  // of batches, so the ones that run out first must keep meeting the others
  // at the barrier until all are done.
  config_.mutable_cluster()->set_num_workers(3);
  config_.mutable_training()->set_mode(TrainingConfig::SYNC);
  config_.mutable_data()->mutable_generate()->set_train_rows(150000);
  config_.mutable_data()->set_batch_size(500);
  GeneratorReport data = Generate();
  auto run = RunLocalCluster(config_);
  ASSERT_EQ(run->results.size(), 3u);
  int64_t examples = 0;
  for (const auto& r : run->results) {
    ASSERT_TRUE(r.ok()) << r.status();
    examples += r->train.examples;
  }
  EXPECT_EQ(examples, data.train_rows);
  ASSERT_TRUE(run->results[0]->eval.has_value());
  EXPECT_GE(run->results[0]->eval->auc, data.oracle_auc - 0.05);
  EXPECT_TRUE(run->servers_stopped);
}

TEST_F(ClusterTest, OneSyncWorkerTrainsTheSameOverUnixSocketsAsOverTcp) {
  // The colocated fast path changes the transport only: one SYNC worker
  // (every push applied before the next pull) computes the same model
  // either way, bit for bit.
  config_.mutable_cluster()->set_num_workers(1);
  config_.mutable_training()->set_mode(TrainingConfig::SYNC);
  config_.mutable_data()->mutable_generate()->set_train_rows(40000);
  config_.mutable_data()->mutable_generate()->set_eval_rows(10000);
  Generate();
  auto tcp = RunLocalCluster(config_);
  TempDir sockets;
  auto local =
      RunLocalCluster(config_, false, absl::Minutes(1), 0, sockets.path());
  ASSERT_EQ(tcp->results.size(), 1u);
  ASSERT_EQ(local->results.size(), 1u);
  ASSERT_TRUE(tcp->results[0].ok()) << tcp->results[0].status();
  ASSERT_TRUE(local->results[0].ok()) << local->results[0].status();
  const WorkerJobResult& a = *tcp->results[0];
  const WorkerJobResult& b = *local->results[0];
  EXPECT_EQ(a.train.examples, 40000);
  EXPECT_EQ(b.train.examples, 40000);
  ASSERT_TRUE(a.eval.has_value() && b.eval.has_value());
  EXPECT_EQ(a.eval->auc, b.eval->auc);
  EXPECT_EQ(a.eval->logloss, b.eval->logloss);
  EXPECT_GT(b.eval->auc, 0.7);
  EXPECT_TRUE(local->servers_stopped);
  // Where the time went: every trained step counted, each stage measured.
  const StageTimes& st = b.train.stages;
  EXPECT_EQ(st.steps, b.train.steps);
  EXPECT_GT(st.read_ms, 0);
  EXPECT_GT(st.dedup_ms, 0);
  EXPECT_GT(st.pull_ms, 0);
  EXPECT_GT(st.compute_ms, 0);
  EXPECT_GT(st.push_ms, 0);
  EXPECT_GT(b.train.cpu_seconds, 0);
}

// One data file, a fifth of its lines held out (data.eval_holdout_fraction):
// the workers train on the rest, worker 0 evaluates on exactly those, and
// the model learns.
TEST_F(ClusterTest, HeldOutLinesAreEvaluatedAndNotTrained) {
  config_.mutable_data()->mutable_generate()->set_train_rows(60000);
  GeneratorReport data = Generate();
  config_.mutable_data()->clear_generate();
  config_.mutable_data()->clear_eval_files();
  config_.mutable_data()->set_eval_holdout_fraction(0.2);
  config_.mutable_data()->set_reader_threads(2);
  ASSERT_TRUE(ValidateJobConfig(config_, "holdout", nullptr).ok());
  auto run = RunLocalCluster(config_);
  ASSERT_EQ(run->results.size(), 2u);
  int64_t trained = 0;
  for (const auto& r : run->results) {
    ASSERT_TRUE(r.ok()) << r.status();
    trained += r->train.examples;
  }
  ASSERT_TRUE(run->results[0]->eval.has_value());
  const EvalStats& eval = *run->results[0]->eval;
  EXPECT_EQ(trained + eval.examples, data.train_rows);
  EXPECT_NEAR(eval.examples, 0.2 * data.train_rows, 0.01 * data.train_rows);
  EXPECT_GE(eval.auc, data.oracle_auc - 0.05);
  EXPECT_TRUE(run->servers_stopped);
}

TEST_F(ClusterTest, MissingTrainingFileFailsTheWorkerWithItsName) {
  config_.mutable_data()->clear_train_files();
  config_.mutable_data()->add_train_files(dir_ + "/nope-*.tsv");
  config_.mutable_data()->clear_eval_files();
  config_.mutable_cluster()->set_num_workers(1);
  auto run = RunLocalCluster(config_);
  ASSERT_EQ(run->results.size(), 1u);
  ASSERT_FALSE(run->results[0].ok());
  EXPECT_THAT(run->results[0],
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope-*.tsv")));
  // The failed worker still told the coordinator, which ended the job as
  // failed.
  EXPECT_TRUE(run->servers_stopped);
  EXPECT_THAT(run->servers[0]->job_outcome(),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("(1 of 1 workers failed)")));
}

// Worker 1 of 2 reads only malformed lines (its half of the file's bytes)
// with max_bad_line_ratio 0 and fails; worker 0 trains on the good half and
// succeeds. The job ends, and every server's outcome is failed, naming
// worker 1 and its error.
TEST_F(ClusterTest, OneFailedWorkerOfTwoFailsTheJobOnEveryServer) {
  // 1000 good lines, then 1000 bad ones of the same length (49 bytes).
  std::string data;
  for (int i = 0; i < 1000; ++i) {
    // label, 13 missing integers, C1 set, C2..C26 missing.
    data += absl::StrCat(i % 2, std::string(13, '\t'), "\t1a2b3c4d",
                         std::string(25, '\t'), "\n");
  }
  const std::string bad = "garbage line" + std::string(36, 'x') + "\n";
  ASSERT_EQ(bad.size(), data.size() / 1000);
  for (int i = 0; i < 1000; ++i) data += bad;
  const std::string file = temp_dir_.Write("mixed.tsv", data);
  config_.mutable_data()->clear_generate();
  config_.mutable_data()->clear_train_files();
  config_.mutable_data()->add_train_files(file);
  config_.mutable_data()->clear_eval_files();
  config_.mutable_data()->set_max_bad_line_ratio(0);
  auto run = RunLocalCluster(config_);
  ASSERT_EQ(run->results.size(), 2u);
  EXPECT_TRUE(run->results[0].ok()) << run->results[0].status();
  EXPECT_THAT(run->results[1], StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr(file + ":1001")));
  EXPECT_TRUE(run->servers_stopped);
  ASSERT_EQ(run->servers.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    absl::Status outcome = run->servers[i]->job_outcome();
    EXPECT_THAT(outcome, StatusIs(absl::StatusCode::kAborted,
                                  HasSubstr("job failed: worker 1: too many "
                                            "malformed lines")))
        << "server " << i;
    EXPECT_THAT(outcome,
                StatusIs(absl::StatusCode::kAborted, HasSubstr(file + ":1001")))
        << "server " << i;
    EXPECT_THAT(outcome, StatusIs(absl::StatusCode::kAborted,
                                  HasSubstr("(1 of 2 workers failed)")))
        << "server " << i;
    EXPECT_THAT(outcome.message(), Not(HasSubstr("worker 0")));
  }
}

}  // namespace
}  // namespace ps
