// The CpuBackend kernels of the interaction models (CopyBlocks, the FM
// second-order term, FWFM's field-weighted pairs, the DCN cross layer): checked
// against plain-loop references in double on seeded random inputs of awkward
// sizes, plus hand-computed values.
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/fwfm_pairs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/kernel_test_util.h"

namespace ps {
namespace {

TEST(CpuInteractionKernelsTest, CopyBlocksCopiesOrAddsAndKeepsOtherFloats) {
  auto backend = MakeBackend();
  std::mt19937 rng(37);
  const float kSentinel = -777.0f;
  for (int rows : {1, 7, 65}) {
    for (int blocks : {1, 3, 39}) {
      for (int width : {1, 7}) {
        // src: blocks of width + 2 floats starting at float 1 of each row
        // (skips a "linear weight"); dst: packed blocks after 3 leading
        // floats, 1 spare float per row.
        const BlockLayout src_layout{blocks * (width + 2) + 1, width + 2};
        const BlockLayout dst_layout{3 + blocks * width + 1, width};
        const std::vector<float> src =
            RandomVector(int64_t{rows} * src_layout.ld, &rng);
        std::vector<float> copied(int64_t{rows} * dst_layout.ld, kSentinel);
        backend->CopyBlocks(rows, blocks, width, src.data() + 1, src_layout,
                            copied.data() + 3, dst_layout, false);
        std::vector<float> added = copied;
        backend->CopyBlocks(rows, blocks, width, src.data() + 1, src_layout,
                            added.data() + 3, dst_layout, true);
        for (int i = 0; i < rows; ++i) {
          for (int c = 0; c < dst_layout.ld; ++c) {
            const int64_t at = int64_t{i} * dst_layout.ld + c;
            const int block = (c - 3) / width, d = (c - 3) % width;
            if (c < 3 || block >= blocks) {
              ASSERT_EQ(copied[at], kSentinel) << "row " << i << " col " << c;
              ASSERT_EQ(added[at], kSentinel) << "row " << i << " col " << c;
              continue;
            }
            const float want = src[int64_t{i} * src_layout.ld + 1 +
                                   block * src_layout.block_stride + d];
            ASSERT_EQ(copied[at], want) << "rows=" << rows << " at " << at;
            ASSERT_EQ(added[at], 2 * want) << "rows=" << rows << " at " << at;
          }
        }
      }
    }
  }
}

TEST(CpuInteractionKernelsTest, FmForwardHandValues) {
  auto backend = MakeBackend();
  // One example, three fields of dim 2, each preceded by a linear weight
  // (block stride 3): v0 = (1, 2), v1 = (3, -1), v2 = (0.5, 4).
  const std::vector<float> x = {9, 1, 2, 9, 3, -1, 9, 0.5, 4};
  std::vector<float> sum(2, -1.0f);
  std::vector<float> out = {10.0f};
  backend->FmForward(1, 3, 2, x.data() + 1, BlockLayout{9, 3}, sum.data(),
                     out.data());
  // <v0,v1> + <v0,v2> + <v1,v2> = 1 + 8.5 + (-2.5) = 7, added to 10.
  EXPECT_FLOAT_EQ(out[0], 17.0f);
  EXPECT_THAT(sum, ::testing::ElementsAre(4.5f, 5.0f));
  std::vector<float> dx(9, 0.0f);
  const float d_out[] = {2.0f};
  backend->FmBackward(1, 3, 2, x.data() + 1, BlockLayout{9, 3}, sum.data(),
                      d_out, dx.data() + 1);
  // d/dv_f = 2 * (sum - v_f); linear slots untouched.
  EXPECT_THAT(dx, ::testing::ElementsAre(0, 7, 6, 0, 3, 12, 0, 8, 2));
}

// Pairwise reference: sum over f < g of <x_f, x_g>, in double.
TEST(CpuInteractionKernelsTest, FmForwardAndBackwardMatchPairwiseReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(41);
  for (int batch : {1, 7, 65}) {
    for (int fields : {1, 2, 7, 39}) {
      for (int dim : {1, 7, 16}) {
        const BlockLayout layout{fields * (dim + 1) + 2, dim + 1};
        const std::vector<float> x =
            RandomVector(int64_t{batch} * layout.ld, &rng);
        const std::vector<float> out0 = RandomVector(batch, &rng);
        const std::vector<float> d_out = RandomVector(batch, &rng);
        std::vector<float> sum(int64_t{batch} * dim), out = out0;
        backend->FmForward(batch, fields, dim, x.data() + 1, layout, sum.data(),
                           out.data());
        std::vector<float> dx(x.size(), 0.5f);
        backend->FmBackward(batch, fields, dim, x.data() + 1, layout,
                            sum.data(), d_out.data(), dx.data() + 1);
        auto v = [&](int i, int f, int d) {
          return double{
              x[int64_t{i} * layout.ld + 1 + f * layout.block_stride + d]};
        };
        for (int i = 0; i < batch; ++i) {
          double pairs = 0;
          for (int f = 0; f < fields; ++f) {
            for (int g = f + 1; g < fields; ++g) {
              for (int d = 0; d < dim; ++d) pairs += v(i, f, d) * v(i, g, d);
            }
          }
          ASSERT_NEAR(out[i], out0[i] + pairs, 1e-4 * (1 + std::abs(pairs)))
              << "batch=" << batch << " fields=" << fields << " dim=" << dim;
          for (int f = 0; f < fields; ++f) {
            for (int d = 0; d < dim; ++d) {
              double others = 0;  // d pairs / d x(i, f, d)
              for (int g = 0; g < fields; ++g) {
                if (g != f) others += v(i, g, d);
              }
              const int64_t at =
                  int64_t{i} * layout.ld + 1 + f * layout.block_stride + d;
              ASSERT_NEAR(dx[at], 0.5 + d_out[i] * others, 1e-4)
                  << "batch=" << batch << " fields=" << fields << " dim=" << dim
                  << " example " << i << " field " << f;
            }
          }
          // The float before each block (and the row's tail) is untouched.
          for (int f = 0; f < fields; ++f) {
            ASSERT_EQ(dx[int64_t{i} * layout.ld + f * layout.block_stride],
                      0.5f);
          }
          ASSERT_EQ(dx[int64_t{i} * layout.ld + layout.ld - 1], 0.5f);
        }
      }
    }
  }
}

TEST(CpuInteractionKernelsTest, FwFmForwardAndBackwardHandValues) {
  auto backend = MakeBackend();
  // The fields of FmForwardHandValues: <v0,v1> = 1, <v0,v2> = 8.5,
  // <v1,v2> = -2.5; pair weights r = (2, 0, -1) in the order (0,1), (0,2),
  // (1,2).
  const std::vector<float> x = {9, 1, 2, 9, 3, -1, 9, 0.5, 4};
  const std::vector<float> r = {2, 0, -1};
  std::vector<float> dots(3, -1.0f);
  std::vector<float> out = {10.0f};
  backend->FwFmForward(1, 3, 2, x.data() + 1, BlockLayout{9, 3}, r.data(),
                       dots.data(), out.data());
  EXPECT_THAT(dots, ::testing::ElementsAre(1.0f, 8.5f, -2.5f));
  // 10 + 2 * 1 + 0 * 8.5 - 1 * (-2.5) = 14.5.
  EXPECT_FLOAT_EQ(out[0], 14.5f);
  std::vector<float> dx(9, 0.0f);
  std::vector<float> d_r(3, 99.0f);
  const float d_out[] = {2.0f};
  backend->FwFmBackward(1, 3, 2, x.data() + 1, BlockLayout{9, 3}, r.data(),
                        dots.data(), d_out, dx.data() + 1, d_r.data());
  // d/dv0 = 2 * (2 v1 + 0 v2) = (12, -4); d/dv1 = 2 * (2 v0 - v2) = (3, 0);
  // d/dv2 = 2 * (0 v0 - v1) = (-6, 2). d_r = 2 * dots.
  EXPECT_THAT(dx, ::testing::ElementsAre(0, 12, -4, 0, 3, 0, 0, -6, 2));
  EXPECT_THAT(d_r, ::testing::ElementsAre(2.0f, 17.0f, -5.0f));
}

// With every pair weight 1, FWFM's term is FM's.
TEST(CpuInteractionKernelsTest, FwFmWithUnitWeightsIsFm) {
  auto backend = MakeBackend();
  std::mt19937 rng(43);
  const int batch = 9, fields = 13, dim = 5;
  const BlockLayout layout{fields * (dim + 1) + 1, dim + 1};
  const std::vector<float> x = RandomVector(int64_t{batch} * layout.ld, &rng);
  const std::vector<float> d_out = RandomVector(batch, &rng);
  const std::vector<float> r(fields * (fields - 1) / 2, 1.0f);
  std::vector<float> sum(int64_t{batch} * dim), fm(batch, 0.0f);
  std::vector<float> dots(int64_t{batch} * r.size()), fwfm(batch, 0.0f);
  backend->FmForward(batch, fields, dim, x.data() + 1, layout, sum.data(),
                     fm.data());
  backend->FwFmForward(batch, fields, dim, x.data() + 1, layout, r.data(),
                       dots.data(), fwfm.data());
  std::vector<float> fm_dx(x.size(), 0.0f), fwfm_dx(x.size(), 0.0f);
  std::vector<float> d_r(r.size());
  backend->FmBackward(batch, fields, dim, x.data() + 1, layout, sum.data(),
                      d_out.data(), fm_dx.data() + 1);
  backend->FwFmBackward(batch, fields, dim, x.data() + 1, layout, r.data(),
                        dots.data(), d_out.data(), fwfm_dx.data() + 1,
                        d_r.data());
  for (int i = 0; i < batch; ++i) {
    ASSERT_NEAR(fwfm[i], fm[i], 1e-4 * (1 + std::abs(fm[i]))) << i;
  }
  for (size_t k = 0; k < x.size(); ++k) {
    ASSERT_NEAR(fwfm_dx[k], fm_dx[k], 1e-4) << k;
  }
}

// Pairwise reference in double, including the pair weights' gradient.
TEST(CpuInteractionKernelsTest, FwFmForwardAndBackwardMatchPairwiseReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(47);
  for (int batch : {1, 7, 65}) {
    for (int fields : {1, 2, 7, 39}) {
      for (int dim : {1, 7, 16}) {
        const int pairs = fields * (fields - 1) / 2;
        const BlockLayout layout{fields * (dim + 1) + 2, dim + 1};
        const std::vector<float> x =
            RandomVector(int64_t{batch} * layout.ld, &rng);
        const std::vector<float> r = RandomVector(pairs, &rng);
        const std::vector<float> out0 = RandomVector(batch, &rng);
        const std::vector<float> d_out = RandomVector(batch, &rng);
        std::vector<float> dots(int64_t{batch} * pairs), out = out0;
        backend->FwFmForward(batch, fields, dim, x.data() + 1, layout, r.data(),
                             dots.data(), out.data());
        std::vector<float> dx(x.size(), 0.5f), d_r(pairs, 7.0f);
        backend->FwFmBackward(batch, fields, dim, x.data() + 1, layout,
                              r.data(), dots.data(), d_out.data(),
                              dx.data() + 1, d_r.data());
        auto v = [&](int i, int f, int d) {
          return double{
              x[int64_t{i} * layout.ld + 1 + f * layout.block_stride + d]};
        };
        const std::string what = "batch=" + std::to_string(batch) +
                                 " fields=" + std::to_string(fields) +
                                 " dim=" + std::to_string(dim);
        std::vector<double> want_dr(pairs, 0.0);
        for (int i = 0; i < batch; ++i) {
          double total = 0;
          for (int f = 0; f < fields; ++f) {
            for (int g = f + 1; g < fields; ++g) {
              const int64_t p = FwFmPairIndex(fields, f, g);
              double dot = 0;
              for (int d = 0; d < dim; ++d) dot += v(i, f, d) * v(i, g, d);
              total += r[p] * dot;
              want_dr[p] += d_out[i] * dot;
            }
          }
          ASSERT_NEAR(out[i], out0[i] + total, 1e-4 * (1 + std::abs(total)))
              << what;
          for (int f = 0; f < fields; ++f) {
            for (int d = 0; d < dim; ++d) {
              double others = 0;
              for (int g = 0; g < fields; ++g) {
                if (g == f) continue;
                others += r[g < f ? FwFmPairIndex(fields, g, f)
                                  : FwFmPairIndex(fields, f, g)] *
                          v(i, g, d);
              }
              const int64_t at =
                  int64_t{i} * layout.ld + 1 + f * layout.block_stride + d;
              ASSERT_NEAR(dx[at], 0.5 + d_out[i] * others,
                          1e-4 * (1 + std::abs(others)))
                  << what << " example " << i << " field " << f;
            }
            ASSERT_EQ(dx[int64_t{i} * layout.ld + f * layout.block_stride],
                      0.5f);
          }
        }
        for (int p = 0; p < pairs; ++p) {
          ASSERT_NEAR(d_r[p], want_dr[p], 1e-4 * (1 + std::abs(want_dr[p])))
              << what << " pair " << p;
        }
      }
    }
  }
}

TEST(CpuInteractionKernelsTest, CrossForwardHandValues) {
  auto backend = MakeBackend();
  // x0 = (1, 2), x = (3, -1), w = (0.5, 1), b = (0.25, -0.25):
  // x.w = 0.5; out = x0 * 0.5 + b + x = (3.75, -0.25).
  const float x0[] = {1, 2}, x[] = {3, -1}, w[] = {0.5, 1}, b[] = {0.25, -0.25};
  float xw[1], out[2];
  backend->CrossForward(1, 2, x0, x, w, b, xw, out);
  EXPECT_FLOAT_EQ(xw[0], 0.5f);
  EXPECT_FLOAT_EQ(out[0], 3.75f);
  EXPECT_FLOAT_EQ(out[1], -0.25f);
}

TEST(CpuInteractionKernelsTest, CrossForwardAndBackwardMatchReference) {
  auto backend = MakeBackend();
  std::mt19937 rng(43);
  for (int batch : {1, 7, 65}) {
    for (int width : {1, 7, 65, 325}) {
      const int64_t size = int64_t{batch} * width;
      const std::vector<float> x0 = RandomVector(size, &rng);
      const std::vector<float> x = RandomVector(size, &rng);
      const std::vector<float> w = RandomVector(width, &rng);
      const std::vector<float> b = RandomVector(width, &rng);
      const std::vector<float> d_out = RandomVector(size, &rng);
      const std::vector<float> d_x0_start = RandomVector(size, &rng);
      std::vector<float> xw(batch), out(size);
      backend->CrossForward(batch, width, x0.data(), x.data(), w.data(),
                            b.data(), xw.data(), out.data());
      std::vector<float> d_x0 = d_x0_start, d_x(size, 9.0f), d_w(width, 9.0f),
                         d_b(width, 9.0f);
      backend->CrossBackward(batch, width, x0.data(), x.data(), w.data(),
                             xw.data(), d_out.data(), d_x0.data(), d_x.data(),
                             d_w.data(), d_b.data());
      const double tol = 1e-5 * width;
      std::vector<double> want_dw(width, 0.0), want_db(width, 0.0);
      for (int i = 0; i < batch; ++i) {
        double dot = 0, g = 0;
        for (int j = 0; j < width; ++j) {
          const int64_t at = int64_t{i} * width + j;
          dot += double{x[at]} * w[j];
          g += double{d_out[at]} * x0[at];
        }
        ASSERT_NEAR(xw[i], dot, tol) << "batch=" << batch << " width=" << width;
        for (int j = 0; j < width; ++j) {
          const int64_t at = int64_t{i} * width + j;
          ASSERT_NEAR(out[at], x0[at] * dot + b[j] + x[at], tol)
              << "batch=" << batch << " width=" << width << " at " << at;
          ASSERT_NEAR(d_x[at], d_out[at] + g * w[j], tol) << "at " << at;
          ASSERT_NEAR(d_x0[at], d_x0_start[at] + d_out[at] * dot, tol)
              << "at " << at;
          want_dw[j] += g * x[at];
          want_db[j] += d_out[at];
        }
      }
      for (int j = 0; j < width; ++j) {
        ASSERT_NEAR(d_w[j], want_dw[j], tol * batch) << "width=" << width;
        ASSERT_NEAR(d_b[j], want_db[j], tol * batch) << "width=" << width;
      }
    }
  }
}

}  // namespace
}  // namespace ps
