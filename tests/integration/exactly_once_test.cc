// Exactly-once pushes end to end: a real 2-server loopback cluster whose
// servers drop a share of push acknowledgements after applying the push
// (the fault hook of PsServerOptions::drop_push_acks). The workers re-send;
// the servers acknowledge the repeats without applying them. A SYNC job
// with one worker must end with the rows, optimizer state and dense blocks
// of an undisturbed run, bit for bit, and every server's ledger must count
// each push once.
#include <map>
#include <memory>
#include <vector>

#include "common/config.h"
#include "gtest/gtest.h"
#include "server/service/ps_handler.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/temp_dir.h"
#include "tools/datagen/datagen.h"

namespace ps {
namespace {

using testing_util::TempDir;

constexpr char kJob[] = R"pb(
cluster { servers: "127.0.0.1:1" servers: "127.0.0.1:2" num_workers: 1 }
sparse_tables {
  name: "embedding"
  dim: 4
  optimizer { type: ADAGRAD learning_rate: 0.05 }
}
model {
  type: DNN
  sparse_table: "embedding"
  hidden_units: 8
  dense_optimizer { type: ADAGRAD learning_rate: 0.01 }
}
data {
  batch_size: 256
  generate {
    output_dir: "unused"
    seed: 5
    train_rows: 12000
    eval_rows: 2000
    vocab_size: 50
    num_interactions: 0
  }
}
training { mode: SYNC log_every_steps: 1000 }
)pb";

struct ServerState {
  std::map<uint64_t, std::vector<float>> rows;
  std::vector<float> dense;
  PushCounts counts;
};

std::vector<ServerState> Train(const JobConfig& config, double drop) {
  auto cluster = RunLocalCluster(config, false, absl::Minutes(1), drop);
  EXPECT_TRUE(cluster->servers_stopped);
  std::vector<ServerState> out;
  for (const auto& r : cluster->results) EXPECT_TRUE(r.ok()) << r.status();
  for (const auto& server : cluster->servers) {
    ServerState s;
    auto rows = server->handler()->DumpSparse(0);
    EXPECT_TRUE(rows.ok()) << rows.status();
    if (rows.ok()) s.rows = *std::move(rows);
    auto dense = server->handler()->DumpDense(0);
    EXPECT_TRUE(dense.ok()) << dense.status();
    if (dense.ok()) s.dense = *std::move(dense);
    s.counts = server->handler()->PushCountsOf(0);
    out.push_back(std::move(s));
  }
  return out;
}

TEST(ExactlyOnceJobTest, DroppedAcksChangeNothingInTheModel) {
  TempDir data;
  ConfigOverrides overrides;
  overrides.data_dir = data.path();
  auto config = ParseJobConfig(kJob, "exactly_once_test", "", overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(GenerateCriteoData(config->data().generate()).ok());

  const std::vector<ServerState> calm = Train(*config, 0);
  const std::vector<ServerState> lossy = Train(*config, 0.2);
  ASSERT_EQ(calm.size(), 2u);
  ASSERT_EQ(lossy.size(), 2u);
  int64_t repeats = 0;
  for (int s = 0; s < 2; ++s) {
    SCOPED_TRACE(testing::Message() << "server " << s);
    EXPECT_GT(calm[s].rows.size(), 0u);
    EXPECT_TRUE(calm[s].rows == lossy[s].rows) << "sparse rows differ";
    EXPECT_TRUE(calm[s].dense == lossy[s].dense) << "dense blocks differ";
    // Each push applied once: as many as undisturbed, and the repeats
    // counted apart.
    EXPECT_EQ(calm[s].counts.applied, lossy[s].counts.applied);
    EXPECT_GT(calm[s].counts.applied, 40);
    EXPECT_EQ(calm[s].counts.duplicates, 0);
    EXPECT_EQ(calm[s].counts.last_step, lossy[s].counts.last_step);
    repeats += lossy[s].counts.duplicates;
  }
  // About a fifth of the acknowledgements were dropped.
  EXPECT_GT(repeats, 5);
}

}  // namespace
}  // namespace ps
