#include "worker/client/key_chunks.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ps {

namespace {

// Whether pos (increasing) is a run of consecutive positions.
bool IsRun(absl::Span<const uint32_t> pos) {
  return !pos.empty() && pos.back() - pos.front() + 1 == pos.size();
}

}  // namespace

std::vector<RequestChunk> ChunkTables(
    const std::vector<std::vector<std::vector<uint32_t>>>& pos,
    absl::Span<const int> dims) {
  std::vector<RequestChunk> chunks;
  const size_t servers = pos.empty() ? 0 : pos[0].size();
  for (size_t s = 0; s < servers; ++s) {
    RequestChunk request{s, {}};
    size_t keys = 0;
    size_t bytes = 0;
    auto flush = [&] {
      if (!request.tables.empty()) chunks.push_back(std::move(request));
      request = RequestChunk{s, {}};
      keys = 0;
      bytes = 0;
    };
    for (size_t t = 0; t < pos.size(); ++t) {
      const size_t row_bytes = static_cast<size_t>(dims[t]) * sizeof(float);
      absl::Span<const uint32_t> rest(pos[t][s]);
      while (!rest.empty()) {
        size_t take = std::min({rest.size(), kMaxChunkKeys - keys,
                                (kMaxChunkBytes - bytes) / row_bytes});
        if (take == 0) {
          if (!request.tables.empty()) {
            flush();
            continue;
          }
          take = 1;  // a row over kMaxChunkBytes: alone
        }
        request.tables.push_back({t, rest.subspan(0, take)});
        rest.remove_prefix(take);
        keys += take;
        bytes += take * row_bytes;
        if (keys >= kMaxChunkKeys || bytes + row_bytes > kMaxChunkBytes) {
          flush();
        }
      }
    }
    flush();
  }
  return chunks;
}

void AppendKeys(absl::Span<const uint64_t> keys, absl::Span<const uint32_t> pos,
                std::string* out) {
  const size_t at = out->size();
  out->resize(at + pos.size() * sizeof(uint64_t));
  char* dst = out->data() + at;
  if (IsRun(pos)) {
    std::memcpy(dst, keys.data() + pos.front(), pos.size() * sizeof(uint64_t));
    return;
  }
  for (size_t j = 0; j < pos.size(); ++j) {
    std::memcpy(dst + j * sizeof(uint64_t), keys.data() + pos[j],
                sizeof(uint64_t));
  }
}

void AppendRows(absl::Span<const float> values, absl::Span<const uint32_t> pos,
                int dim, std::string* out) {
  const size_t at = out->size();
  out->resize(at + pos.size() * dim * sizeof(float));
  GatherRows(values.data(), pos, dim,
             reinterpret_cast<float*>(out->data() + at));
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
