#include "worker/client/key_chunks.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(KeyChunksTest, ChunkSizeFollowsTheByteLimit) {
  EXPECT_EQ(ChunkKeys(1), kMaxChunkKeys);
  EXPECT_EQ(ChunkKeys(128), kMaxChunkBytes / (128 * sizeof(float)));
  EXPECT_EQ(ChunkKeys(1 << 20), 1u);
}

TEST(KeyChunksTest, EveryPositionLandsInExactlyOneChunkOfItsServer) {
  std::vector<std::vector<uint32_t>> pos = {{0, 2, 4, 6, 8}, {}, {1, 3}};
  std::vector<KeyChunk> chunks = Chunk(pos, 2);
  ASSERT_EQ(chunks.size(), 4u);  // server 0: 3 chunks, server 2: 1
  std::vector<uint32_t> seen;
  for (const KeyChunk& c : chunks) {
    EXPECT_LE(c.pos.size(), 2u);
    for (uint32_t p : c.pos) {
      seen.push_back(p);
      EXPECT_EQ(c.server, p % 2 == 0 ? 0u : 2u);
    }
  }
  EXPECT_EQ(seen, (std::vector<uint32_t>{0, 2, 4, 6, 8, 1, 3}));
}

TEST(KeyChunksTest, SeveralTablesShareRequestsWithinTheLimits) {
  // Table 0 (dim 1): 10000 keys on server 0, 3 on server 1. Table 1 (dim
  // 256, 1 KiB rows): 3000 keys on server 0, none on server 1.
  std::vector<std::vector<std::vector<uint32_t>>> pos(2);
  pos[0].resize(2);
  pos[1].resize(2);
  for (uint32_t i = 0; i < 10000; ++i) pos[0][0].push_back(i);
  pos[0][1] = {10000, 10001, 10002};
  for (uint32_t i = 0; i < 3000; ++i) pos[1][0].push_back(i);
  const std::vector<int> dims = {1, 256};
  const std::vector<RequestChunk> chunks = ChunkTables(pos, dims);
  std::vector<std::vector<std::vector<uint32_t>>> seen(2);
  seen[0].resize(2);
  seen[1].resize(2);
  for (const RequestChunk& c : chunks) {
    size_t bytes = 0;
    ASSERT_FALSE(c.tables.empty());
    for (const TableChunk& t : c.tables) {
      bytes += t.pos.size() * dims[t.table] * sizeof(float);
      for (uint32_t p : t.pos) seen[t.table][c.server].push_back(p);
    }
    EXPECT_LE(c.num_keys(), kMaxChunkKeys);
    EXPECT_LE(bytes, kMaxChunkBytes);
  }
  EXPECT_EQ(seen, pos);  // every key once, in order
  // Server 1's three keys of table 0 travel in one request; server 0's
  // table-0 tail shares a request with table 1's head.
  int mixed = 0;
  for (const RequestChunk& c : chunks) {
    if (c.server == 1) EXPECT_EQ(c.num_keys(), 3u);
    if (c.tables.size() == 2) ++mixed;
  }
  EXPECT_EQ(mixed, 1);
  // 10000 + 3000 keys of 4 B and 1 KiB rows: 2 + 2 requests on server 0.
  EXPECT_EQ(chunks.size(), 4u);
}

TEST(KeyChunksTest, PackGatherAndScatterForRunsAndScatteredPositions) {
  const std::vector<uint64_t> keys = {10, 11, 12, 13, 14};
  for (const std::vector<uint32_t>& pos :
       {std::vector<uint32_t>{1, 2, 3}, std::vector<uint32_t>{0, 3, 4}}) {
    std::string packed;
    PackKeys(keys, pos, &packed);
    ASSERT_EQ(packed.size(), pos.size() * 8);
    std::vector<uint64_t> unpacked(pos.size());
    std::memcpy(unpacked.data(), packed.data(), packed.size());
    for (size_t j = 0; j < pos.size(); ++j)
      EXPECT_EQ(unpacked[j], keys[pos[j]]);

    const int dim = 2;
    std::vector<float> rows = {0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5};
    std::vector<float> gathered(pos.size() * dim);
    GatherRows(rows.data(), pos, dim, gathered.data());
    std::vector<float> back(rows.size(), -1);
    ScatterRows(gathered.data(), pos, dim, back.data());
    for (uint32_t p : pos) {
      EXPECT_EQ(back[p * dim], rows[p * dim]);
      EXPECT_EQ(back[p * dim + 1], rows[p * dim + 1]);
    }
    EXPECT_EQ(gathered[0], rows[pos[0] * dim]);
  }
}

}  // namespace
}  // namespace ps
