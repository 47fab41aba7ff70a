// The accessor of a sparse table (AccessorConfig): show/click counts and the
// last-seen step kept per row, admission after min_count pushes with bounded
// counters, shrink by age and by decayed score from every tier, scheduled
// and on-demand shrink through PsHandler, and a table's groups applied on a
// thread pool. Each behaviour runs on memory and on tiered storage (with the
// table far over its budget, so rows live on disk).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "common/thread_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/ps_handler.h"
#include "server/table/sparse_table.h"
#include "tests/testing/server_test_util.h"
#include "tests/testing/sparse_table_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wire_requests.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;
using testing_util::TempDir;

constexpr int kDim = 2;

// SGD, lr 1, zero rows, one sub-shard group per 4 sub-shards.
SparseTableOptions AccessorOptions(const AccessorConfig& accessor) {
  SparseTableOptions o =
      TableOptions(OptimizerConfig::SGD, kDim, InitializerConfig::UNIFORM, 4);
  o.has_accessor = true;
  o.accessor = accessor;
  return o;
}

// Runs each test on memory storage and on tiered storage with a 1 KiB
// budget (16 rows per sub-shard), so most rows are on disk.
class AccessorTest : public ::testing::TestWithParam<bool> {
 protected:
  std::unique_ptr<SparseTable> Make(const AccessorConfig& accessor) {
    SparseTableOptions o = AccessorOptions(accessor);
    if (GetParam()) o = Tiered(o, dir_.path(), 1 << 10);
    return MustCreate(o);
  }
  TempDir dir_;
};

// key -> [weights | show | click | step] of every stored row.
std::map<uint64_t, std::vector<float>> Rows(SparseTable& table) {
  std::map<uint64_t, std::vector<float>> rows;
  absl::Status s = table.ForEachRow([&](uint64_t key, const float* row) {
    rows[key].assign(row, row + table.stride());
  });
  EXPECT_TRUE(s.ok()) << s;
  return rows;
}

absl::Status PushAt(SparseTable& table, const std::vector<uint64_t>& keys,
                    int64_t step, std::vector<float> shows = {},
                    std::vector<float> clicks = {}) {
  std::vector<float> grads(keys.size() * kDim, 1.0f);
  PushInfo info;
  info.step = step;
  info.shows = shows;
  info.clicks = clicks;
  return table.Push(keys, grads, info);
}

TEST_P(AccessorTest, KeyGetsARowOnlyAtItsMinCountthPush) {
  AccessorConfig a;
  a.set_min_count(3);
  auto table = Make(a);
  ASSERT_NE(table, nullptr);
  // The initializer's values, from a table with no accessor.
  auto plain = MustCreate(
      TableOptions(OptimizerConfig::SGD, kDim, InitializerConfig::UNIFORM, 4));
  const std::vector<float> init = MustPull(*plain, {7});

  EXPECT_EQ(MustPull(*table, {7}), init);  // a pull stores nothing
  ASSERT_TRUE(PushAt(*table, {7}, 1).ok());
  ASSERT_TRUE(PushAt(*table, {7}, 2).ok());
  EXPECT_EQ(MustPull(*table, {7}), init);  // two pushes dropped
  EXPECT_TRUE(Rows(*table).empty());
  StorageStats st = table->stats();
  EXPECT_EQ(st.pending_admissions, 1);
  EXPECT_EQ(st.dropped_pushes, 2);
  EXPECT_EQ(st.admitted, 0);

  ASSERT_TRUE(PushAt(*table, {7}, 3).ok());  // admitted: this gradient counts
  const std::vector<float> row = MustPull(*table, {7});
  EXPECT_FLOAT_EQ(row[0], init[0] - 1.0f);
  EXPECT_FLOAT_EQ(row[1], init[1] - 1.0f);
  st = table->stats();
  EXPECT_EQ(st.pending_admissions, 0);
  EXPECT_EQ(st.admitted, 1);
  EXPECT_EQ(Rows(*table).size(), 1u);
}

TEST_P(AccessorTest, PendingCountersStayBoundedAndFrequentKeysGetIn) {
  AccessorConfig a;
  a.set_min_count(4);
  a.set_max_pending_keys(64);
  auto table = Make(a);
  ASSERT_NE(table, nullptr);
  // 5000 one-off keys, with key 1 pushed in every batch.
  for (uint64_t b = 0; b < 100; ++b) {
    std::vector<uint64_t> keys = {1};
    for (uint64_t j = 0; j < 50; ++j) keys.push_back(1000 + b * 50 + j);
    ASSERT_TRUE(PushAt(*table, keys, static_cast<int64_t>(b)).ok());
    EXPECT_LE(table->stats().pending_admissions, 64);
  }
  const auto rows = Rows(*table);
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows.count(1), 1u);
}

TEST_P(AccessorTest, PushesCountShowsAndClicksAndStampTheStep) {
  auto table = Make(AccessorConfig());
  ASSERT_NE(table, nullptr);
  ASSERT_TRUE(PushAt(*table, {5, 6}, 10, {3, 1}, {1, 0}).ok());
  ASSERT_TRUE(PushAt(*table, {5}, 12).ok());  // default: 1 show, 0 clicks
  const auto rows = Rows(*table);
  ASSERT_EQ(rows.size(), 2u);
  const std::vector<float>& r5 = rows.at(5);
  const int acc = table->stride() - 3;
  EXPECT_EQ(r5[acc], 4.0f);
  EXPECT_EQ(r5[acc + 1], 1.0f);
  uint32_t step;
  std::memcpy(&step, &r5[acc + 2], sizeof(step));
  EXPECT_EQ(step, 12u);
  EXPECT_EQ(rows.at(6)[acc], 1.0f);
  EXPECT_EQ(table->step(), 12);
}

// l2_by_frequency with an accessor: a row's l2 is l2 / its show count after
// the push (SGD, lr 1, gradient 1: w' = w - (1 + l2_row * w)).
TEST_P(AccessorTest, L2ByFrequencyUsesTheRowsShowCount) {
  SparseTableOptions o = AccessorOptions(AccessorConfig());
  o.optimizer.set_l2(0.5f);
  o.optimizer.set_l2_by_frequency(true);
  if (GetParam()) o = Tiered(o, dir_.path(), 1 << 10);
  auto table = MustCreate(o);
  ASSERT_NE(table, nullptr);
  std::vector<float> w = MustPull(*table, {5, 6});
  ASSERT_TRUE(PushAt(*table, {5, 6}, 1, {3, 1}, {0, 0}).ok());
  auto expect = [&](int k, float count) {
    for (int i = 0; i < kDim; ++i) {
      w[k * kDim + i] =
          w[k * kDim + i] - (1.0f + (0.5f / count) * w[k * kDim + i]);
    }
  };
  expect(0, 3.0f);
  expect(1, 1.0f);
  EXPECT_EQ(MustPull(*table, {5, 6}), w);
  // Key 5 again, 1 show: its count is 4 now.
  ASSERT_TRUE(PushAt(*table, {5}, 2).ok());
  expect(0, 4.0f);
  EXPECT_EQ(MustPull(*table, {5, 6}), w);
}

TEST_P(AccessorTest, BadShowCountsAreRefusedNamingTheTable) {
  auto table = Make(AccessorConfig());
  ASSERT_NE(table, nullptr);
  absl::Status s = PushAt(*table, {5, 6}, 1, {1});
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("table 'emb' push: 1 shows for 2 keys")));
  s = PushAt(*table, {5}, 1, {1}, {std::nanf("")});
  EXPECT_THAT(s.message(), HasSubstr("push clicks: value 0 is nan"));
  EXPECT_TRUE(Rows(*table).empty());
}

TEST_P(AccessorTest, ShrinkDeletesRowsUnseenTooLongFromEveryTier) {
  AccessorConfig a;
  a.set_max_unseen_steps(10);
  auto table = Make(a);
  ASSERT_NE(table, nullptr);
  std::vector<uint64_t> old_keys, new_keys;
  for (uint64_t k = 0; k < 400; ++k) old_keys.push_back(k);
  for (uint64_t k = 1000; k < 1400; ++k) new_keys.push_back(k);
  ASSERT_TRUE(PushAt(*table, old_keys, 1).ok());
  ASSERT_TRUE(PushAt(*table, new_keys, 20).ok());
  // Step 20: old rows unseen for 19 steps > 10; new ones for 0.
  absl::StatusOr<int64_t> removed = table->Shrink();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 400);
  const auto rows = Rows(*table);
  EXPECT_EQ(rows.size(), 400u);
  EXPECT_EQ(rows.count(0), 0u);
  EXPECT_EQ(rows.count(1000), 1u);
  EXPECT_EQ(table->stats().shrunk, 400);
  EXPECT_EQ(*table->Shrink(), 0);  // nothing more to remove
  if (GetParam()) {
    // Deleted from disk too: a reopened table does not bring them back.
    SparseTableOptions o = Tiered(AccessorOptions(a), dir_.path(), 1 << 10);
    table.reset();
    auto reopened = MustCreate(o);
    ASSERT_NE(reopened, nullptr);
    EXPECT_EQ(Rows(*reopened).size(), 400u);
  }
}

TEST_P(AccessorTest, ShrinkDeletesLowScoresWithDecay) {
  AccessorConfig a;
  a.set_min_score(0.5f);  // score = 0.1 (show - click) + 1 click
  a.set_score_half_life_steps(10);
  auto table = Make(a);
  ASSERT_NE(table, nullptr);
  // Key 1: 10 shows, 1 click: 0.9 + 1 = 1.9. Key 2: 2 shows: 0.2. Key 3:
  // 3 shows, 1 click: 0.2 + 1 = 1.2.
  ASSERT_TRUE(PushAt(*table, {1, 2, 3}, 0, {10, 2, 3}, {1, 0, 1}).ok());
  EXPECT_EQ(*table->Shrink(), 1);  // key 2
  EXPECT_EQ(Rows(*table).count(2), 0u);
  // Step 15, nothing pushed to keys 1 and 3: scores x 2^-1.5 = 0.354:
  // 1.9 -> 0.67 stays, 1.2 -> 0.42 goes.
  ASSERT_TRUE(PushAt(*table, {4}, 15, {100}).ok());
  EXPECT_EQ(*table->Shrink(), 1);
  const auto rows = Rows(*table);
  EXPECT_EQ(rows.count(1), 1u);
  EXPECT_EQ(rows.count(3), 0u);
  EXPECT_EQ(rows.count(4), 1u);
  // A push decays the old counts before adding: key 1 at step 25 has
  // 10 * 2^-2.5 + 1 shows.
  ASSERT_TRUE(PushAt(*table, {1}, 25).ok());
  const int acc = table->stride() - 3;
  EXPECT_NEAR(Rows(*table).at(1)[acc], 10 * std::exp2(-2.5) + 1, 1e-5);
}

TEST_P(AccessorTest, ShrinkedKeyStartsOverAndReusesMemory) {
  AccessorConfig a;
  a.set_max_unseen_steps(1);
  auto table = Make(a);
  ASSERT_NE(table, nullptr);
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 3000; ++k) keys.push_back(k);
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(PushAt(*table, keys, 10 * round).ok());
    ASSERT_TRUE(PushAt(*table, {99999}, 10 * round + 5).ok());
    EXPECT_EQ(*table->Shrink(), 3000) << "round " << round;
  }
  // Every round started from the initializer: one SGD step from it.
  auto plain = MustCreate(
      TableOptions(OptimizerConfig::SGD, kDim, InitializerConfig::UNIFORM, 4));
  const std::vector<float> init = MustPull(*plain, {42});
  ASSERT_TRUE(PushAt(*table, {42}, 100).ok());
  const std::vector<float> row = MustPull(*table, {42});
  EXPECT_FLOAT_EQ(row[0], init[0] - 1.0f);
  if (!GetParam()) {
    // Freed rows were reused: memory did not grow with the rounds.
    EXPECT_LT(table->memory_bytes(), 3 * 3000 * 64);
  }
}

TEST_P(AccessorTest, ThreadPoolGroupsConserveEveryGradient) {
  // SGD lr 1 on zero rows with integer gradients: sums are exact.
  SparseTableOptions o =
      TableOptions(OptimizerConfig::SGD, kDim, InitializerConfig::ZEROS, 16);
  if (GetParam()) o = Tiered(o, dir_.path(), 64 << 10);
  auto table = MustCreate(o);
  ASSERT_NE(table, nullptr);
  ThreadPool pool(3);
  table->SetThreadPool(&pool);
  constexpr int kKeys = 6000;
  std::vector<int64_t> want(kKeys * kDim, 0);
  std::mt19937 rng(11);
  for (int round = 0; round < 20; ++round) {
    std::vector<uint64_t> keys;
    std::vector<float> grads;
    for (int j = 0; j < 4000; ++j) {  // > kParallelGroupKeys: on the pool
      const int k = static_cast<int>(rng() % kKeys);
      keys.push_back(k);
      for (int i = 0; i < kDim; ++i) {
        const int g = static_cast<int>(rng() % 5) - 2;
        grads.push_back(static_cast<float>(g));
        want[k * kDim + i] -= g;
      }
    }
    ASSERT_TRUE(table->Push(keys, grads).ok());
  }
  std::vector<uint64_t> all;
  for (int k = 0; k < kKeys; ++k) all.push_back(k);
  const std::vector<float> got = MustPull(*table, all);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], static_cast<float>(want[i])) << "float " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Storages, AccessorTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "tiered" : "memory";
                         });

TEST(ThreadPoolTest, ParallelForRunsEveryIndexOnce) {
  ThreadPool pool(3);
  for (size_t n : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, [&](size_t i) { hits[i].fetch_add(1); });
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << i;
  }
  // Several callers at once share the threads.
  std::vector<std::thread> callers;
  std::atomic<int64_t> sum{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < 50; ++r) {
        pool.ParallelFor(20, [&](size_t i) { sum.fetch_add(i); });
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), 4 * 50 * 190);
}

TEST(ThreadPoolTest, BackgroundTasksAreAllWaitedFor) {
  std::atomic<int> done{0};
  {
    BackgroundTasks tasks;
    for (int i = 0; i < 8; ++i) {
      tasks.Run([&done] {
        absl::SleepFor(absl::Milliseconds(20));
        done.fetch_add(1);
      });
    }
    tasks.WaitAll();
    EXPECT_EQ(done.load(), 8);
    tasks.Run([&done] {
      absl::SleepFor(absl::Milliseconds(50));
      done.fetch_add(1);
    });
  }  // the destructor waits for the last one
  EXPECT_EQ(done.load(), 9);
}

// PsHandler: a table's shrink runs when the pushed step passes each multiple
// of shrink_every_steps, and on demand through Shrink.
TEST(AccessorHandlerTest, ScheduledAndOnDemandShrink) {
  JobConfig config = SmallJobConfig(/*num_servers=*/1, /*num_workers=*/1, kDim,
                                    /*dense_block_size=*/64);
  AccessorConfig* a = config.mutable_sparse_tables(0)->mutable_accessor();
  a->set_max_unseen_steps(5);
  a->set_shrink_every_steps(100);
  auto handler = PsHandler::Create(config, 0);
  ASSERT_TRUE(handler.ok()) << handler.status();
  // Every push has its own step (a server applies a worker's step once).
  auto push = [&](std::vector<uint64_t> keys, int64_t step) {
    std::vector<float> grads(keys.size() * kDim, 0.5f);
    PushResponse response;
    absl::Status s = (*handler)->Push(
        SparsePushRequest(0, kDim, keys, grads, step), &response);
    EXPECT_FALSE(response.duplicate()) << "step " << step;
    return s;
  };
  ASSERT_TRUE(push({1, 2, 3}, 10).ok());
  ASSERT_TRUE(push({4}, 99).ok());  // not yet step 100: nothing shrunk
  EXPECT_EQ((*handler)->SparseRows()[0], 4);
  ASSERT_TRUE(push({4}, 100).ok());  // the scheduled shrink: 1, 2, 3 go
  EXPECT_EQ((*handler)->SparseRows()[0], 1);
  ASSERT_TRUE(push({5}, 150).ok());  // next at 200
  EXPECT_EQ((*handler)->SparseRows()[0], 2);

  ShrinkRequest request;  // on demand: key 4 unseen for 50 steps
  ShrinkResponse response;
  ASSERT_TRUE((*handler)->Shrink(request, &response).ok());
  ASSERT_EQ(response.tables_size(), 1);
  EXPECT_EQ(response.tables(0).removed(), 1);
  EXPECT_EQ(response.tables(0).rows_left(), 1);
  EXPECT_EQ(response.tables(0).step(), 150);

  request.add_tables("nope");
  absl::Status s = (*handler)->Shrink(request, &response);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound,
                          HasSubstr("no sparse table 'nope' on server 0")));

  StatsResponse stats;
  (*handler)->Stats(&stats);
  EXPECT_EQ(stats.sparse_tables(0).shrunk(), 4);
  EXPECT_EQ(stats.sparse_tables(0).step(), 150);
}

}  // namespace
}  // namespace ps
