// Deduplicate against a plain reference (std::map per table), over many
// batches of changing sizes on one thread (the table it keeps between
// batches must not leak one batch's keys into the next) and on two threads.
#include "worker/data/batch.h"

#include <cstdint>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// `examples` examples of `slots` slots, 0..2 keys per slot drawn from
// `vocab` values (so keys repeat), labels 0/1.
Batch RandomBatch(int examples, int slots, uint64_t vocab, uint32_t seed) {
  std::mt19937_64 rng(seed);
  Batch b;
  b.num_slots = slots;
  for (int e = 0; e < examples; ++e) {
    b.labels.push_back(static_cast<float>(rng() % 2));
    for (int s = 0; s < slots; ++s) {
      const int n = static_cast<int>(rng() % 3);
      for (int k = 0; k < n; ++k) b.keys.push_back(rng() % vocab * 7919 + 3);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  return b;
}

// What Deduplicate must return, computed the obvious way.
void ExpectMatchesReference(const Batch& b, const std::vector<int>& slot_table,
                            int num_tables, const UniqueKeys& got) {
  ASSERT_EQ(got.num_tables(), num_tables);
  ASSERT_EQ(got.key_index.size(), b.keys.size());
  std::vector<std::map<uint64_t, uint32_t>> index(num_tables);
  std::vector<std::vector<uint64_t>> order(num_tables);
  std::vector<std::vector<float>> shows(num_tables), clicks(num_tables);
  const size_t slots = static_cast<size_t>(b.num_slots);
  for (size_t cell = 0; cell + 1 < b.offsets.size(); ++cell) {
    const int t = slot_table[cell % slots];
    for (uint32_t k = b.offsets[cell]; k < b.offsets[cell + 1]; ++k) {
      auto [it, inserted] = index[t].try_emplace(
          b.keys[k], static_cast<uint32_t>(order[t].size()));
      if (inserted) {
        order[t].push_back(b.keys[k]);
        shows[t].push_back(0);
        clicks[t].push_back(0);
      }
      ASSERT_EQ(got.key_index[k], it->second) << "key occurrence " << k;
      shows[t][it->second] += 1;
      clicks[t][it->second] += b.labels[cell / slots];
    }
  }
  for (int t = 0; t < num_tables; ++t) {
    ASSERT_EQ(got.table_rows[t], static_cast<int64_t>(order[t].size()));
    const auto keys = got.OfTable(got.unique_keys, t);
    EXPECT_EQ(std::vector<uint64_t>(keys.begin(), keys.end()), order[t]);
    const auto s = got.OfTable(got.shows, t);
    const auto c = got.OfTable(got.clicks, t);
    EXPECT_EQ(std::vector<float>(s.begin(), s.end()), shows[t]);
    EXPECT_EQ(std::vector<float>(c.begin(), c.end()), clicks[t]);
  }
}

TEST(DeduplicateTest,
     OneTableMatchesTheReferenceOverManyBatchesOfChangingSize) {
  const int sizes[] = {512, 3, 1, 2000, 0, 64, 512, 7};
  uint32_t seed = 1;
  for (int round = 0; round < 3; ++round) {
    for (int examples : sizes) {
      SCOPED_TRACE(testing::Message() << "examples " << examples);
      // A small vocabulary in some batches: many repeats and probe chains.
      const uint64_t vocab = seed % 2 == 0 ? 50 : 100000;
      const Batch b = RandomBatch(examples, 5, vocab, seed++);
      ExpectMatchesReference(b, {0, 0, 0, 0, 0}, 1, Deduplicate(b));
    }
  }
}

TEST(DeduplicateTest, ManyTablesKeepAKeyOncePerTable) {
  const std::vector<int> slot_table = {0, 1, 0, 2, 1};
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    const Batch b = RandomBatch(seed * 37 % 300, 5, 40, seed);
    ExpectMatchesReference(b, slot_table, 3, Deduplicate(b, slot_table, 3));
  }
}

TEST(DeduplicateTest, EmptyBatchHasNoKeys) {
  Batch b;
  b.num_slots = 3;
  const UniqueKeys u = Deduplicate(b);
  EXPECT_TRUE(u.unique_keys.empty());
  EXPECT_TRUE(u.key_index.empty());
  EXPECT_EQ(u.table_rows, std::vector<int64_t>{0});
}

TEST(DeduplicateTest, ThreadsDeduplicateIndependently) {
  // The pipelined loop deduplicates on its prefetch thread while the
  // training thread may evaluate: each thread keeps its own table.
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 2; ++t) {
    threads.emplace_back([t] {
      for (uint32_t i = 0; i < 40; ++i) {
        const Batch b = RandomBatch(200, 4, 300, 1000 * t + i);
        ExpectMatchesReference(b, {0, 0, 0, 0}, 1, Deduplicate(b));
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

}  // namespace
}  // namespace ps
