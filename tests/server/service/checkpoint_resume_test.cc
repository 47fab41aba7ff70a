// Server-side checkpoints: PsHandler::SaveCheckpoint writes every table
// (memory rows, tiered RocksDB checkpoints, dense values, optimizer state)
// and a handler created from the checkpoint serves the same rows and goes on
// training identically, also on another server count (resharding 2 -> 3);
// a checkpoint of other dims is refused naming the table. Over gRPC,
// `ps_ctl checkpoint` makes the coordinator write a complete checkpoint
// LATEST names, and servers started with resume serve it.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/export_format.h"
#include "common/hash.h"
#include "common/model_spec.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/service/ps_handler.h"
#include "server/service/ps_server.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/sparse_table_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wire_requests.h"
#include "tools/ctl/admin_client.h"

namespace ps {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::StatusIs;
using testing_util::TempDir;

constexpr int kDim = 4;
constexpr int kKeys = 3000;

enum Storage { kMemory = 0, kTiered = 1, kTieredPlain = 2 };

// SmallJobConfig with Adagrad rows (so optimizer state must move too), a
// checkpoint dir and, when tiered, RocksDB storage with a small budget
// (block-based or plain tables).
JobConfig Config(int num_servers, const std::string& root, int storage) {
  const bool tiered = storage != kMemory;
  JobConfig c = SmallJobConfig(num_servers, 1, kDim, /*dense_block_size=*/8);
  SparseTableConfig* t = c.mutable_sparse_tables(0);
  t->mutable_optimizer()->set_type(OptimizerConfig::ADAGRAD);
  t->mutable_optimizer()->set_learning_rate(0.1f);
  t->mutable_initializer()->set_type(InitializerConfig::UNIFORM);
  t->mutable_initializer()->set_scale(0.1f);
  if (tiered) {
    t->mutable_storage()->set_type(SparseStorageConfig::TIERED);
    t->mutable_storage()->set_dir(root + "/live-" +
                                  std::to_string(num_servers));
    t->mutable_storage()->set_memory_budget_bytes(32 << 10);
    if (storage == kTieredPlain) {
      t->mutable_storage()->mutable_rocksdb()->set_table_format(
          RocksDbConfig::PLAIN);
    }
  }
  c.mutable_model()->mutable_dense_optimizer()->set_type(
      OptimizerConfig::ADAGRAD);
  c.mutable_checkpoint()->set_dir(root + "/ckpt");
  return c;
}

std::vector<std::unique_ptr<PsHandler>> Handlers(const JobConfig& c,
                                                 const RestoreFrom* restore) {
  std::vector<std::unique_ptr<PsHandler>> out;
  for (int r = 0; r < c.cluster().servers_size(); ++r) {
    auto h = PsHandler::Create(c, r, restore);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) return {};
    out.push_back(std::move(h).value());
  }
  return out;
}

std::vector<uint64_t> KeysOf(int server, int num_servers) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < kKeys; ++k) {
    if (ServerForKey(k, num_servers) == server) keys.push_back(k);
  }
  return keys;
}

// A push that `h` must apply (not refuse, not take for a repeat).
void MustPush(PsHandler& h, const PushRequest& request) {
  PushResponse response;
  absl::Status s = h.Push(request, &response);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_FALSE(response.duplicate());
}

// The rows of `keys` on `h`.
std::vector<float> MustPull(PsHandler& h, const std::vector<uint64_t>& keys) {
  PullResponse response;
  absl::Status s = h.Pull(SparsePullRequest(0, kDim, keys), &response);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(response.values().size(), keys.size() * kDim * sizeof(float));
  return PulledRows(response);
}

// The floats this server holds of the dense table.
std::vector<float> MustPullDense(PsHandler& h) {
  PullResponse response;
  absl::Status s = h.Pull(DensePullRequest(0), &response);
  EXPECT_TRUE(s.ok()) << s;
  return PulledDense(response);
}

// One round of pushes of every key (gradient depending on key and round)
// and of the dense table, to its owners: one request per server at step
// `round`, as a worker sends it.
void Train(std::vector<std::unique_ptr<PsHandler>>& hs, const JobConfig& c,
           int round) {
  const int n = static_cast<int>(hs.size());
  for (int s = 0; s < n; ++s) {
    std::vector<uint64_t> keys = KeysOf(s, n);
    std::vector<float> grads;
    for (uint64_t k : keys) {
      for (int i = 0; i < kDim; ++i) {
        grads.push_back(0.01f * static_cast<float>((k * 7 + i + round) % 13) -
                        0.06f);
      }
    }
    PushRequest r = SparsePushRequest(0, kDim, keys, grads, round);
    // The dense gradient of global index g, gathered in this server's
    // layout (so any server count trains the same vector).
    const DenseBlocks blocks{MakeModelSpec(c).dense_size,
                             c.cluster().dense_block_size(), n};
    std::vector<float> dense;
    for (const auto& [begin, end] : blocks.RangesOf(s)) {
      for (int64_t g = begin; g < end; ++g) {
        dense.push_back(0.001f * static_cast<float>((g + round) % 5));
      }
    }
    const PushRequest d = DensePushRequest(0, dense, round);
    *r.add_dense() = d.dense(0);
    r.set_dense_grads(d.dense_grads());
    MustPush(*hs[s], r);
  }
}

// Every key's row and the whole dense vector, gathered from the owners.
struct Snapshot {
  std::vector<float> rows;
  std::vector<float> dense;
  int64_t stored = 0;
};
Snapshot Read(std::vector<std::unique_ptr<PsHandler>>& hs, const JobConfig& c) {
  const int n = static_cast<int>(hs.size());
  Snapshot out;
  out.rows.resize(static_cast<size_t>(kKeys) * kDim);
  for (int s = 0; s < n; ++s) {
    absl::StatusOr<int64_t> rows = hs[s]->ExactRows(0);
    EXPECT_TRUE(rows.ok()) << rows.status();
    out.stored += rows.value_or(0);
  }
  for (int s = 0; s < n; ++s) {
    std::vector<uint64_t> keys = KeysOf(s, n);
    const std::vector<float> rows = MustPull(*hs[s], keys);
    if (rows.size() != keys.size() * kDim) continue;
    const float* v = rows.data();
    for (size_t j = 0; j < keys.size(); ++j) {
      std::copy(v + j * kDim, v + (j + 1) * kDim,
                out.rows.begin() + keys[j] * kDim);
    }
  }
  const DenseBlocks blocks{MakeModelSpec(c).dense_size,
                           c.cluster().dense_block_size(), n};
  out.dense.resize(blocks.size);
  for (int s = 0; s < n; ++s) {
    const std::vector<float> held = MustPullDense(*hs[s]);
    if (static_cast<int64_t>(held.size()) != blocks.SizeOn(s)) {
      ADD_FAILURE() << "server " << s << " holds " << held.size()
                    << " dense floats, expected " << blocks.SizeOn(s);
      continue;
    }
    const float* v = held.data();
    for (const auto& [begin, end] : blocks.RangesOf(s)) {
      std::copy(v, v + (end - begin), out.dense.begin() + begin);
      v += end - begin;
    }
  }
  return out;
}

// Saves every handler into a new checkpoint at `step` and commits it.
void Save(std::vector<std::unique_ptr<PsHandler>>& hs, const JobConfig& c,
          int64_t step) {
  std::vector<PsHandler*> handlers;
  for (auto& h : hs) handlers.push_back(h.get());
  absl::Status saved = SaveAndCommit(handlers, c, step);
  ASSERT_TRUE(saved.ok()) << saved;
}

class CheckpointResumeTest : public ::testing::TestWithParam<int> {
 protected:
  TempDir dir_;
};

TEST_P(CheckpointResumeTest, ResumedServersMatchAndTrainOnIdentically) {
  const JobConfig c = Config(2, dir_.path(), GetParam());
  auto hs = Handlers(c, nullptr);
  ASSERT_EQ(hs.size(), 2u);
  for (int round = 0; round < 3; ++round) Train(hs, c, round);
  Save(hs, c, 3);
  const Snapshot saved = Read(hs, c);
  EXPECT_EQ(saved.stored, kKeys);

  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_TRUE(opened.ok()) << opened.status();
  RestoreFrom restore{opened->dir, opened->manifest};
  // The tiered original keeps running: the restored copy needs its own
  // storage directory.
  JobConfig c2 = c;
  if (GetParam() != kMemory) {
    c2.mutable_sparse_tables(0)->mutable_storage()->set_dir(
        dir_.Path("live-copy"));
  }
  auto back = Handlers(c2, &restore);
  ASSERT_EQ(back.size(), 2u);
  const Snapshot restored = Read(back, c2);
  EXPECT_EQ(restored.stored, kKeys);
  EXPECT_EQ(restored.rows, saved.rows);
  EXPECT_EQ(restored.dense, saved.dense);

  // Optimizer state came back too: two more rounds on both give the same.
  for (int round = 3; round < 5; ++round) {
    Train(hs, c, round);
    Train(back, c2, round);
  }
  EXPECT_EQ(Read(back, c2).rows, Read(hs, c).rows);
  EXPECT_EQ(Read(back, c2).dense, Read(hs, c).dense);
}

TEST_P(CheckpointResumeTest, ReshardingTwoServersToThreeKeepsEveryRow) {
  const JobConfig c = Config(2, dir_.path(), GetParam());
  auto hs = Handlers(c, nullptr);
  ASSERT_EQ(hs.size(), 2u);
  for (int round = 0; round < 2; ++round) Train(hs, c, round);
  Save(hs, c, 2);
  const Snapshot saved = Read(hs, c);

  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_TRUE(opened.ok()) << opened.status();
  RestoreFrom restore{opened->dir, opened->manifest};
  const JobConfig c3 = Config(3, dir_.path(), GetParam());
  auto three = Handlers(c3, &restore);
  ASSERT_EQ(three.size(), 3u);
  const Snapshot resharded = Read(three, c3);
  EXPECT_EQ(resharded.stored, kKeys);  // every row once, none lost
  EXPECT_EQ(resharded.rows, saved.rows);
  EXPECT_EQ(resharded.dense, saved.dense);
  // Each server holds only its own rows.
  for (int s = 0; s < 3; ++s) {
    EXPECT_EQ(three[s]->ExactRows(0).value_or(-1),
              static_cast<int64_t>(KeysOf(s, 3).size()));
  }
  // And trains on like the 2-server original (same per-weight state).
  Train(hs, c, 2);
  Train(three, c3, 2);
  EXPECT_EQ(Read(three, c3).rows, Read(hs, c).rows);
  EXPECT_EQ(Read(three, c3).dense, Read(hs, c).dense);
}

INSTANTIATE_TEST_SUITE_P(Storages, CheckpointResumeTest,
                         ::testing::Values(kMemory, kTiered, kTieredPlain),
                         [](const auto& info) {
                           return std::string(info.param == kMemory ? "memory"
                                              : info.param == kTiered
                                                  ? "tiered"
                                                  : "tiered_plain");
                         });

TEST(CheckpointResumeTest, OtherDimIsRefusedNamingTheTable) {
  TempDir dir;
  const JobConfig c = Config(1, dir.path(), kMemory);
  auto hs = Handlers(c, nullptr);
  Train(hs, c, 0);
  Save(hs, c, 1);
  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_TRUE(opened.ok());
  RestoreFrom restore{opened->dir, opened->manifest};
  JobConfig other = c;
  other.mutable_sparse_tables(0)->set_dim(8);
  auto h = PsHandler::Create(other, 0, &restore);
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h, StatusIs(absl::StatusCode::kFailedPrecondition,
                          AllOf(HasSubstr("sparse table 'emb'"), HasSubstr("8"),
                                HasSubstr("4"), HasSubstr(opened->dir))));
}

TEST(CheckpointResumeTest, CorruptRowsFileIsRefusedNamingIt) {
  TempDir dir;
  const JobConfig c = Config(1, dir.path(), kMemory);
  auto hs = Handlers(c, nullptr);
  Train(hs, c, 0);
  Save(hs, c, 1);
  const std::string rows = c.checkpoint().dir() + "/" + CheckpointDirName(1) +
                           "/server-0/sparse-emb/rows.bin";
  {
    std::fstream f(rows, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr("rows.bin"));
  EXPECT_THAT(opened.status().message(), HasSubstr("checksum"));
}

// Over gRPC: ps_ctl checkpoint with no worker registered yet writes a
// complete checkpoint at once; servers started with resume serve it.
TEST(CheckpointResumeTest, PsCtlCheckpointThenServersResume) {
  TempDir dir;
  const JobConfig c = Config(2, dir.path(), kMemory);
  std::vector<uint64_t> keys;
  std::vector<float> before;
  {
    auto s0 = StartServer(c, 0);
    auto s1 = StartServer(c, 1);
    ASSERT_NE(s0, nullptr);
    ASSERT_NE(s1, nullptr);
    s0->SetServerEndpoints({Endpoint(*s0), Endpoint(*s1)});
    std::vector<std::unique_ptr<PsHandler>> unused;
    for (int s = 0; s < 2; ++s) {
      PsHandler* h = (s == 0 ? s0 : s1)->handler();
      std::vector<uint64_t> mine = KeysOf(s, 2);
      std::vector<float> grads(mine.size() * kDim, 0.5f);
      MustPush(*h, SparsePushRequest(0, kDim, mine, grads, /*step=*/0));
    }
    AdminOptions options;
    options.servers = {Endpoint(*s0), Endpoint(*s1)};
    std::ostringstream out, err;
    ASSERT_EQ(RunCtlCommand(options, "checkpoint", out, err), 0) << err.str();
    EXPECT_THAT(out.str(), HasSubstr("checkpoint " + c.checkpoint().dir() +
                                     "/" + CheckpointDirName(0)));
    EXPECT_EQ(s0->coordinator()->checkpoints_taken(), 1);
    before = MustPull(*s1->handler(), KeysOf(1, 2));
  }
  auto opened = OpenLatest(c.checkpoint().dir());
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->manifest.num_servers(), 2);

  PsServerOptions options;
  options.config = c;
  options.rank = 1;
  options.listen_address = "127.0.0.1:0";
  options.resume = true;
  auto resumed = PsServer::Start(options);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->handler()->SparseRows()[0],
            static_cast<int64_t>(KeysOf(1, 2).size()));
  EXPECT_EQ(MustPull(*(*resumed)->handler(), KeysOf(1, 2)), before);
}

// A server asked to resume from a LATEST whose files are damaged refuses
// to start, names the damage and offers the previous complete checkpoint;
// --resume_from that one works.
TEST(CheckpointResumeTest, BrokenLatestOffersThePreviousCheckpoint) {
  TempDir dir;
  const JobConfig c = Config(1, dir.path(), kMemory);
  auto hs = Handlers(c, nullptr);
  Train(hs, c, 0);
  Save(hs, c, 1);
  Train(hs, c, 1);
  Save(hs, c, 2);
  const std::string latest = c.checkpoint().dir() + "/" + CheckpointDirName(2);
  std::filesystem::resize_file(latest + "/server-0/dense-model.bin", 10);

  PsServerOptions options;
  options.config = c;
  options.rank = 0;
  options.listen_address = "127.0.0.1:0";
  options.resume = true;
  auto refused = PsServer::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("dense-model.bin"));
  EXPECT_THAT(refused.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(refused.status().message(), HasSubstr(CheckpointDirName(1)));

  options.resume_from = c.checkpoint().dir() + "/" + CheckpointDirName(1);
  auto started = PsServer::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ((*started)->handler()->ExactRows(0).value_or(-1), kKeys);
}

// ps_ctl export writes the serving format from a checkpoint of any server
// count: every row's weights once, and a delta lists only what changed.
TEST(CheckpointResumeTest, PsCtlExportFromACheckpoint) {
  TempDir dir;
  const JobConfig c = Config(2, dir.path(), kMemory);
  auto hs = Handlers(c, nullptr);
  Train(hs, c, 0);
  Save(hs, c, 1);
  const Snapshot saved = Read(hs, c);
  AdminOptions options;
  options.export_checkpoint = c.checkpoint().dir() + "/" + CheckpointDirName(1);
  options.export_dir = dir.Path("serving");
  std::ostringstream out, err;
  ASSERT_EQ(RunCtlCommand(options, "export", out, err), 0) << err.str();
  EXPECT_THAT(out.str(),
              HasSubstr("exported " + options.export_dir +
                        "/export-0000000001.psx (step 1, 3000 rows"));
  auto model = ExportedModel::LoadDir(options.export_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  const int t = (*model)->TableIndex("emb");
  ASSERT_EQ((*model)->num_rows(t), kKeys);
  for (uint64_t k = 0; k < kKeys; ++k) {
    const float* row = (*model)->Row(t, k);
    ASSERT_NE(row, nullptr);
    EXPECT_EQ(std::vector<float>(row, row + kDim),
              std::vector<float>(saved.rows.begin() + k * kDim,
                                 saved.rows.begin() + (k + 1) * kDim));
  }
  EXPECT_EQ((*model)->dense(), saved.dense);

  // Only keys 0..99 change; the delta holds those.
  for (auto& h : hs) {
    std::vector<uint64_t> keys;
    for (uint64_t k = 0; k < 100; ++k) {
      if (ServerForKey(k, 2) == (h.get() == hs[0].get() ? 0 : 1)) {
        keys.push_back(k);
      }
    }
    std::vector<float> grads(keys.size() * kDim, 0.3f);
    // Step 1: the push of round 0 was step 0 (a repeat would not apply).
    MustPush(*h, SparsePushRequest(0, kDim, keys, grads, /*step=*/1));
  }
  Save(hs, c, 2);
  options.export_checkpoint = c.checkpoint().dir() + "/" + CheckpointDirName(2);
  options.export_delta = true;
  std::ostringstream out2, err2;
  ASSERT_EQ(RunCtlCommand(options, "export", out2, err2), 0) << err2.str();
  EXPECT_THAT(out2.str(), HasSubstr("(step 2, 100 rows, 0 deleted"));
  auto updated = ExportedModel::LoadDir(options.export_dir);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)->step(), 2);
  const Snapshot now = Read(hs, c);
  const float* row5 = (*updated)->Row(t, 5);
  ASSERT_NE(row5, nullptr);
  EXPECT_EQ(std::vector<float>(row5, row5 + kDim),
            std::vector<float>(now.rows.begin() + 5 * kDim,
                               now.rows.begin() + 6 * kDim));
  EXPECT_NE(std::vector<float>(row5, row5 + kDim),
            std::vector<float>(saved.rows.begin() + 5 * kDim,
                               saved.rows.begin() + 6 * kDim));
}

TEST(CheckpointResumeTest, CheckpointWithoutConfigSectionIsRefused) {
  JobConfig c = SmallJobConfig(1, 1, kDim, 8);
  auto s0 = StartServer(c, 0);
  ASSERT_NE(s0, nullptr);
  AdminOptions options;
  options.servers = {Endpoint(*s0)};
  std::ostringstream out, err;
  EXPECT_EQ(RunCtlCommand(options, "checkpoint", out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("no checkpoint section"));
}

}  // namespace
}  // namespace ps
