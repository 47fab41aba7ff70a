// Checkpoint, resume and export on a real loopback cluster (2 servers, gRPC,
// workers in threads): a SYNC job stopped after some steps and resumed from
// its checkpoint ends with parameters bit-identical to an uninterrupted run
// (also with other numbers of parser threads before and after the cut);
// the final checkpoint exported for serving predicts what the servers'
// rows and the model's forward pass give. A job reading a command's output
// resumes by line count as exactly, and one following a folder trains on
// files as they arrive; early stopping ends a job on its eval logloss. A
// job over three tables resumes resharded onto another server count.
//
// One worker: with several, a SYNC server applies the workers' concurrent
// pushes in arrival order, so even two uninterrupted runs differ in the
// last bits. Bit equality holds because both runs compute every step with
// the same kernels on the same shapes, in one process (one OpenBLAS core).
// The export's predictions come from another code path (other batch
// shapes), so they are compared within a stated tolerance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint.h"
#include "common/config.h"
#include "common/export_format.h"
#include "common/hash.h"
#include "common/model_spec.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "server/service/checkpoint_export.h"
#include "server/service/ps_handler.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wire_requests.h"
#include "tools/ctl/admin_client.h"
#include "tools/datagen/datagen.h"
#include "worker/data/batch.h"
#include "worker/data/data_reader.h"
#include "worker/model/model.h"
#include "worker/model/predict.h"

namespace ps {
namespace {

using testing_util::TempDir;

constexpr char kJob[] = R"pb(
cluster { servers: "127.0.0.1:1" servers: "127.0.0.1:2" num_workers: 1 }
sparse_tables {
  name: "emb"
  dim: 8
  optimizer { type: ADAGRAD learning_rate: 0.05 }
  accessor { }
}
model {
  type: DNN
  sparse_table: "emb"
  hidden_units: 32
  dense_optimizer { type: ADAGRAD learning_rate: 0.01 }
}
data {
  batch_size: 256
  generate {
    output_dir: "unused"
    seed: 9
    train_rows: 30000
    eval_rows: 3000
    vocab_size: 300
    num_interactions: 0
  }
}
training { mode: SYNC log_every_steps: 50 }
checkpoint { dir: "set-by-the-test" every_steps: 25 keep: 10 }
)pb";

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigOverrides overrides;
    overrides.data_dir = dir_;
    auto config = ParseJobConfig(kJob, "resume_test", "", overrides);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto report = GenerateCriteoData(config_.data().generate());
    ASSERT_TRUE(report.ok()) << report.status();
  }

  JobConfig WithCheckpointDir(const std::string& name) const {
    JobConfig c = config_;
    c.mutable_checkpoint()->set_dir(absl::StrCat(dir_, "/", name));
    return c;
  }

  // The final export of the job whose checkpoints are under `config`.
  std::unique_ptr<ExportedModel> FinalExport(const JobConfig& config,
                                             const std::string& name) {
    auto latest = OpenLatest(config.checkpoint().dir());
    EXPECT_TRUE(latest.ok()) << latest.status();
    if (!latest.ok()) return nullptr;
    CheckpointExportOptions e;
    e.checkpoint_dir = latest->dir;
    e.out_dir = absl::StrCat(dir_, "/export-", name);
    auto exported = ExportCheckpoint(e);
    EXPECT_TRUE(exported.ok()) << exported.status();
    if (!exported.ok()) return nullptr;
    auto model = ExportedModel::LoadFile(exported->path);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? std::move(model).value() : nullptr;
  }

  TempDir temp_dir_;
  const std::string dir_ = temp_dir_.path();
  JobConfig config_;
};

void ExpectOk(const LocalCluster& run) {
  ASSERT_FALSE(run.results.empty());
  for (const auto& r : run.results) ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(run.servers_stopped);
}

TEST_F(ResumeTest, SyncResumeIsBitIdenticalToAnUninterruptedRun) {
  const JobConfig whole = WithCheckpointDir("whole");
  auto full = RunLocalCluster(whole);
  ExpectOk(*full);
  const int64_t steps = full->results[0]->train.steps;
  ASSERT_GT(steps, 100);

  // The same job stopped at step 60 (its final checkpoint records where the
  // worker stood), then resumed to the end; each part with another number
  // of parser threads, which changes neither batches nor positions.
  JobConfig first = WithCheckpointDir("split");
  first.mutable_training()->set_max_steps(60);
  first.mutable_data()->set_reader_threads(3);
  auto part = RunLocalCluster(first);
  ExpectOk(*part);
  EXPECT_EQ(part->results[0]->train.steps, 60);
  auto cut = OpenLatest(first.checkpoint().dir());
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->manifest.global_step(), 60);
  ASSERT_EQ(cut->manifest.worker_positions_size(), 1);
  EXPECT_GT(cut->manifest.worker_positions(0).offset(), 0);

  JobConfig second = WithCheckpointDir("split");
  second.mutable_data()->set_reader_threads(2);
  auto rest = RunLocalCluster(second, /*resume=*/true);
  ExpectOk(*rest);
  // No example skipped, none trained twice.
  EXPECT_EQ(part->results[0]->train.examples + rest->results[0]->train.examples,
            full->results[0]->train.examples);

  auto a = FinalExport(whole, "whole");
  auto b = FinalExport(second, "split");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->step(), steps);
  EXPECT_EQ(b->step(), steps);
  EXPECT_EQ(a->dense(), b->dense());
  const int t = a->TableIndex("emb");
  const std::vector<uint64_t> keys = a->Keys(t);
  ASSERT_EQ(keys, b->Keys(b->TableIndex("emb")));
  ASSERT_GT(keys.size(), 1000u);
  for (uint64_t key : keys) {
    const float* ra = a->Row(t, key);
    const float* rb = b->Row(t, key);
    ASSERT_EQ(std::vector<float>(ra, ra + 8), std::vector<float>(rb, rb + 8))
        << "key " << key;
  }
  // Both final evaluations agree too.
  ASSERT_TRUE(full->results[0]->eval.has_value());
  ASSERT_TRUE(rest->results[0]->eval.has_value());
  EXPECT_EQ(full->results[0]->eval->auc, rest->results[0]->eval->auc);
}

// A model over three tables of mixed dims (model.slot_tables) stopped at
// step 60 on two servers and resumed from that checkpoint on three (the
// rows reshard on load) ends with every table's rows, and the dense
// vector, bit-identical to an uninterrupted two-server run.
TEST_F(ResumeTest, AMultiTableJobResumesReshardedOntoThreeServers) {
  auto multi = [this](const std::string& name, int servers) {
    JobConfig c = WithCheckpointDir(name);
    SparseTableConfig* ids = c.add_sparse_tables();
    *ids = c.sparse_tables(0);
    ids->set_name("ids");
    ids->set_dim(12);
    SparseTableConfig* small = c.add_sparse_tables();
    *small = c.sparse_tables(0);
    small->set_name("small");
    small->set_dim(3);
    small->mutable_optimizer()->set_type(OptimizerConfig::SGD);
    auto map = [&c](const std::string& table, std::vector<int> slots) {
      SlotTableConfig* g = c.mutable_model()->add_slot_tables();
      g->set_table(table);
      for (int s : slots) g->add_slots(s);
    };
    map("ids", {13, 14, 15});
    map("small", {0, 5, 30, 38});
    c.mutable_cluster()->clear_servers();
    for (int s = 0; s < servers; ++s) {
      c.mutable_cluster()->add_servers(absl::StrCat("127.0.0.1:", s + 1));
    }
    return c;
  };
  const JobConfig whole = multi("multi-whole", 2);
  auto full = RunLocalCluster(whole);
  ExpectOk(*full);
  const int64_t steps = full->results[0]->train.steps;
  ASSERT_GT(steps, 100);

  JobConfig first = multi("multi-split", 2);
  first.mutable_training()->set_max_steps(60);
  auto part = RunLocalCluster(first);
  ExpectOk(*part);
  auto rest = RunLocalCluster(multi("multi-split", 3), /*resume=*/true);
  ExpectOk(*rest);
  EXPECT_EQ(part->results[0]->train.examples + rest->results[0]->train.examples,
            full->results[0]->train.examples);

  auto a = FinalExport(whole, "multi-whole");
  auto b = FinalExport(multi("multi-split", 3), "multi-split");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->step(), steps);
  EXPECT_EQ(a->dense(), b->dense());
  for (const auto& [name, dim] : std::vector<std::pair<std::string, int>>{
           {"emb", 8}, {"ids", 12}, {"small", 3}}) {
    const int t = a->TableIndex(name);
    ASSERT_GE(t, 0) << name;
    const std::vector<uint64_t> keys = a->Keys(t);
    ASSERT_EQ(keys, b->Keys(b->TableIndex(name))) << name;
    ASSERT_GT(keys.size(), 100u) << name;
    for (uint64_t key : keys) {
      const float* ra = a->Row(t, key);
      const float* rb = b->Row(b->TableIndex(name), key);
      ASSERT_EQ(std::vector<float>(ra, ra + dim),
                std::vector<float>(rb, rb + dim))
          << name << " key " << key;
    }
  }
}

// Training from a command's output (data.train_files "pipe:CMD"): a job
// stopped at step 60 records its position as a line count, and the resumed
// job runs the command again, skips those lines and ends with the
// parameters of an uninterrupted run bit for bit.
TEST_F(ResumeTest, APipeInputResumesByLineCount) {
  auto piped = [&](const std::string& name) {
    JobConfig c = WithCheckpointDir(name);
    const std::string train = c.data().train_files(0);
    c.mutable_data()->clear_generate();
    c.mutable_data()->clear_train_files();
    c.mutable_data()->add_train_files(absl::StrCat("pipe:cat '", train, "'"));
    return c;
  };
  const JobConfig whole = piped("pipe-whole");
  auto full = RunLocalCluster(whole);
  ExpectOk(*full);
  const int64_t steps = full->results[0]->train.steps;
  ASSERT_GT(steps, 100);
  EXPECT_EQ(full->results[0]->train.examples, 30000);

  JobConfig first = piped("pipe-split");
  first.mutable_training()->set_max_steps(60);
  auto part = RunLocalCluster(first);
  ExpectOk(*part);
  auto cut = OpenLatest(first.checkpoint().dir());
  ASSERT_TRUE(cut.ok()) << cut.status();
  ASSERT_EQ(cut->manifest.worker_positions_size(), 1);
  const DataPosition& at = cut->manifest.worker_positions(0);
  EXPECT_EQ(at.file(), first.data().train_files(0));
  EXPECT_EQ(at.offset(), 60 * 256);  // lines of the command's output

  auto rest = RunLocalCluster(piped("pipe-split"), /*resume=*/true);
  ExpectOk(*rest);
  EXPECT_EQ(part->results[0]->train.examples + rest->results[0]->train.examples,
            30000);
  auto a = FinalExport(whole, "pipe-whole");
  auto b = FinalExport(first, "pipe-split");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->step(), steps);
  EXPECT_EQ(a->dense(), b->dense());
  const int t = a->TableIndex("emb");
  const std::vector<uint64_t> keys = a->Keys(t);
  ASSERT_EQ(keys, b->Keys(b->TableIndex("emb")));
  for (uint64_t key : keys) {
    const float* ra = a->Row(t, key);
    const float* rb = b->Row(t, key);
    ASSERT_EQ(std::vector<float>(ra, ra + 8), std::vector<float>(rb, rb + 8))
        << "key " << key;
  }
}

// Follow mode (data.follow): the job starts with the first third of the
// rows in the folder; the rest arrive as two more files while it trains,
// then the done file. Every row is trained once, the last checkpoint stands
// at the end of the third file, and the exports published after every
// checkpoint (a FULL one, then DELTAs) add up to the final model.
TEST_F(ResumeTest, AFollowingJobTrainsOnFilesAsTheyArrive) {
  JobConfig c = WithCheckpointDir("follow");
  std::vector<std::string> lines;
  {
    std::ifstream in(c.data().train_files(0));
    std::string line;
    while (std::getline(in, line)) lines.push_back(line + "\n");
  }
  ASSERT_EQ(lines.size(), 30000u);
  const std::string folder = dir_ + "/incoming";
  std::filesystem::create_directories(folder);
  auto publish = [&](int part) {
    std::string text;
    for (int i = part * 10000; i < (part + 1) * 10000; ++i) text += lines[i];
    const std::string tmp = absl::StrCat(folder, "/.part-", part, ".tmp");
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, absl::StrCat(folder, "/part-", part, ".tsv"));
  };
  c.mutable_data()->clear_generate();
  c.mutable_data()->clear_train_files();
  c.mutable_data()->add_train_files(folder + "/part-*.tsv");
  c.mutable_data()->set_follow(true);
  c.mutable_data()->set_follow_poll_ms(20);
  c.mutable_data()->set_follow_done_file(folder + "/_DONE");
  // Deltas published as it trains: after every checkpoint.
  c.mutable_checkpoint()->set_every_steps(20);
  c.mutable_export_()->set_dir(dir_ + "/published");
  c.mutable_export_()->set_delta(true);
  publish(0);
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    publish(1);
    absl::SleepFor(absl::Milliseconds(300));
    publish(2);
    std::ofstream(folder + "/_DONE") << "";
  });
  auto run = RunLocalCluster(c);
  producer.join();
  ExpectOk(*run);
  EXPECT_EQ(run->results[0]->train.examples, 30000);
  ASSERT_TRUE(run->results[0]->eval.has_value());
  EXPECT_GT(run->results[0]->eval->auc, 0.6);
  auto last = OpenLatest(c.checkpoint().dir());
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_EQ(last->manifest.worker_positions_size(), 1);
  // At the end of the third file: a resume reads only files that come later.
  const DataPosition& at = last->manifest.worker_positions(0);
  EXPECT_EQ(at.file_index(), 2);
  EXPECT_EQ(at.file(), folder + "/part-2.tsv");
  EXPECT_EQ(at.offset(),
            static_cast<int64_t>(std::filesystem::file_size(at.file())));

  // The published FULL export and the DELTAs after it, applied in order,
  // are the model of the final checkpoint, row for row.
  int exports = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(dir_ + "/published")) {
    exports += e.path().extension() == ".psx";
  }
  EXPECT_GE(exports, 4);  // 120 steps (40 a file), a checkpoint every 20
  auto published = ExportedModel::LoadDir(dir_ + "/published");
  ASSERT_TRUE(published.ok()) << published.status();
  auto full = FinalExport(c, "follow-full");
  ASSERT_NE(full, nullptr);
  EXPECT_EQ((*published)->step(), full->step());
  EXPECT_EQ((*published)->dense(), full->dense());
  const int t = full->TableIndex("emb");
  const std::vector<uint64_t> keys = full->Keys(t);
  ASSERT_EQ((*published)->Keys(t), keys);
  for (uint64_t key : keys) {
    const float* a = full->Row(t, key);
    const float* b = (*published)->Row(t, key);
    ASSERT_EQ(std::vector<float>(a, a + 8), std::vector<float>(b, b + 8))
        << "key " << key;
  }
}

// Early stopping: a 30-epoch job whose eval logloss stops improving by
// 0.001 stops two epochs after its best, every worker with it, having
// trained whole epochs only; the same job without it runs all 30.
TEST_F(ResumeTest, EarlyStoppingEndsTheJobWhenEvalLoglossStopsImproving) {
  JobConfig c = WithCheckpointDir("early");
  c.mutable_cluster()->set_num_workers(2);
  c.mutable_training()->set_epochs(30);
  c.mutable_training()->set_early_stopping_patience(2);
  c.mutable_training()->set_early_stopping_min_delta(0.001);
  auto run = RunLocalCluster(c);
  ExpectOk(*run);
  const int stopped = run->results[0]->stopped_early_after_epoch;
  EXPECT_GE(stopped, 3);  // a best epoch, then two without improvement
  EXPECT_LT(stopped, 30);
  // Worker 0 decides; every worker stops after the same epoch.
  EXPECT_EQ(run->results[1]->stopped_early_after_epoch, stopped);
  int64_t examples = 0;
  for (const auto& r : run->results) examples += r->train.examples;
  EXPECT_EQ(examples, int64_t{30000} * stopped);  // whole epochs
  ASSERT_TRUE(run->results[0]->eval.has_value());
  EXPECT_GT(run->results[0]->eval->auc, 0.6);
}

TEST_F(ResumeTest, ExportPredictsWhatTheServersRowsGive) {
  const JobConfig job = WithCheckpointDir("ckpt");
  auto run = RunLocalCluster(job);
  ExpectOk(*run);
  auto exported = FinalExport(job, "final");
  ASSERT_NE(exported, nullptr);

  auto backend = Backend::CreateCpu(BackendOptions());
  ASSERT_TRUE(backend.ok());
  const std::string eval_file = job.data().eval_files(0);
  const std::string out = dir_ + "/probs.txt";
  auto lines = PredictFile(*exported, eval_file, out, backend->get());
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_EQ(*lines, 3000);

  // The reference: servers restored from the same checkpoint serve the
  // rows (unseen keys get their initial rows) and the model's own forward
  // pass scores them.
  auto latest = OpenLatest(job.checkpoint().dir());
  ASSERT_TRUE(latest.ok());
  RestoreFrom restore{latest->dir, latest->manifest};
  std::vector<std::unique_ptr<PsHandler>> servers;
  for (int r = 0; r < 2; ++r) {
    auto h = PsHandler::Create(job, r, &restore);
    ASSERT_TRUE(h.ok()) << h.status();
    servers.push_back(std::move(h).value());
  }
  const ModelSpec spec = MakeModelSpec(job);
  const DenseBlocks blocks{spec.dense_size, job.cluster().dense_block_size(),
                           2};
  std::vector<float> dense(spec.dense_size);
  for (int r = 0; r < 2; ++r) {
    PullResponse resp;
    ASSERT_TRUE(servers[r]->Pull(DensePullRequest(0), &resp).ok());
    ASSERT_EQ(static_cast<int64_t>(resp.dense_values().size()),
              blocks.SizeOn(r) * static_cast<int64_t>(sizeof(float)));
    const float* v = reinterpret_cast<const float*>(resp.dense_values().data());
    for (const auto& [begin, end] : blocks.RangesOf(r)) {
      std::copy(v, v + (end - begin), dense.begin() + begin);
      v += end - begin;
    }
  }
  Model model(spec, PoolMode::kSum, backend->get());
  ReaderOptions o;
  o.files = {eval_file};
  o.batch_size = 500;
  o.data = job.data();
  auto reader = DataReader::Open(o);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<float> want;
  Batch batch;
  StepResult result;
  while (*(*reader)->Next(&batch)) {
    UniqueKeys u = Deduplicate(batch);
    std::vector<float> rows(u.unique_keys.size() * spec.emb_dim);
    for (size_t i = 0; i < u.unique_keys.size(); ++i) {
      const uint64_t key = u.unique_keys[i];
      PullResponse resp;
      ASSERT_TRUE(
          servers[ServerForKey(key, 2)]
              ->Pull(SparsePullRequest(0, spec.emb_dim, {&key, 1}), &resp)
              .ok());
      ASSERT_EQ(resp.values().size(), spec.emb_dim * sizeof(float));
      std::memcpy(rows.data() + i * spec.emb_dim, resp.values().data(),
                  spec.emb_dim * sizeof(float));
    }
    ASSERT_TRUE(model
                    .Predict(batch, u.key_index, u.unique_keys.size(), rows,
                             dense, &result)
                    .ok());
    want.insert(want.end(), result.probs.begin(), result.probs.end());
  }
  std::ifstream in(out);
  std::vector<float> got;
  for (std::string line; std::getline(in, line);) {
    got.push_back(std::strtof(line.c_str(), nullptr));
  }
  ASSERT_EQ(got.size(), want.size());
  // Not bit equality: PredictFile scores batches of 1024 and the reference
  // batches of 500, so the GEMMs have other shapes, and OpenBLAS may block
  // and vectorize their sums differently (it does with its Zen and Haswell
  // kernels). Rounding through a few layers then moves a probability by a
  // few float ULPs: 1e-6 relative is some 8 ULPs, far below any real error
  // (a wrong row or dense weight moves it by 1e-3 or more).
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-6 * std::max(std::fabs(want[i]), 1e-3f))
        << "line " << i + 1;
  }
}

// `ps_ctl checkpoint` while workers train: they learn of the round from
// their heartbeats, stop at a step boundary, and the checkpoint records
// positions in the middle of their data; the job then finishes normally.
TEST_F(ResumeTest, OnDemandCheckpointDuringTraining) {
  JobConfig job = WithCheckpointDir("ondemand");
  job.mutable_checkpoint()->clear_every_steps();
  job.mutable_training()->set_mode(TrainingConfig::ASYNC);
  job.mutable_cluster()->set_num_workers(2);
  job.mutable_cluster()->set_heartbeat_ms(50);
  job.mutable_data()->set_batch_size(
      32);  // ~470 steps per worker, a few seconds
  std::vector<std::unique_ptr<PsServer>> servers;
  std::vector<std::string> endpoints;
  for (int i = 0; i < 2; ++i) {
    servers.push_back(StartServer(job, i));
    ASSERT_NE(servers.back(), nullptr);
    endpoints.push_back(Endpoint(*servers.back()));
  }
  servers[0]->SetServerEndpoints(endpoints);
  job.mutable_cluster()->clear_servers();
  for (const auto& e : endpoints) job.mutable_cluster()->add_servers(e);
  std::vector<absl::StatusOr<WorkerJobResult>> results(
      2, absl::UnknownError("not run"));
  std::vector<std::thread> workers;
  for (int j = 0; j < 2; ++j) {
    workers.emplace_back(
        [&, j] { results[j] = RunWorkerJob(job, j, WorkerJobOptions()); });
  }
  // Once both workers are under way (each has a push applied on server 0;
  // a fixed wait was too short on a slow machine, e.g. under ThreadSanitizer),
  // ask for a checkpoint.
  AdminOptions admin;
  admin.servers = endpoints;
  auto under_way = [&] {
    auto stats = CollectStats(admin);
    if (!stats.ok() || stats->empty()) return false;
    int pushing = 0;
    for (const auto& p : stats->front().stats.pushes()) {
      pushing += p.applied() > 0 ? 1 : 0;
    }
    return pushing == 2;
  };
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (!under_way() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  auto taken = RequestCheckpoint(admin);
  for (auto& t : workers) t.join();
  ASSERT_TRUE(taken.ok()) << taken.status();
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.status();

  auto opened = OpenCheckpoint(taken->dir());
  ASSERT_TRUE(opened.ok()) << opened.status();
  const Manifest& m = opened->manifest;
  const int64_t total = results[0]->train.steps;
  EXPECT_GT(m.global_step(), 0);
  EXPECT_LT(m.global_step(), total) << "the checkpoint came after training";
  ASSERT_EQ(m.worker_positions_size(), 2);
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(m.worker_positions(j).worker_rank(), j);
    EXPECT_GT(m.worker_steps(j), 0);
  }
  // The end of training wrote the final checkpoint after it (before the
  // coordinator stopped the servers).
  for (auto& s : servers) {
    EXPECT_TRUE(s->WaitForShutdownRequest(absl::Seconds(10)));
  }
  auto latest = OpenLatest(job.checkpoint().dir());
  ASSERT_TRUE(latest.ok());
  EXPECT_GT(latest->manifest.global_step(), m.global_step());
}

// checkpoint.every_minutes: the coordinator's timer opens rounds on its
// own (here a "minute" is 150 ms) while the workers train.
TEST_F(ResumeTest, TimedCheckpointsWhileTraining) {
  JobConfig job = WithCheckpointDir("timed");
  job.mutable_checkpoint()->clear_every_steps();
  job.mutable_checkpoint()->set_every_minutes(1);
  job.mutable_training()->set_mode(TrainingConfig::ASYNC);
  job.mutable_cluster()->set_heartbeat_ms(20);
  job.mutable_data()->set_batch_size(16);  // ~1900 steps, a few seconds
  auto run = RunLocalCluster(job, /*resume=*/false, absl::Milliseconds(150));
  ExpectOk(*run);
  auto all = ListCheckpoints(job.checkpoint().dir());
  ASSERT_TRUE(all.ok()) << all.status();
  int timed = 0;
  const int64_t last = run->results[0]->train.steps;
  for (const CheckpointInfo& c : *all) {
    if (c.complete && c.step > 0 && c.step < last) ++timed;
  }
  EXPECT_GE(timed, 2) << "rounds the timer opened during training";
}

}  // namespace
}  // namespace ps
