#include "worker/client/key_chunks.h"

#include <algorithm>
#include <cstring>

namespace ps {

namespace {

// Whether pos (increasing) is a run of consecutive positions.
bool IsRun(absl::Span<const uint32_t> pos) {
  return !pos.empty() && pos.back() - pos.front() + 1 == pos.size();
}

}  // namespace

size_t ChunkKeys(int dim) {
  return std::clamp<size_t>(kMaxChunkBytes / (dim * sizeof(float)), 1,
                            kMaxChunkKeys);
}

// Splits every server's positions into chunks of at most max_keys.
std::vector<KeyChunk> Chunk(const std::vector<std::vector<uint32_t>>& pos,
                            size_t max_keys) {
  std::vector<KeyChunk> chunks;
  for (size_t s = 0; s < pos.size(); ++s) {
    const absl::Span<const uint32_t> all(pos[s]);
    for (size_t begin = 0; begin < all.size(); begin += max_keys) {
      chunks.push_back({s, all.subspan(begin, max_keys)});
    }
  }
  return chunks;
}

// out = keys[pos[0]], keys[pos[1]], ... packed.
void PackKeys(absl::Span<const uint64_t> keys, absl::Span<const uint32_t> pos,
              std::string* out) {
  if (IsRun(pos)) {
    out->assign(reinterpret_cast<const char*>(keys.data() + pos.front()),
                pos.size() * sizeof(uint64_t));
    return;
  }
  out->resize(pos.size() * sizeof(uint64_t));
  uint64_t* k = reinterpret_cast<uint64_t*>(out->data());
  for (size_t j = 0; j < pos.size(); ++j) k[j] = keys.data()[pos[j]];
}

// Row j of dst (dim floats) = row pos[j] of src.
void GatherRows(const float* src, absl::Span<const uint32_t> pos, int dim,
                float* dst) {
  const size_t row_bytes = dim * sizeof(float);
  if (IsRun(pos)) {
    std::memcpy(dst, src + static_cast<size_t>(pos.front()) * dim,
                pos.size() * row_bytes);
    return;
  }
  for (size_t j = 0; j < pos.size(); ++j) {
    std::memcpy(dst + j * dim, src + static_cast<size_t>(pos[j]) * dim,
                row_bytes);
  }
}

// Row pos[j] of dst = row j of src.
void ScatterRows(const float* src, absl::Span<const uint32_t> pos, int dim,
                 float* dst) {
  const size_t row_bytes = dim * sizeof(float);
  if (IsRun(pos)) {
    std::memcpy(dst + static_cast<size_t>(pos.front()) * dim, src,
                pos.size() * row_bytes);
    return;
  }
  for (size_t j = 0; j < pos.size(); ++j) {
    std::memcpy(dst + static_cast<size_t>(pos[j]) * dim, src + j * dim,
                row_bytes);
  }
}

}  // namespace ps
