// Embedding pooling forward and backward of the CUDA backend (see
// kernels/cuda/kernels.cuh). The backward pass merges gradients per row on
// the device with a stable radix sort by row (CUB) and a segmented sum, so
// it is deterministic and adds each row's gradients in the CPU backend's
// order.
#include <algorithm>
#include <climits>

#include <cub/device/device_radix_sort.cuh>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace ps {
namespace cuda {

namespace {

// 1 / count for mean pooling, else 1 -- the CPU backend's expression.
__device__ inline float PoolScale(PoolMode mode, uint32_t count) {
  return mode == PoolMode::kMean ? 1.0f / static_cast<float>(count) : 1.0f;
}

// One thread per (example, slot, d): consecutive threads read consecutive
// floats of a row.
__global__ void PoolForwardKernel(int64_t count, int num_slots, int dim,
                                  PoolMode mode, const uint32_t* offsets,
                                  const uint32_t* index, const float* rows,
                                  float* out, int ld_out) {
  for (int64_t t = GlobalThread(); t < count; t += GridThreads()) {
    const int d = static_cast<int>(t % dim);
    const int64_t slot = t / dim;  // i * num_slots + s
    const uint32_t begin = offsets[slot];
    const uint32_t end = offsets[slot + 1];
    float acc = 0.0f;
    for (uint32_t r = begin; r < end; ++r) {
      acc += rows[static_cast<int64_t>(index[r]) * dim + d];
    }
    if (mode == PoolMode::kMean && end > begin) acc *= PoolScale(mode, end - begin);
    const int64_t i = slot / num_slots;
    const int s = static_cast<int>(slot % num_slots);
    out[i * ld_out + static_cast<int64_t>(s) * dim + d] = acc;
  }
}

// key_slot[r] = the (example, slot) that pooled key r; sequence[r] = r.
__global__ void KeySlotKernel(int64_t num_slot_pairs, const uint32_t* offsets,
                              uint32_t* key_slot, uint32_t* sequence) {
  for (int64_t p = GlobalThread(); p < num_slot_pairs; p += GridThreads()) {
    for (uint32_t r = offsets[p]; r < offsets[p + 1]; ++r) {
      key_slot[r] = static_cast<uint32_t>(p);
      sequence[r] = r;
    }
  }
}

// For the keys sorted by row: [row_begin[row], row_end[row]) is the range
// of sorted positions holding `row` (rows no key pooled keep 0, 0).
__global__ void RowRangesKernel(int64_t num_keys, const uint32_t* sorted_rows,
                                uint32_t* row_begin, uint32_t* row_end) {
  for (int64_t q = GlobalThread(); q < num_keys; q += GridThreads()) {
    const uint32_t row = sorted_rows[q];
    if (q == 0 || sorted_rows[q - 1] != row) {
      row_begin[row] = static_cast<uint32_t>(q);
    }
    if (q == num_keys - 1 || sorted_rows[q + 1] != row) {
      row_end[row] = static_cast<uint32_t>(q + 1);
    }
  }
}

// One thread per (row, d): the row's merged gradient, summed in key order.
__global__ void SegmentSumKernel(int64_t count, int num_slots, int dim,
                                 PoolMode mode, const uint32_t* offsets,
                                 const uint32_t* row_begin,
                                 const uint32_t* row_end,
                                 const uint32_t* sorted_keys,
                                 const uint32_t* key_slot, const float* d_out,
                                 int ld_out, float* grad_rows) {
  for (int64_t t = GlobalThread(); t < count; t += GridThreads()) {
    const int d = static_cast<int>(t % dim);
    const int64_t row = t / dim;
    float acc = 0.0f;
    for (uint32_t q = row_begin[row]; q < row_end[row]; ++q) {
      const uint32_t slot = key_slot[sorted_keys[q]];
      const float scale = PoolScale(mode, offsets[slot + 1] - offsets[slot]);
      const int64_t i = slot / num_slots;
      const int s = static_cast<int>(slot % num_slots);
      acc += d_out[i * ld_out + static_cast<int64_t>(s) * dim + d] * scale;
    }
    grad_rows[t] = acc;
  }
}

int RowBits(int64_t num_rows) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) < num_rows) ++bits;
  return bits;
}

int64_t AlignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// The workspace, in order: key_slot, sequence, sorted_rows, sorted_keys
// (num_keys each), row_begin, row_end (num_rows each), then CUB's scratch.
struct PoolWorkspace {
  uint32_t* key_slot;
  uint32_t* sequence;
  uint32_t* sorted_rows;
  uint32_t* sorted_keys;
  uint32_t* row_begin;
  uint32_t* row_end;
  void* cub_temp;
};

int64_t FixedBytes(int64_t num_keys, int64_t num_rows) {
  return 4 * AlignUp(num_keys * 4) + 2 * AlignUp(num_rows * 4);
}

PoolWorkspace Carve(void* workspace, int64_t num_keys, int64_t num_rows) {
  char* at = static_cast<char*>(workspace);
  auto take = [&at](int64_t bytes) {
    char* p = at;
    at += AlignUp(bytes);
    return p;
  };
  PoolWorkspace w;
  w.key_slot = reinterpret_cast<uint32_t*>(take(num_keys * 4));
  w.sequence = reinterpret_cast<uint32_t*>(take(num_keys * 4));
  w.sorted_rows = reinterpret_cast<uint32_t*>(take(num_keys * 4));
  w.sorted_keys = reinterpret_cast<uint32_t*>(take(num_keys * 4));
  w.row_begin = reinterpret_cast<uint32_t*>(take(num_rows * 4));
  w.row_end = reinterpret_cast<uint32_t*>(take(num_rows * 4));
  w.cub_temp = at;
  return w;
}

}  // namespace

absl::Status PoolForward(const PoolArgs& args, const float* rows, float* out,
                         int ld_out, cudaStream_t stream) {
  const int64_t count =
      static_cast<int64_t>(args.batch) * args.num_slots * args.dim;
  if (args.batch <= 0 || args.num_slots <= 0 || args.dim <= 0) {
    return absl::OkStatus();
  }
  PoolForwardKernel<<<Blocks(count), kThreads, 0, stream>>>(
      count, args.num_slots, args.dim, args.mode, args.offsets, args.index,
      rows, out, ld_out);
  PS_CUDA_CHECK_LAUNCH("PoolForwardKernel", stream);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PoolBackwardWorkspaceBytes(int64_t num_keys,
                                                   int64_t num_rows) {
  if (num_keys > INT_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA PoolBackward: ", num_keys,
        " pooled keys exceed the sort's limit of ", INT_MAX));
  }
  if (num_rows > UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA PoolBackward: ", num_rows, " rows exceed uint32 indexing"));
  }
  size_t cub_bytes = 0;
  if (num_keys > 0) {
    PS_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
        nullptr, cub_bytes, static_cast<const uint32_t*>(nullptr),
        static_cast<uint32_t*>(nullptr), static_cast<const uint32_t*>(nullptr),
        static_cast<uint32_t*>(nullptr), static_cast<int>(num_keys), 0,
        RowBits(num_rows)));
  }
  return FixedBytes(num_keys, num_rows) + static_cast<int64_t>(cub_bytes);
}

absl::Status PoolBackward(const PoolArgs& args, int64_t num_keys,
                          const float* d_out, int ld_out, int64_t num_rows,
                          float* grad_rows, void* workspace,
                          int64_t workspace_bytes, cudaStream_t stream) {
  if (num_rows <= 0 || args.dim <= 0) return absl::OkStatus();
  const int64_t count = num_rows * args.dim;
  const int64_t num_slot_pairs =
      static_cast<int64_t>(std::max(args.batch, 0)) *
      std::max(args.num_slots, 0);
  PoolWorkspace w = Carve(workspace, num_keys, num_rows);
  PS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
      w.row_begin, 0, 2 * AlignUp(num_rows * 4), stream));  // and row_end
  if (num_keys > 0) {
    KeySlotKernel<<<Blocks(num_slot_pairs), kThreads, 0, stream>>>(
        num_slot_pairs, args.offsets, w.key_slot, w.sequence);
    PS_CUDA_CHECK_LAUNCH("KeySlotKernel", stream);
    size_t cub_bytes = static_cast<size_t>(
        workspace_bytes - FixedBytes(num_keys, num_rows));
    PS_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
        w.cub_temp, cub_bytes, args.index, w.sorted_rows, w.sequence,
        w.sorted_keys, static_cast<int>(num_keys), 0, RowBits(num_rows),
        stream));
    PS_CUDA_CHECK_LAUNCH("cub::DeviceRadixSort::SortPairs", stream);
    RowRangesKernel<<<Blocks(num_keys), kThreads, 0, stream>>>(
        num_keys, w.sorted_rows, w.row_begin, w.row_end);
    PS_CUDA_CHECK_LAUNCH("RowRangesKernel", stream);
  }
  SegmentSumKernel<<<Blocks(count), kThreads, 0, stream>>>(
      count, std::max(args.num_slots, 1), args.dim, args.mode, args.offsets,
      w.row_begin, w.row_end, w.sorted_keys, w.key_slot, d_out, ld_out,
      grad_rows);
  PS_CUDA_CHECK_LAUNCH("SegmentSumKernel", stream);
  return absl::OkStatus();
}

}  // namespace cuda
}  // namespace ps
