// GPU benchmarks of the CUDA backend (scripts/gpu_check.sh runs them):
//
//  BM_PoolForwardBackward  embedding pooling forward + backward (sort-based
//                          merge per row) on a CTR-shaped batch, or the
//                          forward alone (last argument 0); counters:
//                          GB/s of useful traffic (gathered rows, pooled
//                          outputs, gathered gradients, written row
//                          gradients, index) and that as a fraction of the
//                          card's theoretical memory bandwidth (memory clock
//                          x bus width from cudaDeviceGetAttribute).
//  BM_MlpStep              forward + backward of an MLP through the Backend
//                          (cuBLAS GEMMs + fused bias/activation, bias
//                          grads); counter TFLOP/s of its GEMMs.
//  BM_CublasGemms          the same GEMMs, and nothing else, issued straight
//                          to cublasSgemm: the rate BM_MlpStep is compared to.
// Times run from a CUDA event recorded before an iteration's first launch to
// one after its Synchronize: GPU time plus host launch overhead.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/backend.h"

namespace ps {
namespace {

#define BENCH_CHECK(cond)                                             \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "cuda_bench: %s failed at %s:%d\n", #cond, \
                   __FILE__, __LINE__);                               \
      std::exit(1);                                                   \
    }                                                                 \
  } while (0)

double PeakBandwidthGBs() {
  int device = 0, clock_khz = 0, bus_bits = 0;
  BENCH_CHECK(cudaGetDevice(&device) == cudaSuccess);
  BENCH_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate,
                                     device) == cudaSuccess);
  BENCH_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth,
                                     device) == cudaSuccess);
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
}

std::unique_ptr<Backend> Cuda() {
  auto backend = Backend::CreateCuda(BackendOptions{});
  if (!backend.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n",
                 std::string(backend.status().message()).c_str());
    std::exit(1);
  }
  return std::move(backend).value();
}

template <typename T>
BackendBuffer Upload(Backend* backend, const std::vector<T>& host) {
  auto buffer = backend->Allocate(host.size() * sizeof(T));
  BENCH_CHECK(buffer.ok());
  backend->CopyToBackend(host.data(), host.size() * sizeof(T), buffer->data());
  BENCH_CHECK(backend->Synchronize().ok());
  return std::move(buffer).value();
}

std::vector<float> Random(int64_t n, std::mt19937* rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(*rng);
  return v;
}

// Times `body` (see the top comment); the backend's streams are
// synchronized inside.
template <typename Body>
void TimeIterations(benchmark::State& state, Backend* backend, Body body) {
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start) == cudaSuccess);
  BENCH_CHECK(cudaEventCreate(&stop) == cudaSuccess);
  for (auto _ : state) {
    BENCH_CHECK(cudaEventRecord(start) == cudaSuccess);
    body();
    BENCH_CHECK(backend->Synchronize().ok());
    BENCH_CHECK(cudaEventRecord(stop) == cudaSuccess);
    BENCH_CHECK(cudaEventSynchronize(stop) == cudaSuccess);
    float ms = 0;
    BENCH_CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess);
    state.SetIterationTime(ms / 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

// Args: batch, slots, dim, mean keys per slot (1..2 * mean - 1 uniform),
// distinct rows, and 1 for forward + backward or 0 for the forward alone.
void BM_PoolForwardBackward(benchmark::State& state) {
  const int batch = state.range(0), slots = state.range(1),
            dim = state.range(2), mean_keys = state.range(3);
  const int64_t num_rows = state.range(4);
  const bool backward = state.range(5) != 0;
  auto backend = Cuda();
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> keys(1, 2 * mean_keys - 1);
  std::uniform_int_distribution<int64_t> row(0, num_rows - 1);
  std::vector<uint32_t> offsets = {0}, index;
  for (int p = 0; p < batch * slots; ++p) {
    const int count = keys(rng);
    for (int k = 0; k < count; ++k) index.push_back(row(rng));
    offsets.push_back(index.size());
  }
  const int64_t num_keys = index.size();
  const int ld = slots * dim;
  BackendBuffer d_offsets = Upload(backend.get(), offsets);
  BackendBuffer d_index = Upload(backend.get(), index);
  BackendBuffer rows = Upload(backend.get(), Random(num_rows * dim, &rng));
  BackendBuffer pooled =
      Upload(backend.get(), std::vector<float>(int64_t{batch} * ld));
  BackendBuffer d_pooled =
      Upload(backend.get(), Random(int64_t{batch} * ld, &rng));
  BackendBuffer grads =
      Upload(backend.get(), std::vector<float>(num_rows * dim));
  PoolArgs args{batch,
                slots,
                dim,
                PoolMode::kSum,
                d_offsets.as<uint32_t>(),
                d_index.as<uint32_t>(),
                num_keys};
  TimeIterations(state, backend.get(), [&] {
    backend->PoolForward(args, rows.as<float>(), pooled.as<float>(), ld);
    if (backward) {
      backend->PoolBackward(args, d_pooled.as<float>(), ld, num_rows,
                            grads.as<float>());
    }
  });
  // Useful bytes: forward gathers a row per key and writes the pooled
  // output; backward reads the pooled gradients, gathers one per key and
  // writes every row's gradient; both read the index and offsets.
  const double forward_bytes = num_keys * dim * 4.0 + batch * ld * 4.0 +
                               num_keys * 4.0 + offsets.size() * 4.0;
  const double bytes =
      backward ? 2.0 * forward_bytes + num_rows * dim * 4.0 : forward_bytes;
  const double peak = PeakBandwidthGBs();
  state.counters["GB/s"] = benchmark::Counter(
      bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_GB/s"] = peak;
  state.counters["keys"] = num_keys;
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
}
BENCHMARK(BM_PoolForwardBackward)
    ->Args({4096, 26, 8, 2, 200000, 1})
    ->Args({4096, 26, 16, 2, 200000, 1})
    ->Args({65536, 26, 16, 2, 2000000, 1})
    ->Args({8192, 100, 64, 4, 1000000, 1})
    ->Args({8192, 100, 64, 4, 1000000, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Args: batch, input width, hidden widths (up to 3; 0 = none). The last
// layer has one output (the logit).
struct Mlp {
  int batch;
  std::vector<int> widths;  // input, hidden..., 1
  double Flops() const {
    double f = 0;
    for (size_t l = 0; l + 1 < widths.size(); ++l) {
      f += 3 * 2.0 * batch * widths[l] * widths[l + 1];  // fwd, dW, dx
    }
    return f;
  }
};

Mlp MlpFromArgs(const benchmark::State& state) {
  Mlp mlp{static_cast<int>(state.range(0)), {static_cast<int>(state.range(1))}};
  for (int i = 2; i < 5; ++i) {
    if (state.range(i) > 0) mlp.widths.push_back(state.range(i));
  }
  mlp.widths.push_back(1);
  return mlp;
}

struct MlpBuffers {
  std::vector<BackendBuffer> weights, biases, acts, grads, weight_grads,
      bias_grads;
};

MlpBuffers MakeMlpBuffers(Backend* backend, const Mlp& mlp) {
  std::mt19937 rng(2);
  MlpBuffers b;
  const int layers = mlp.widths.size() - 1;
  b.acts.push_back(
      Upload(backend, Random(int64_t{mlp.batch} * mlp.widths[0], &rng)));
  for (int l = 0; l < layers; ++l) {
    const int in = mlp.widths[l], out = mlp.widths[l + 1];
    b.weights.push_back(Upload(backend, Random(int64_t{in} * out, &rng)));
    b.biases.push_back(Upload(backend, Random(out, &rng)));
    b.acts.push_back(
        Upload(backend, std::vector<float>(int64_t{mlp.batch} * out)));
    b.grads.push_back(Upload(backend, Random(int64_t{mlp.batch} * out, &rng)));
    b.weight_grads.push_back(
        Upload(backend, std::vector<float>(int64_t{in} * out)));
    b.bias_grads.push_back(Upload(backend, std::vector<float>(out)));
  }
  b.grads.insert(
      b.grads.begin(),
      Upload(backend, std::vector<float>(int64_t{mlp.batch} * mlp.widths[0])));
  return b;
}

void BM_MlpStep(benchmark::State& state) {
  const Mlp mlp = MlpFromArgs(state);
  auto backend = Cuda();
  MlpBuffers b = MakeMlpBuffers(backend.get(), mlp);
  const int layers = mlp.widths.size() - 1;
  TimeIterations(state, backend.get(), [&] {
    for (int l = 0; l < layers; ++l) {
      const int in = mlp.widths[l], out = mlp.widths[l + 1];
      backend->Gemm(false, false, mlp.batch, out, in, 1.0f,
                    b.acts[l].as<float>(), b.weights[l].as<float>(), 0.0f,
                    b.acts[l + 1].as<float>());
      backend->BiasActivation(
          mlp.batch, out, b.biases[l].as<float>(),
          l + 1 < layers ? Activation::kRelu : Activation::kNone,
          b.acts[l + 1].as<float>());
    }
    for (int l = layers - 1; l >= 0; --l) {
      const int in = mlp.widths[l], out = mlp.widths[l + 1];
      float* d_out = b.grads[l + 1].as<float>();
      if (l + 1 < layers) {
        backend->ActivationBackward(int64_t{mlp.batch} * out, Activation::kRelu,
                                    b.acts[l + 1].as<float>(), d_out);
      }
      backend->Gemm(true, false, in, out, mlp.batch, 1.0f,
                    b.acts[l].as<float>(), d_out, 0.0f,
                    b.weight_grads[l].as<float>());
      backend->BiasGrad(mlp.batch, out, d_out, b.bias_grads[l].as<float>());
      backend->Gemm(false, true, mlp.batch, in, out, 1.0f, d_out,
                    b.weights[l].as<float>(), 0.0f, b.grads[l].as<float>());
    }
  });
  state.counters["TFLOP/s"] = benchmark::Counter(
      mlp.Flops() / 1e12, benchmark::Counter::kIsIterationInvariantRate);
}

// The GEMMs of BM_MlpStep, row-major as the backend issues them, straight
// to cuBLAS on one stream.
void BM_CublasGemms(benchmark::State& state) {
  const Mlp mlp = MlpFromArgs(state);
  auto backend = Cuda();  // only for memory
  MlpBuffers b = MakeMlpBuffers(backend.get(), mlp);
  cublasHandle_t handle;
  BENCH_CHECK(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS);
  const int layers = mlp.widths.size() - 1;
  const float one = 1.0f, zero = 0.0f;
  auto gemm = [&](bool ta, bool tb, int m, int n, int k, const float* a,
                  const float* bm, float* c) {
    BENCH_CHECK(cublasSgemm(handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                            ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &one, bm,
                            tb ? k : n, a, ta ? m : k, &zero, c,
                            n) == CUBLAS_STATUS_SUCCESS);
  };
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (auto _ : state) {
    cudaEventRecord(start);
    for (int l = 0; l < layers; ++l) {
      gemm(false, false, mlp.batch, mlp.widths[l + 1], mlp.widths[l],
           b.acts[l].as<float>(), b.weights[l].as<float>(),
           b.acts[l + 1].as<float>());
    }
    for (int l = layers - 1; l >= 0; --l) {
      const int in = mlp.widths[l], out = mlp.widths[l + 1];
      gemm(true, false, in, out, mlp.batch, b.acts[l].as<float>(),
           b.grads[l + 1].as<float>(), b.weight_grads[l].as<float>());
      gemm(false, true, mlp.batch, in, out, b.grads[l + 1].as<float>(),
           b.weights[l].as<float>(), b.grads[l].as<float>());
    }
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms / 1e3);
  }
  cublasDestroy(handle);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  state.counters["TFLOP/s"] = benchmark::Counter(
      mlp.Flops() / 1e12, benchmark::Counter::kIsIterationInvariantRate);
}

// The default DNN (generated_dnn: 26 slots x 8 + 13 dense -> 64 -> 32 -> 1)
// at its batch and a larger one, and a wide MLP where GEMMs dominate.
#define MLP_SHAPES(bench)                \
  BENCHMARK(bench)                       \
      ->Args({512, 221, 64, 32, 0})      \
      ->Args({8192, 221, 64, 32, 0})     \
      ->Args({8192, 1024, 1024, 512, 0}) \
      ->UseManualTime()                  \
      ->Unit(benchmark::kMicrosecond)
MLP_SHAPES(BM_MlpStep);
MLP_SHAPES(BM_CublasGemms);

}  // namespace
}  // namespace ps

BENCHMARK_MAIN();
