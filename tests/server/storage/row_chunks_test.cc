#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "server/storage/storage_row_chunks.h"

namespace ps {
namespace {

TEST(RowChunksTest, ChunkRowsRoundDownToAPowerOfTwo) {
  EXPECT_EQ(RowChunks(3).chunk_rows(), RowChunks::kChunkRows);
  EXPECT_EQ(RowChunks(3, 1000).chunk_rows(), 512u);
  EXPECT_EQ(RowChunks(3, 16).chunk_rows(), 16u);
  EXPECT_EQ(RowChunks(3, 17).chunk_rows(), 16u);
  EXPECT_EQ(RowChunks(3, 1).chunk_rows(), 1u);
}

// Every row has its own stride floats, at an address that stays put as
// chunks are added: write each row's number into all its floats, then
// read every row back after the table has grown.
TEST(RowChunksTest, RowsAreDisjointAndStable) {
  for (uint32_t chunk_rows : {1u, 5u, 16u, 100u}) {
    const int stride = 7;
    RowChunks rows(stride, chunk_rows);
    const uint32_t n = 10 * rows.chunk_rows() + 3;
    std::vector<float*> at;
    for (uint32_t r = 0; r < n; ++r) {
      rows.Reserve(r);
      ASSERT_GT(rows.rows(), r);
      float* row = rows.Row(r);
      for (int d = 0; d < stride; ++d) row[d] = static_cast<float>(r);
      at.push_back(row);
    }
    EXPECT_EQ(rows.rows() % rows.chunk_rows(), 0u);
    EXPECT_EQ(rows.bytes(), int64_t{rows.rows()} * stride * 4);
    for (uint32_t r = 0; r < n; ++r) {
      ASSERT_EQ(rows.Row(r), at[r]) << "chunk_rows " << chunk_rows;
      for (int d = 0; d < stride; ++d) {
        ASSERT_EQ(at[r][d], static_cast<float>(r))
            << "chunk_rows " << chunk_rows << " row " << r;
      }
    }
  }
}

}  // namespace
}  // namespace ps
