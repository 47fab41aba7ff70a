// RowChunks: rows of `stride` floats numbered 0, 1, ... in chunks of
// `chunk_rows` rows (default kChunkRows), each chunk aligned to a cache
// line. No allocation per row; a row's address is stable while the
// RowChunks lives. Not thread-safe: the sub-shard's lock guards it.
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
      : stride_(stride), chunk_rows_(chunk_rows) {}

  // REQUIRES: r < rows().
  float* Row(uint32_t r) const {
    return chunks_[r / chunk_rows_].get() +
           static_cast<size_t>(r % chunk_rows_) * stride_;
  }

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

  const int stride_;
  const uint32_t chunk_rows_;
  std::vector<Chunk> chunks_;
};

}  // namespace ps

#endif  // PS_SERVER_STORAGE_STORAGE_ROW_CHUNKS_H_
