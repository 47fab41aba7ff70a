#include "worker/client/key_chunks.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// One table's keys on one server; the keys per request.
std::vector<size_t> RequestSizes(size_t keys, int dim) {
  std::vector<std::vector<std::vector<uint32_t>>> pos(1);
  pos[0].resize(1);
  for (uint32_t i = 0; i < keys; ++i) pos[0][0].push_back(i);
  const std::vector<int> dims = {dim};
  std::vector<size_t> sizes;
  for (const RequestChunk& c : ChunkTables(pos, dims)) {
    sizes.push_back(c.num_keys());
  }
  return sizes;
}

TEST(KeyChunksTest, ChunkSizeFollowsTheByteLimit) {
  // Small rows: the key limit; 512-byte rows: the byte limit; a row over
  // the byte limit: alone.
  EXPECT_EQ(RequestSizes(kMaxChunkKeys + 1, 1),
            (std::vector<size_t>{kMaxChunkKeys, 1}));
  const size_t per = kMaxChunkBytes / (128 * sizeof(float));
  EXPECT_EQ(RequestSizes(per + 1, 128), (std::vector<size_t>{per, 1}));
  EXPECT_EQ(RequestSizes(2, 1 << 20), (std::vector<size_t>{1, 1}));
}

TEST(KeyChunksTest, EveryPositionLandsInExactlyOneChunkOfItsServer) {
  // Server 0: the even positions below 2 * (2 * kMaxChunkKeys + 1); server
  // 1: none; server 2: two odd ones.
  std::vector<std::vector<std::vector<uint32_t>>> pos(1);
  pos[0].resize(3);
  for (uint32_t p = 0; p < 2 * (2 * kMaxChunkKeys + 1); p += 2) {
    pos[0][0].push_back(p);
  }
  pos[0][2] = {1, 3};
  const std::vector<int> dims = {1};
  const std::vector<RequestChunk> chunks = ChunkTables(pos, dims);
  ASSERT_EQ(chunks.size(), 4u);  // server 0: 3 chunks, server 2: 1
  std::vector<uint32_t> seen;
  for (const RequestChunk& c : chunks) {
    EXPECT_LE(c.num_keys(), kMaxChunkKeys);
    for (const TableChunk& t : c.tables) {
      for (uint32_t p : t.pos) {
        seen.push_back(p);
        EXPECT_EQ(c.server, p % 2 == 0 ? 0u : 2u);
      }
    }
  }
  std::vector<uint32_t> want = pos[0][0];
  want.insert(want.end(), {1, 3});
  EXPECT_EQ(seen, want);
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
    if (c.server == 1) {
      EXPECT_EQ(c.num_keys(), 3u);
    }
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
    // Appended after what the buffer holds.
    std::string packed = "prefix";
    AppendKeys(keys, pos, &packed);
    ASSERT_EQ(packed.size(), 6 + pos.size() * 8);
    EXPECT_EQ(packed.substr(0, 6), "prefix");
    std::vector<uint64_t> unpacked(pos.size());
    std::memcpy(unpacked.data(), packed.data() + 6, packed.size() - 6);
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
