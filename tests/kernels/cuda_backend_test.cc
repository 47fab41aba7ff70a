// Every kernel of a device backend against the CPU backend on seeded random
// inputs of awkward sizes (1, 7, 65, 1000; batches that are no multiple of
// 32; slots with zero keys), through the Backend interface: inputs go in
// with Allocate + CopyToBackend, results come back with CopyToHost +
// Synchronize.
//
// The suite runs for two device backends: "cuda", skipped with a message
// when the binary has no CUDA or no GPU is usable, and "cpu" (the CPU
// backend against itself), which runs everywhere and checks the harness
// (extents, copies, tolerances) so that the CUDA instance fails only for
// the backend.
//
// Tolerances (|got - want| <= bound):
//  - sums (GEMM, pooling, column sums, FM): 1e-5 * S + 1e-6, where S is the
//    same sum over the absolute values of its terms (the CPU kernel run on
//    |inputs|): FP32 summation-order error is a small multiple of eps * S;
//  - element-wise (activations, probabilities, copies): 2e-6 * |want| +
//    1e-6 (expf/tanhf differ by a few ulp between host and device);
//  - cross-network outputs (warp-tree dot products): 1e-4 * (1 + |want|);
//  - loss and metric sums (double): 1e-9 relative; histogram counts exact;
//  - the dense optimizer step: bit-identical to the servers' rule
//    (OptimizerRule; the kernel is built without FMA contraction).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/optimizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/auc.h"
#include "kernels/backend.h"
#include "kernels/backend_select.h"
#include "kernels/device.h"
#include "tests/testing/kernel_test_util.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using testing_util::StatusIs;

std::vector<float> Abs(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// Device copies of host vectors, freed with the fixture.
class CudaBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    cpu_ = MakeBackend();
    ASSERT_NE(cpu_, nullptr);
    if (GetParam() == "cpu") {
      device_ = MakeBackend();
      ASSERT_NE(device_, nullptr);
      return;
    }
    if (!BuiltWithCuda()) {
      GTEST_SKIP() << "CUDA backend tests skipped: built without CUDA";
    }
    auto gpus = ListGpus();
    ASSERT_TRUE(gpus.ok()) << gpus.status();
    if (gpus->empty()) {
      GTEST_SKIP() << "CUDA backend tests skipped: no usable GPU ("
                   << DescribeAccelerators() << ")";
    }
    auto cuda = Backend::CreateCuda(BackendOptions{});
    ASSERT_TRUE(cuda.ok()) << cuda.status();
    device_ = std::move(cuda).value();
  }

  template <typename T>
  T* Up(const std::vector<T>& host) {
    auto buffer = device_->Allocate(
        static_cast<int64_t>(std::max<size_t>(host.size(), 1) * sizeof(T)));
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (!buffer.ok()) return nullptr;
    device_->CopyToBackend(host.data(), host.size() * sizeof(T),
                           buffer->data());
    buffers_.push_back(std::move(buffer).value());
    return buffers_.back().template as<T>();
  }

  template <typename T>
  std::vector<T> Down(const T* device, size_t count) {
    std::vector<T> host(count);
    device_->CopyToHost(device, count * sizeof(T), host.data());
    absl::Status status = device_->Synchronize();
    EXPECT_TRUE(status.ok()) << status;
    return host;
  }

  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<Backend> device_;
  std::vector<BackendBuffer> buffers_;
};

void ExpectSumsNear(const std::vector<float>& got,
                    const std::vector<float>& want,
                    const std::vector<float>& abs_sum,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5 * std::fabs(abs_sum[i]) + 1e-6)
        << what << " at " << i;
  }
}

void ExpectElementsNear(const std::vector<float>& got,
                        const std::vector<float>& want, const std::string& what,
                        double rel = 2e-6, double abs = 1e-6) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], rel * std::fabs(want[i]) + abs)
        << what << " at " << i;
  }
}

TEST_P(CudaBackendTest, Gemm) {
  std::mt19937 rng(11);
  struct Shape {
    int m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},    {7, 65, 1},    {65, 7, 13},
                          {1, 1000, 7}, {1000, 1, 65}, {33, 17, 1000},
                          {5, 3, 0}};
  for (const Shape& s : shapes) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        for (float beta : {0.0f, -0.5f}) {
          const auto a = RandomVector(int64_t{s.m} * s.k, &rng);
          const auto b = RandomVector(int64_t{s.k} * s.n, &rng);
          const auto c = RandomVector(int64_t{s.m} * s.n, &rng);
          std::vector<float> want = c, abs_sum = Abs(c);
          cpu_->Gemm(ta, tb, s.m, s.n, s.k, 0.75f, a.data(), b.data(), beta,
                     want.data());
          cpu_->Gemm(ta, tb, s.m, s.n, s.k, 0.75f, Abs(a).data(), Abs(b).data(),
                     std::fabs(beta), abs_sum.data());
          float* dc = Up(c);
          device_->Gemm(ta, tb, s.m, s.n, s.k, 0.75f, Up(a), Up(b), beta, dc);
          ExpectSumsNear(
              Down(dc, c.size()), want, abs_sum,
              "gemm " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                  std::to_string(s.k) + " ta " + std::to_string(ta) + " tb " +
                  std::to_string(tb) + " beta " + std::to_string(beta));
        }
      }
    }
  }
}

TEST_P(CudaBackendTest, BiasActivationAndBackward) {
  std::mt19937 rng(12);
  for (Activation act : {Activation::kNone, Activation::kRelu,
                         Activation::kTanh, Activation::kSigmoid}) {
    for (auto [m, n] : {std::pair{1, 1}, {7, 65}, {65, 7}, {1000, 33}}) {
      const auto y0 = RandomVector(int64_t{m} * n, &rng, -3, 3);
      const auto bias = RandomVector(n, &rng);
      std::vector<float> want = y0;
      cpu_->BiasActivation(m, n, bias.data(), act, want.data());
      float* dy = Up(y0);
      device_->BiasActivation(m, n, Up(bias), act, dy);
      const auto got = Down(dy, y0.size());
      const std::string what = "activation " +
                               std::to_string(static_cast<int>(act)) + " " +
                               std::to_string(m) + "x" + std::to_string(n);
      ExpectElementsNear(got, want, what);

      // Backward from the CPU's outputs, so both see the same y.
      const auto grad = RandomVector(want.size(), &rng);
      std::vector<float> want_grad = grad;
      cpu_->ActivationBackward(want.size(), act, want.data(), want_grad.data());
      float* dgrad = Up(grad);
      device_->ActivationBackward(want.size(), act, Up(want), dgrad);
      ExpectElementsNear(Down(dgrad, grad.size()), want_grad,
                         "backward of " + what);
    }
  }
}

TEST_P(CudaBackendTest, BiasGrad) {
  std::mt19937 rng(13);
  // Above 512 rows the CUDA backend sums in chunks of 512, then the chunks
  // (40 chunks for 20000 rows: more than a warp's lanes).
  for (auto [m, n] : {std::pair{1, 1},
                      {7, 65},
                      {65, 1},
                      {1000, 7},
                      {0, 5},
                      {33, 1000},
                      {512, 3},
                      {513, 3},
                      {8192, 1},
                      {20000, 64}}) {
    const auto dy = RandomVector(int64_t{m} * n, &rng);
    std::vector<float> want(n), abs_sum(n);
    cpu_->BiasGrad(m, n, dy.data(), want.data());
    cpu_->BiasGrad(m, n, Abs(dy).data(), abs_sum.data());
    float* db = Up(RandomVector(n, &rng));  // overwritten
    device_->BiasGrad(m, n, Up(dy), db);
    ExpectSumsNear(Down(db, n), want, abs_sum,
                   "bias grad " + std::to_string(m) + "x" + std::to_string(n));
  }
}

// A pooling input: key counts per (example, slot) drawn from 0..max_keys
// (so some slots are empty), indices into num_rows rows.
struct PoolInput {
  std::vector<uint32_t> offsets;
  std::vector<uint32_t> index;
};

PoolInput MakePoolInput(int batch, int num_slots, int max_keys, int num_rows,
                        std::mt19937* rng) {
  std::uniform_int_distribution<int> keys(0, max_keys);
  std::uniform_int_distribution<uint32_t> row(0, num_rows - 1);
  PoolInput in;
  in.offsets.push_back(0);
  for (int p = 0; p < batch * num_slots; ++p) {
    const int count = keys(*rng);
    for (int k = 0; k < count; ++k) in.index.push_back(row(*rng));
    in.offsets.push_back(static_cast<uint32_t>(in.index.size()));
  }
  return in;
}

TEST_P(CudaBackendTest, PoolForwardAndBackward) {
  std::mt19937 rng(14);
  // pad: extra output columns (odd pads make the CUDA backend read and write
  // single floats; pads of 0 and 4 with widths divisible by 4 or 2, float4
  // or float2). shift: the output starts one float past an allocation, so
  // vectors would be misaligned.
  struct Case {
    int batch, num_slots, dim, max_keys, num_rows, pad;
    bool shift;
  };
  const Case cases[] = {
      {1, 1, 1, 1, 1, 3, false},      {7, 3, 7, 2, 5, 3, false},
      {65, 26, 8, 3, 1000, 3, false}, {1000, 7, 9, 4, 65, 3, false},
      {33, 2, 65, 0, 3, 3, false},    {100, 5, 16, 50, 7, 3, false},
      {65, 26, 8, 3, 1000, 0, false}, {100, 5, 16, 50, 7, 0, false},
      {33, 3, 6, 5, 40, 0, false},    {9, 2, 260, 6, 11, 4, false},
      {17, 4, 64, 9, 200, 4, false},  {65, 26, 8, 3, 1000, 0, true}};
  for (const Case& c : cases) {
    for (PoolMode mode : {PoolMode::kSum, PoolMode::kMean, PoolMode::kSqrtN}) {
      const PoolInput in =
          MakePoolInput(c.batch, c.num_slots, c.max_keys, c.num_rows, &rng);
      const auto rows = RandomVector(int64_t{c.num_rows} * c.dim, &rng);
      // A wider output: the extra columns must stay untouched.
      const int ld_out = c.num_slots * c.dim + c.pad;
      const int shift = c.shift ? 1 : 0;
      const auto out0 = RandomVector(int64_t{c.batch} * ld_out, &rng);
      PoolArgs args{c.batch, c.num_slots,       c.dim,
                    mode,    in.offsets.data(), in.index.data()};
      std::vector<float> want = out0, abs_sum = out0;
      cpu_->PoolForward(args, rows.data(), want.data(), ld_out);
      cpu_->PoolForward(args, Abs(rows).data(), abs_sum.data(), ld_out);
      PoolArgs dargs = args;
      dargs.offsets = Up(in.offsets);
      dargs.index = Up(in.index);
      std::vector<float> shifted_out0(shift, 0.0f);
      shifted_out0.insert(shifted_out0.end(), out0.begin(), out0.end());
      float* dout = Up(shifted_out0) + shift;
      device_->PoolForward(dargs, Up(rows), dout, ld_out);
      const std::string what =
          std::string(mode == PoolMode::kSum    ? "sum"
                      : mode == PoolMode::kMean ? "mean"
                                                : "sqrt-n") +
          " pooling batch " + std::to_string(c.batch) + " slots " +
          std::to_string(c.num_slots) + " dim " + std::to_string(c.dim) +
          " pad " + std::to_string(c.pad) + (c.shift ? " shifted" : "");
      ExpectSumsNear(Down(dout, out0.size()), want, abs_sum, what);

      const auto d_out = RandomVector(int64_t{c.batch} * ld_out, &rng);
      std::vector<float> want_grad(int64_t{c.num_rows} * c.dim);
      std::vector<float> abs_grad(want_grad.size());
      cpu_->PoolBackward(args, d_out.data(), ld_out, c.num_rows,
                         want_grad.data());
      cpu_->PoolBackward(args, Abs(d_out).data(), ld_out, c.num_rows,
                         abs_grad.data());
      // Garbage in: PoolBackward must overwrite every row.
      std::vector<float> garbage = RandomVector(shift + want_grad.size(), &rng);
      float* dgrad = Up(garbage) + shift;
      std::vector<float> shifted_d_out(shift, 0.0f);
      shifted_d_out.insert(shifted_d_out.end(), d_out.begin(), d_out.end());
      const float* dd_out = Up(shifted_d_out) + shift;
      for (int64_t num_keys :
           {int64_t{-1}, static_cast<int64_t>(in.index.size())}) {
        dargs.num_keys = num_keys;
        device_->PoolBackward(dargs, dd_out, ld_out, c.num_rows, dgrad);
        ExpectSumsNear(Down(dgrad, want_grad.size()), want_grad, abs_grad,
                       "backward of " + what);
      }
    }
  }
}

TEST_P(CudaBackendTest, PoolBackwardIsDeterministic) {
  std::mt19937 rng(15);
  const PoolInput in = MakePoolInput(1000, 26, 3, 50, &rng);
  const int dim = 8, ld = 26 * 8;
  const auto d_out = RandomVector(1000 * ld, &rng);
  PoolArgs args{1000, 26, dim, PoolMode::kMean, Up(in.offsets), Up(in.index)};
  float* first = Up(std::vector<float>(50 * dim));
  float* second = Up(std::vector<float>(50 * dim));
  const float* dd_out = Up(d_out);
  device_->PoolBackward(args, dd_out, ld, 50, first);
  device_->PoolBackward(args, dd_out, ld, 50, second);
  const auto a = Down(first, 50 * dim);
  const auto b = Down(second, 50 * dim);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

TEST_P(CudaBackendTest, CopyBlocks) {
  std::mt19937 rng(16);
  for (bool accumulate : {false, true}) {
    for (auto [rows, blocks, width] :
         {std::tuple{1, 1, 1}, {7, 3, 5}, {65, 26, 8}, {1000, 1, 13}}) {
      const BlockLayout src_layout{blocks * (width + 2), width + 2};
      const BlockLayout dst_layout{blocks * width + 7, width};
      const auto src = RandomVector(int64_t{rows} * src_layout.ld, &rng);
      const auto dst0 = RandomVector(int64_t{rows} * dst_layout.ld, &rng);
      std::vector<float> want = dst0;
      cpu_->CopyBlocks(rows, blocks, width, src.data(), src_layout, want.data(),
                       dst_layout, accumulate);
      float* ddst = Up(dst0);
      device_->CopyBlocks(rows, blocks, width, Up(src), src_layout, ddst,
                          dst_layout, accumulate);
      ExpectElementsNear(Down(ddst, dst0.size()), want,
                         "copy blocks " + std::to_string(rows) + "x" +
                             std::to_string(blocks) + "x" +
                             std::to_string(width));
    }
  }
}

TEST_P(CudaBackendTest, FmForwardAndBackward) {
  std::mt19937 rng(17);
  for (auto [batch, fields, dim] :
       {std::tuple{1, 1, 1}, {7, 3, 7}, {65, 26, 8}, {1000, 39, 4}}) {
    const BlockLayout layout{fields * (dim + 1) + 2, dim + 1};
    const auto x = RandomVector(int64_t{batch} * layout.ld, &rng);
    const auto out0 = RandomVector(batch, &rng);
    std::vector<float> want_sum(int64_t{batch} * dim), want_out = out0;
    cpu_->FmForward(batch, fields, dim, x.data(), layout, want_sum.data(),
                    want_out.data());
    // Scale of the squares: the FM value of |x| bounds the cancellation.
    std::vector<float> abs_sum(want_sum.size()), abs_out(batch, 0.0f);
    cpu_->FmForward(batch, fields, dim, Abs(x).data(), layout, abs_sum.data(),
                    abs_out.data());
    for (int i = 0; i < batch; ++i) abs_out[i] += std::fabs(out0[i]) + 1.0f;
    const float* dx = Up(x);
    float* dsum = Up(std::vector<float>(want_sum.size()));
    float* dout = Up(out0);
    device_->FmForward(batch, fields, dim, dx, layout, dsum, dout);
    const std::string what = "fm batch " + std::to_string(batch) + " fields " +
                             std::to_string(fields);
    ExpectSumsNear(Down(dsum, want_sum.size()), want_sum, abs_sum, what);
    ExpectSumsNear(Down(dout, batch), want_out, abs_out, what);

    const auto d_out = RandomVector(batch, &rng);
    const auto dx0 = RandomVector(x.size(), &rng);
    std::vector<float> want_dx = dx0;
    cpu_->FmBackward(batch, fields, dim, x.data(), layout, want_sum.data(),
                     d_out.data(), want_dx.data());
    float* ddx = Up(dx0);
    device_->FmBackward(batch, fields, dim, dx, layout, Up(want_sum), Up(d_out),
                        ddx);
    ExpectElementsNear(Down(ddx, dx0.size()), want_dx, "backward of " + what,
                       1e-5, 1e-5);
  }
}

TEST_P(CudaBackendTest, FwFmForwardAndBackward) {
  std::mt19937 rng(19);
  for (auto [batch, fields, dim] :
       {std::tuple{1, 2, 1}, {7, 3, 7}, {65, 26, 8}, {1000, 39, 8}}) {
    const int64_t pairs = int64_t{fields} * (fields - 1) / 2;
    const BlockLayout layout{fields * (dim + 1) + 2, dim + 1};
    const auto x = RandomVector(int64_t{batch} * layout.ld, &rng);
    const auto r = RandomVector(pairs, &rng);
    const auto out0 = RandomVector(batch, &rng);
    std::vector<float> want_dots(batch * pairs), want_out = out0;
    cpu_->FwFmForward(batch, fields, dim, x.data(), layout, r.data(),
                      want_dots.data(), want_out.data());
    // The same sums over |x| and |r| bound the rounding differences.
    std::vector<float> abs_dots(want_dots.size()), abs_out(batch, 0.0f);
    cpu_->FwFmForward(batch, fields, dim, Abs(x).data(), layout, Abs(r).data(),
                      abs_dots.data(), abs_out.data());
    for (int i = 0; i < batch; ++i) abs_out[i] += std::fabs(out0[i]) + 1.0f;
    const float *dx = Up(x), *dr = Up(r);
    float* ddots = Up(std::vector<float>(want_dots.size()));
    float* dout = Up(out0);
    device_->FwFmForward(batch, fields, dim, dx, layout, dr, ddots, dout);
    const std::string what = "fwfm batch " + std::to_string(batch) +
                             " fields " + std::to_string(fields);
    ExpectSumsNear(Down(ddots, want_dots.size()), want_dots, abs_dots, what);
    ExpectSumsNear(Down(dout, batch), want_out, abs_out, what);

    const auto d_out = RandomVector(batch, &rng);
    const auto dx0 = RandomVector(x.size(), &rng);
    std::vector<float> want_dx = dx0, want_dr(pairs);
    cpu_->FwFmBackward(batch, fields, dim, x.data(), layout, r.data(),
                       want_dots.data(), d_out.data(), want_dx.data(),
                       want_dr.data());
    std::vector<float> abs_dx(x.size(), 0.0f), abs_dr(pairs);
    cpu_->FwFmBackward(batch, fields, dim, Abs(x).data(), layout, Abs(r).data(),
                       abs_dots.data(), Abs(d_out).data(), abs_dx.data(),
                       abs_dr.data());
    for (size_t k = 0; k < abs_dx.size(); ++k) abs_dx[k] += std::fabs(dx0[k]);
    float* ddx = Up(dx0);
    float* ddr = Up(std::vector<float>(pairs, 5.0f));
    device_->FwFmBackward(batch, fields, dim, dx, layout, dr, Up(want_dots),
                          Up(d_out), ddx, ddr);
    ExpectSumsNear(Down(ddx, dx0.size()), want_dx, abs_dx, "dx of " + what);
    ExpectSumsNear(Down(ddr, pairs), want_dr, abs_dr, "d_r of " + what);
  }
}

TEST_P(CudaBackendTest, CrossForwardAndBackward) {
  std::mt19937 rng(18);
  for (auto [batch, width] :
       {std::pair{1, 1}, {7, 65}, {65, 7}, {1000, 221}, {3, 1000}}) {
    const int64_t size = int64_t{batch} * width;
    const auto x0 = RandomVector(size, &rng);
    const auto x = RandomVector(size, &rng);
    const auto w = RandomVector(width, &rng);
    const auto b = RandomVector(width, &rng);
    std::vector<float> want_xw(batch), want_out(size);
    cpu_->CrossForward(batch, width, x0.data(), x.data(), w.data(), b.data(),
                       want_xw.data(), want_out.data());
    const float *dx0 = Up(x0), *dx = Up(x), *dw = Up(w);
    float* dxw = Up(std::vector<float>(batch));
    float* dout = Up(std::vector<float>(size));
    device_->CrossForward(batch, width, dx0, dx, dw, Up(b), dxw, dout);
    const std::string what = "cross batch " + std::to_string(batch) +
                             " width " + std::to_string(width);
    ExpectElementsNear(Down(dxw, batch), want_xw, what, 1e-4, 1e-4);
    ExpectElementsNear(Down(dout, size), want_out, what, 1e-4, 1e-4);

    const auto d_out = RandomVector(size, &rng);
    const auto d_x0_init = RandomVector(size, &rng);
    std::vector<float> want_dx0 = d_x0_init, want_dx(size), want_dw(width),
                       want_db(width);
    cpu_->CrossBackward(batch, width, x0.data(), x.data(), w.data(),
                        want_xw.data(), d_out.data(), want_dx0.data(),
                        want_dx.data(), want_dw.data(), want_db.data());
    float* ddx0 = Up(d_x0_init);
    float* ddx = Up(std::vector<float>(size));
    float* ddw = Up(std::vector<float>(width));
    float* ddb = Up(std::vector<float>(width));
    device_->CrossBackward(batch, width, dx0, dx, dw, Up(want_xw), Up(d_out),
                           ddx0, ddx, ddw, ddb);
    // d_w sums batch products of the g's (dot products themselves).
    const double dw_tol = 1e-4 * std::sqrt(static_cast<double>(width));
    ExpectElementsNear(Down(ddx0, size), want_dx0, "d_x0 of " + what, 1e-4,
                       1e-4);
    ExpectElementsNear(Down(ddx, size), want_dx, "d_x of " + what, 1e-4, 1e-4);
    ExpectElementsNear(Down(ddw, width), want_dw, "d_w of " + what, 1e-4,
                       dw_tol * batch);
    ExpectElementsNear(Down(ddb, width), want_db, "d_b of " + what, 1e-5,
                       1e-5 * batch);
  }
}

TEST_P(CudaBackendTest, SigmoidCrossEntropy) {
  std::mt19937 rng(19);
  for (int n : {0, 1, 7, 65, 1000, 100000}) {
    const auto logits = RandomVector(n, &rng, -20, 20);
    std::vector<float> labels(n);
    for (int i = 0; i < n; ++i) labels[i] = static_cast<float>(rng() % 2);
    std::vector<float> want_p(n), want_d(n);
    double want_loss = -1;
    cpu_->SigmoidCrossEntropy(n, logits.data(), labels.data(), 0.125f,
                              want_p.data(), want_d.data(), &want_loss);
    float* dp = Up(std::vector<float>(n));
    float* dd = Up(std::vector<float>(n));
    double* dloss = Up(std::vector<double>{-1.0});
    device_->SigmoidCrossEntropy(n, Up(logits), Up(labels), 0.125f, dp, dd,
                                 dloss);
    const std::string what = "loss n " + std::to_string(n);
    ExpectElementsNear(Down(dp, n), want_p, what);
    ExpectElementsNear(Down(dd, n), want_d, what);
    EXPECT_NEAR(Down(dloss, 1)[0], want_loss, 1e-9 * want_loss + 1e-12) << what;
  }
}

TEST_P(CudaBackendTest, AccumulateMetricsMatchesAucAccumulator) {
  std::mt19937 rng(20);
  constexpr int kBuckets = AucAccumulator::kBuckets;
  std::vector<uint64_t> want_counts(2 * kBuckets, 0);
  std::vector<double> want_sums = {0.0, 0.0};
  uint64_t* dcounts = Up(want_counts);
  double* dsums = Up(want_sums);
  AucAccumulator reference;
  for (int n : {1, 7, 65, 1000, 4097}) {
    auto probs = RandomVector(n, &rng, -0.01f, 1.01f);  // clamped
    if (n == 7) probs[3] = std::nanf("");
    std::vector<float> labels(n);
    for (int i = 0; i < n; ++i) labels[i] = static_cast<float>(rng() % 2);
    cpu_->AccumulateMetrics(n, probs.data(), labels.data(), kBuckets,
                            want_counts.data(), want_sums.data());
    device_->AccumulateMetrics(n, Up(probs), Up(labels), kBuckets, dcounts,
                               dsums);
    for (int i = 0; i < n; ++i) reference.Add(probs[i], labels[i]);
  }
  const auto counts = Down(dcounts, want_counts.size());
  const auto sums = Down(dsums, 2);
  EXPECT_EQ(counts, want_counts);
  EXPECT_NEAR(sums[0], want_sums[0], 1e-9 * want_sums[0]);
  EXPECT_NEAR(sums[1], want_sums[1], 1e-9 * want_sums[1]);
  AucAccumulator merged;
  ASSERT_TRUE(merged.AddHistogram(counts, sums[0], sums[1]).ok());
  EXPECT_EQ(merged.count(), reference.count());
  EXPECT_DOUBLE_EQ(merged.Auc(), reference.Auc());
  EXPECT_NEAR(merged.LogLoss(), reference.LogLoss(), 1e-9);
  EXPECT_NEAR(merged.Calibration(), reference.Calibration(), 1e-9);
}

TEST_P(CudaBackendTest, CopiesRoundTripThroughPinnedAndPageableMemory) {
  std::mt19937 rng(21);
  const auto data = RandomVector(1000003, &rng);
  const int64_t bytes = data.size() * sizeof(float);
  auto pinned = device_->AllocateHost(bytes);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  std::memcpy(pinned->data(), data.data(), bytes);
  auto a = device_->Allocate(bytes);
  auto b = device_->Allocate(bytes);
  ASSERT_TRUE(a.ok() && b.ok());
  device_->CopyToBackend(pinned->data(), bytes, a->data());
  device_->CopyBlocks(1, 1, data.size(), a->as<float>(), {0, 0}, b->as<float>(),
                      {0, 0}, false);
  std::vector<float> back(data.size());
  device_->CopyToHost(b->data(), bytes, back.data());
  ASSERT_TRUE(device_->Synchronize().ok());
  EXPECT_EQ(back, data);
  device_->SetZero(bytes, b->data());
  device_->CopyToHost(b->data(), bytes, pinned->data());
  ASSERT_TRUE(device_->Synchronize().ok());
  EXPECT_EQ(std::vector<float>(pinned->as<float>(),
                               pinned->as<float>() + data.size()),
            std::vector<float>(data.size(), 0.0f));
  EXPECT_FALSE(device_->Allocate(-1).ok());
}

// A download queued right after an upload of the same memory, with no
// kernel between them (the two run on separate streams on a GPU), reads
// what was uploaded. 4 MB: long enough for a race to show.
TEST_P(CudaBackendTest, DownloadRightAfterAnUploadSeesIt) {
  std::mt19937 rng(22);
  const auto data = RandomVector(1 << 20, &rng);
  const int64_t bytes = data.size() * sizeof(float);
  auto up = device_->AllocateHost(bytes);
  auto down = device_->AllocateHost(bytes);
  auto buffer = device_->Allocate(bytes);
  ASSERT_TRUE(up.ok() && down.ok() && buffer.ok());
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < data.size(); ++i) {
      up->as<float>()[i] = data[i] + static_cast<float>(round);
    }
    device_->CopyToBackend(up->data(), bytes, buffer->data());
    device_->CopyToHost(buffer->data(), bytes, down->data());
    ASSERT_TRUE(device_->Synchronize().ok());
    ASSERT_EQ(0, std::memcmp(up->data(), down->data(), bytes))
        << "round " << round;
  }
}

// Four updates of vectors of awkward sizes by every rule, with weight
// decay, clipping, FTRL's l1 and a learning-rate schedule (warm-up, then
// cosine decay) on, give exactly what the servers' rule gives on the host;
// Adam's per-row state advances on the host (DenseRowState) between them.
TEST_P(CudaBackendTest, DenseOptimizerStepIsTheServersRule) {
  std::mt19937 rng(23);
  for (auto type : {OptimizerConfig::SGD, OptimizerConfig::ADAGRAD,
                    OptimizerConfig::ADAM, OptimizerConfig::FTRL}) {
    OptimizerConfig config;
    config.set_type(type);
    config.set_learning_rate(0.2f);
    config.set_weight_bound(0.9f);
    config.set_l2(0.01f);
    config.set_l1(0.05f);
    config.set_initial_accumulator(0.1f);
    config.set_warmup_steps(2);
    config.set_decay(OptimizerConfig::COSINE);
    config.set_decay_steps(2);
    config.set_min_learning_rate(0.05f);
    auto rule = OptimizerRule::Create(config);
    ASSERT_TRUE(rule.ok()) << rule.status();
    auto hyper = OptimizerHyper(config);
    ASSERT_TRUE(hyper.ok()) << hyper.status();
    for (int64_t n : {1, 7, 65, 1000, 100003}) {
      const std::string what =
          OptimizerConfig::Type_Name(type) + " n=" + std::to_string(n);
      std::vector<float> want = RandomVector(n, &rng);
      std::vector<float> state((*rule)->StateSize(static_cast<int>(n)));
      (*rule)->InitState(absl::MakeSpan(state));
      const int per_weight = optimizer_math::StatesPerWeight(hyper->kind);
      ASSERT_EQ(static_cast<int64_t>(state.size()),
                per_weight * n + optimizer_math::RowStates(hyper->kind));
      float* w = Up(want);
      float* s =
          Up(std::vector<float>(state.begin(), state.begin() + per_weight * n));
      optimizer_math::DenseRowState row(*hyper);
      for (int64_t step = 1; step <= 4; ++step) {
        const auto grad = RandomVector(n, &rng, -2.0f, 2.0f);
        (*rule)->Update(RowView{absl::MakeSpan(want), absl::MakeSpan(state)},
                        grad, UpdateContext{step, {}});
        device_->DenseOptimizerStep(row.Begin(step), n, Up(grad), w, s);
      }
      const std::vector<float> got = Down(w, n);
      ASSERT_EQ(got, want) << what;
      const std::vector<float> got_state = Down(s, per_weight * n);
      ASSERT_EQ(got_state, std::vector<float>(state.begin(),
                                              state.begin() + per_weight * n))
          << what;
    }
  }
}

// Dropout on the device draws the host's masks and scales, bit for bit,
// forward (out of place) and backward (in place), at awkward sizes.
TEST_P(CudaBackendTest, DropoutIsTheHostsBitForBit) {
  std::mt19937 rng(31);
  for (float rate : {0.0f, 0.2f, 0.75f}) {
    for (int64_t n : {1, 7, 65, 1000, 100003}) {
      const std::string what =
          "rate " + std::to_string(rate) + " n=" + std::to_string(n);
      const std::vector<float> x = RandomVector(n, &rng);
      std::vector<float> want(n);
      const uint32_t threshold = DropoutThreshold(rate);
      const float scale = DropoutScale(rate);
      for (int64_t i = 0; i < n; ++i) {
        want[i] = DropoutKeeps(77, i, threshold) ? x[i] * scale : 0.0f;
      }
      float* d_x = Up(x);
      float* d_y = Up(std::vector<float>(n, -1.0f));
      device_->Dropout(n, rate, 77, d_x, d_y);
      ASSERT_EQ(Down(d_y, n), want) << what;
      device_->Dropout(n, rate, 77, d_x, d_x);
      ASSERT_EQ(Down(d_x, n), want) << what << " in place";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, CudaBackendTest,
                         ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

TEST(CudaBackendCreateTest, ErrorsNameTheProblem) {
  auto cuda = Backend::CreateCuda(BackendOptions{});
  if (!BuiltWithCuda()) {
    ASSERT_FALSE(cuda.ok());
    EXPECT_THAT(cuda, StatusIs(absl::StatusCode::kUnavailable,
                               HasSubstr("built without CUDA")));
    return;
  }
  auto gpus = ListGpus();
  ASSERT_TRUE(gpus.ok());
  if (gpus->empty()) {
    ASSERT_FALSE(cuda.ok());
    EXPECT_THAT(cuda, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("no usable GPU")));
    return;
  }
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  EXPECT_EQ((*cuda)->Name(), "cuda");
  BackendOptions bad;
  bad.device = static_cast<int>(gpus->size());
  auto missing = Backend::CreateCuda(bad);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(SelectBackendTest, ChoosesAndExplains) {
  auto cpu = SelectBackend(BackendKind::kCpu, BackendOptions{});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ(cpu->backend->Name(), "cpu");

  auto gpus = ListGpus();
  ASSERT_TRUE(gpus.ok());
  const bool have_gpu = !gpus->empty();
  auto cuda = SelectBackend(BackendKind::kCuda, BackendOptions{});
  auto automatic = SelectBackend(BackendKind::kAuto, BackendOptions{});
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_NE(automatic->description.find("backend AUTO"), std::string::npos);
  if (have_gpu) {
    ASSERT_TRUE(cuda.ok()) << cuda.status();
    EXPECT_EQ(cuda->backend->Name(), "cuda");
    EXPECT_EQ(automatic->backend->Name(), "cuda") << automatic->description;
  } else {
    ASSERT_FALSE(cuda.ok());
    EXPECT_THAT(cuda,
                StatusIs(BuiltWithCuda() ? absl::StatusCode::kFailedPrecondition
                                         : absl::StatusCode::kUnavailable,
                         HasSubstr("training.backend is CUDA")));
    EXPECT_EQ(automatic->backend->Name(), "cpu") << automatic->description;
  }
}

}  // namespace
}  // namespace ps
