// Embedding pooling forward and backward of the CUDA backend (see
// kernels/cuda/kernels.cuh). The backward pass merges gradients per row on
// the device with a stable radix sort by row (CUB) and a segmented sum, so
// it is deterministic and adds each row's gradients in the CPU backend's
// order.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include <initializer_list>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace ps {
namespace cuda {

namespace {

// Rows are read and written as float4 (or float2) where the width, leading
// dimensions and base pointers allow: Vec<V>::T is V floats.
template <int V>
struct Vec;
template <>
struct Vec<1> {
  using T = float;
};
template <>
struct Vec<2> {
  using T = float2;
};
template <>
struct Vec<4> {
  using T = float4;
};

__device__ inline float Zero(float) { return 0.0f; }
__device__ inline float2 Zero(float2) { return make_float2(0.0f, 0.0f); }
__device__ inline float4 Zero(float4) {
  return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}
__device__ inline void AddTo(float& a, float b) { a += b; }
__device__ inline void AddTo(float2& a, float2 b) {
  a.x += b.x;
  a.y += b.y;
}
__device__ inline void AddTo(float4& a, float4 b) {
  a.x += b.x;
  a.y += b.y;
  a.z += b.z;
  a.w += b.w;
}
// Products rounded on their own (no fused multiply-add), as on the host.
__device__ inline float Scaled(float a, float s) { return __fmul_rn(a, s); }
__device__ inline float2 Scaled(float2 a, float s) {
  return make_float2(__fmul_rn(a.x, s), __fmul_rn(a.y, s));
}
__device__ inline float4 Scaled(float4 a, float s) {
  return make_float4(__fmul_rn(a.x, s), __fmul_rn(a.y, s), __fmul_rn(a.z, s),
                     __fmul_rn(a.w, s));
}

// load(begin) + load(begin + 1) + ... + load(end - 1), added in that order
// from zero. Loads go 4 at a time, all 4 issued before their adds, so a
// lane has several gathers in flight; the order of the adds is unchanged.
template <typename T, typename Load>
__device__ inline T SumInOrder(uint32_t begin, uint32_t end, Load load) {
  constexpr uint32_t kUnroll = 4;
  T acc = Zero(T());
  uint32_t k = begin;
  for (; k + kUnroll <= end; k += kUnroll) {
    T v[kUnroll];
#pragma unroll
    for (uint32_t u = 0; u < kUnroll; ++u) v[u] = load(k + u);
#pragma unroll
    for (uint32_t u = 0; u < kUnroll; ++u) AddTo(acc, v[u]);
  }
  for (; k < end; ++k) AddTo(acc, load(k));
  return acc;
}

// A group of `group` lanes (a power of two up to 32) per (example, slot);
// lane c reads vectors c, c + group, ... of each pooled row, so a group
// reads a row's consecutive bytes. vdim = dim / V, vld_out = ld_out / V.
template <typename T>
__global__ void PoolForwardKernel(int64_t num_pairs, int group, int num_slots,
                                  int vdim, PoolMode mode,
                                  const uint32_t* __restrict__ offsets,
                                  const uint32_t* __restrict__ index,
                                  const T* __restrict__ rows,
                                  T* __restrict__ out, int64_t vld_out) {
  const int lane = threadIdx.x % group;
  const int64_t stride = GridThreads() / group;
  for (int64_t p = GlobalThread() / group; p < num_pairs; p += stride) {
    const uint32_t begin = offsets[p];
    const uint32_t end = offsets[p + 1];
    T* to = out + (p / num_slots) * vld_out + (p % num_slots) * vdim;
    for (int c = lane; c < vdim; c += group) {
      T acc = SumInOrder<T>(begin, end, [&](uint32_t r) {
        return rows[static_cast<int64_t>(index[r]) * vdim + c];
      });
      if (mode != PoolMode::kSum && end > begin) {
        acc = Scaled(acc, PoolScale(mode, end - begin));
      }
      to[c] = acc;
    }
  }
}

// key_slot[r] = the (example, slot) that pooled key r.
__global__ void KeySlotKernel(int64_t num_slot_pairs, const uint32_t* offsets,
                              uint32_t* key_slot) {
  for (int64_t p = GlobalThread(); p < num_slot_pairs; p += GridThreads()) {
    for (uint32_t r = offsets[p]; r < offsets[p + 1]; ++r) {
      key_slot[r] = static_cast<uint32_t>(p);
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

// A group of lanes per row (as in PoolForwardKernel): the row's merged
// gradient, summed in key order. sorted_slot[q] is the (example, slot) of
// the q-th key in row order.
template <typename T>
__global__ void SegmentSumKernel(int64_t num_rows, int group, int num_slots,
                                 int vdim, PoolMode mode,
                                 const uint32_t* __restrict__ offsets,
                                 const uint32_t* __restrict__ row_begin,
                                 const uint32_t* __restrict__ row_end,
                                 const uint32_t* __restrict__ sorted_slot,
                                 const T* __restrict__ d_out, int64_t vld_out,
                                 T* __restrict__ grad_rows) {
  const int lane = threadIdx.x % group;
  const int64_t stride = GridThreads() / group;
  const uint32_t slots = static_cast<uint32_t>(num_slots);
  // Where the pooled gradient of (example, slot) `slot` starts.
  auto source = [&](uint32_t slot) {
    return d_out + static_cast<int64_t>(slot / slots) * vld_out +
           static_cast<int64_t>(slot % slots) * vdim;
  };
  for (int64_t row = GlobalThread() / group; row < num_rows; row += stride) {
    const uint32_t begin = row_begin[row];
    const uint32_t end = row_end[row];
    for (int c = lane; c < vdim; c += group) {
      const T acc = SumInOrder<T>(begin, end, [&](uint32_t q) {
        const uint32_t slot = sorted_slot[q];
        const T v = source(slot)[c];
        return mode == PoolMode::kSum
                   ? v
                   : Scaled(v,
                            PoolScale(mode, offsets[slot + 1] - offsets[slot]));
      });
      grad_rows[row * vdim + c] = acc;
    }
  }
}

// The widest vector (4, 2 or 1 floats) that divides dim and every leading
// dimension and to which every pointer is aligned.
int VectorWidth(int dim, std::initializer_list<int64_t> lds,
                std::initializer_list<const void*> pointers) {
  for (int v : {4, 2}) {
    bool fits = dim % v == 0;
    for (int64_t ld : lds) fits = fits && ld % v == 0;
    for (const void* p : pointers) {
      fits = fits && reinterpret_cast<uintptr_t>(p) % (v * sizeof(float)) == 0;
    }
    if (fits) return v;
  }
  return 1;
}

// launch(std::integral_constant<int, V>()) for V = width (4, 2, else 1).
template <typename Launch>
void WithVectorWidth(int width, Launch launch) {
  if (width == 4) {
    launch(std::integral_constant<int, 4>());
  } else if (width == 2) {
    launch(std::integral_constant<int, 2>());
  } else {
    launch(std::integral_constant<int, 1>());
  }
}

// Lanes per row: the smallest power of two covering its vectors, up to 32.
int GroupSize(int vdim) {
  int group = 1;
  while (group < vdim && group < 32) group *= 2;
  return group;
}

template <int V>
void LaunchPoolForward(const PoolArgs& args, const float* rows, float* out,
                       int ld_out, cudaStream_t stream) {
  using T = typename Vec<V>::T;
  const int vdim = args.dim / V;
  const int group = GroupSize(vdim);
  const int64_t pairs = static_cast<int64_t>(args.batch) * args.num_slots;
  PoolForwardKernel<T><<<Blocks(pairs * group), kThreads, 0, stream>>>(
      pairs, group, args.num_slots, vdim, args.mode, args.offsets, args.index,
      reinterpret_cast<const T*>(rows), reinterpret_cast<T*>(out), ld_out / V);
}

template <int V>
void LaunchSegmentSum(const PoolArgs& args, int64_t num_rows,
                      const uint32_t* row_begin, const uint32_t* row_end,
                      const uint32_t* sorted_slot, const float* d_out,
                      int ld_out, float* grad_rows, cudaStream_t stream) {
  using T = typename Vec<V>::T;
  const int vdim = args.dim / V;
  const int group = GroupSize(vdim);
  SegmentSumKernel<T><<<Blocks(num_rows * group), kThreads, 0, stream>>>(
      num_rows, group, std::max(args.num_slots, 1), vdim, args.mode,
      args.offsets, row_begin, row_end, sorted_slot,
      reinterpret_cast<const T*>(d_out), ld_out / V,
      reinterpret_cast<T*>(grad_rows));
}

int RowBits(int64_t num_rows) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) < num_rows) ++bits;
  return bits;
}

int64_t AlignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// The workspace, in order: key_slot, sorted_rows, sorted_slot (num_keys
// each), row_begin, row_end (num_rows each), then CUB's scratch.
struct PoolWorkspace {
  uint32_t* key_slot;
  uint32_t* sorted_rows;
  uint32_t* sorted_slot;
  uint32_t* row_begin;
  uint32_t* row_end;
  void* cub_temp;
};

int64_t FixedBytes(int64_t num_keys, int64_t num_rows) {
  return 3 * AlignUp(num_keys * 4) + 2 * AlignUp(num_rows * 4);
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
  w.sorted_rows = reinterpret_cast<uint32_t*>(take(num_keys * 4));
  w.sorted_slot = reinterpret_cast<uint32_t*>(take(num_keys * 4));
  w.row_begin = reinterpret_cast<uint32_t*>(take(num_rows * 4));
  w.row_end = reinterpret_cast<uint32_t*>(take(num_rows * 4));
  w.cub_temp = at;
  return w;
}

}  // namespace

absl::Status PoolForward(const PoolArgs& args, const float* rows, float* out,
                         int ld_out, cudaStream_t stream) {
  if (args.batch <= 0 || args.num_slots <= 0 || args.dim <= 0) {
    return absl::OkStatus();
  }
  WithVectorWidth(VectorWidth(args.dim, {ld_out}, {rows, out}), [&](auto v) {
    LaunchPoolForward<decltype(v)::value>(args, rows, out, ld_out, stream);
  });
  PS_CUDA_CHECK_LAUNCH("PoolForwardKernel", stream);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PoolBackwardWorkspaceBytes(int64_t num_keys,
                                                   int64_t num_rows) {
  if (num_keys > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA PoolBackward: ", num_keys,
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
  const int64_t num_slot_pairs = static_cast<int64_t>(std::max(args.batch, 0)) *
                                 std::max(args.num_slots, 0);
  PoolWorkspace w = Carve(workspace, num_keys, num_rows);
  PS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(
      w.row_begin, 0, 2 * AlignUp(num_rows * 4), stream));  // and row_end
  if (num_keys > 0) {
    KeySlotKernel<<<Blocks(num_slot_pairs), kThreads, 0, stream>>>(
        num_slot_pairs, args.offsets, w.key_slot);
    PS_CUDA_CHECK_LAUNCH("KeySlotKernel", stream);
    // Stable, so each row's keys keep their order, and key_slot rises with
    // the key: the values are the keys' (example, slot) in the CPU
    // backend's order.
    size_t cub_bytes =
        static_cast<size_t>(workspace_bytes - FixedBytes(num_keys, num_rows));
    PS_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
        w.cub_temp, cub_bytes, args.index, w.sorted_rows, w.key_slot,
        w.sorted_slot, static_cast<int>(num_keys), 0, RowBits(num_rows),
        stream));
    PS_CUDA_CHECK_LAUNCH("cub::DeviceRadixSort::SortPairs", stream);
    RowRangesKernel<<<Blocks(num_keys), kThreads, 0, stream>>>(
        num_keys, w.sorted_rows, w.row_begin, w.row_end);
    PS_CUDA_CHECK_LAUNCH("RowRangesKernel", stream);
  }
  WithVectorWidth(
      VectorWidth(args.dim, {ld_out}, {d_out, grad_rows}), [&](auto v) {
        LaunchSegmentSum<decltype(v)::value>(args, num_rows, w.row_begin,
                                             w.row_end, w.sorted_slot, d_out,
                                             ld_out, grad_rows, stream);
      });
  PS_CUDA_CHECK_LAUNCH("SegmentSumKernel", stream);
  return absl::OkStatus();
}

}  // namespace cuda
}  // namespace ps
