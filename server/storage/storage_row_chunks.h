// RowChunks: rows of `stride` floats numbered 0, 1, ... in chunks of
// `chunk_rows` rows (default kChunkRows; rounded down to a power of two, so
// finding a row takes a shift and a mask, not a division: Row() runs twice
// per key a table looks up), each chunk aligned to a cache line. No allocation
// per row; a row's address is stable while the RowChunks lives. Not
// thread-safe: the sub-shard's lock guards it.
#ifndef PS_SERVER_STORAGE_STORAGE_ROW_CHUNKS_H_
#define PS_SERVER_STORAGE_STORAGE_ROW_CHUNKS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace ps {

class RowChunks {
 public:
  static constexpr uint32_t kChunkRows = 1024;
  static constexpr size_t kCacheLine = 64;

  explicit RowChunks(int stride, uint32_t chunk_rows = kChunkRows)
      : stride_(stride),
        shift_(FloorLog2(chunk_rows)),
        chunk_rows_(uint32_t{1} << shift_) {}

  // REQUIRES: r < rows().
  float* Row(uint32_t r) const {
    return chunks_[r >> shift_].get() +
           static_cast<size_t>(r & (chunk_rows_ - 1)) * stride_;
  }

  uint32_t chunk_rows() const { return chunk_rows_; }

  // Rows addressable (a multiple of chunk_rows).
  uint32_t rows() const {
    return static_cast<uint32_t>(chunks_.size()) * chunk_rows_;
  }

  // Makes row r addressable.
  void Reserve(uint32_t r) {
    while (r >= rows()) {
      chunks_.push_back(Chunk(static_cast<float*>(::operator new[](
          static_cast<size_t>(chunk_rows_) * stride_ * sizeof(float),
          std::align_val_t(kCacheLine)))));
    }
  }

  int64_t bytes() const {
    return static_cast<int64_t>(chunks_.size()) * chunk_rows_ * stride_ *
           static_cast<int64_t>(sizeof(float));
  }

 private:
  struct AlignedFree {
    void operator()(float* p) const {
      ::operator delete[](p, std::align_val_t(kCacheLine));
    }
  };
  using Chunk = std::unique_ptr<float[], AlignedFree>;

  // floor(log2(n)) for n >= 1; 0 for 0.
  static int FloorLog2(uint32_t n) {
    int log = 0;
    while (n > 1) n >>= 1, ++log;
    return log;
  }

  const int stride_;
  const int shift_;
  const uint32_t chunk_rows_;
  std::vector<Chunk> chunks_;
};

}  // namespace ps

#endif  // PS_SERVER_STORAGE_STORAGE_ROW_CHUNKS_H_
