// The optimized CPU kernels against the straightforward definitions, on random shapes chosen to
// hit every path: row-blocked im2col (a single image split into several blocks), the two-phase
// backward-data scatter, per-slot filter-gradient reduction, the 1x1 direct path, odd sizes,
// stride 2, padding 0, dilation, groups; thread counts 1, 2 and 3; each case three times: by the
// default paths (Winograd F(2x2, 3x3) where it applies), with Winograd off (the direct register-tiled,
// stride-1-along-the-width convolution), and with both off (im2col + GEMM), so every path is checked
// on the same shapes. Also parallel_for itself and the panel-split GEMM.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/ops/conv2d.h"
#include "core/ops/gemm.h"
#include "core/ops/pool2d.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "tests/support.h"

namespace glimpse {
namespace {

struct Case {
  int64_t N, C, H, W, K, R, S;
  Conv2dOptions opt;
};

std::string name(const Case& c) {
  // A stream, not operator+ chains: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
  std::ostringstream os;
  os << "N" << c.N << " C" << c.C << " " << c.H << "x" << c.W << " K" << c.K << " " << c.R << "x" << c.S << " stride "
     << c.opt.stride_h << "," << c.opt.stride_w << " pad " << c.opt.pad_h << "," << c.opt.pad_w << " dil "
     << c.opt.dilation_h << " groups " << c.opt.groups;
  return os.str();
}

// The definitions, by direct loops in double: forward, and the two gradients of
// L = sum(out * g):  gx = dL/dx,  gw = dL/dw.
struct Reference {
  std::vector<double> out, gx, gw;
};
Reference reference(const Case& c, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& g, int64_t P,
                    int64_t Q) {
  const auto& o = c.opt;
  const int64_t G = o.groups, Cg = c.C / G, Kg = c.K / G;
  Reference r;
  r.out.assign(c.N * c.K * P * Q, 0.0);
  r.gx.assign(x.numel(), 0.0);
  r.gw.assign(w.numel(), 0.0);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          const int64_t oi = ((n * c.K + k) * P + p) * Q + q;
          double s = b.defined() ? b.data()[k] : 0.0;
          const double gv = g.data()[oi];
          for (int64_t cc = 0; cc < Cg; ++cc)
            for (int64_t rr = 0; rr < c.R; ++rr)
              for (int64_t ss = 0; ss < c.S; ++ss) {
                const int64_t ih = p * o.stride_h - o.pad_h + rr * o.dilation_h;
                const int64_t iw = q * o.stride_w - o.pad_w + ss * o.dilation_w;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                const int64_t xi = ((n * c.C + (k / Kg) * Cg + cc) * c.H + ih) * c.W + iw;
                const int64_t wi = ((k * Cg + cc) * c.R + rr) * c.S + ss;
                s += double(w.data()[wi]) * x.data()[xi];
                r.gx[xi] += gv * w.data()[wi];
                r.gw[wi] += gv * x.data()[xi];
              }
          r.out[oi] = s;
        }
  return r;
}

void expect_near_all(const float* got, const std::vector<double>& want, const std::string& what) {
  double worst = 0, scale = 1;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = glimpse::testing::value_error(got[i], want[i]);  // a NaN is an infinite error
    if (e > worst) worst = e, at = i;
  }
  EXPECT_LE(worst, 1e-5 * scale * 8) << what << ": worst difference at " << at << " (got " << got[at] << ", want "
                                     << want[at] << ")";
}

enum class Path { Default, Direct, Im2col };

// One case's random data and its reference values, made once and checked on every path and thread count.
struct Problem {
  Tensor x, w, b, g;
  int64_t P, Q;
  Reference ref;
};

Problem make_problem(const Case& c) {
  Problem p;
  Rng rng(c.N * 1000 + c.C * 100 + c.H);
  p.P = window_out_size(c.H, c.R, c.opt.stride_h, c.opt.pad_h, c.opt.dilation_h);
  p.Q = window_out_size(c.W, c.S, c.opt.stride_w, c.opt.pad_w, c.opt.dilation_w);
  p.x = Tensor::uniform({c.N, c.C, c.H, c.W}, rng, -1, 1);
  p.w = Tensor::uniform({c.K, c.C / c.opt.groups, c.R, c.S}, rng, -1, 1);
  p.b = Tensor::uniform({c.K}, rng, -1, 1);
  if (p.P > 0 && p.Q > 0) {
    p.g = Tensor::uniform({c.N, c.K, p.P, p.Q}, rng, -1, 1);
    p.ref = reference(c, p.x, p.w, p.b, p.g, p.P, p.Q);
  }
  return p;
}

void check_case(const Case& c, const Problem& pr, int threads, Path path) {
  set_num_threads(threads);
  cpu::set_conv2d_winograd(path == Path::Default);
  cpu::set_conv2d_direct(path != Path::Im2col);
  const int64_t P = pr.P, Q = pr.Q;
  ASSERT_GT(P, 0);
  ASSERT_GT(Q, 0);
  const Tensor &x = pr.x, &w = pr.w, &b = pr.b, &g = pr.g;
  const Reference& ref = pr.ref;
  const std::string what = name(c) + ", " + std::to_string(threads) + " threads" +
                           (path == Path::Default  ? ""
                            : path == Path::Direct ? ", no Winograd"
                                                   : ", im2col only");
  Tensor out = Tensor::full({c.N, c.K, P, Q}, 123.f);  // forward overwrites
  cpu::conv2d_forward(out, x, w, b, c.opt);
  expect_near_all(out.data(), ref.out, "forward " + what);

  // The backward kernels overwrite (core/dispatch.h): buffers full of garbage come back exact.
  Tensor gx = Tensor::full(x.shape(), 7.f), gw = Tensor::full(w.shape(), 7.f), gb = Tensor::full({c.K}, 7.f);
  cpu::conv2d_backward_data(gx, g, w, c.opt);
  cpu::conv2d_backward_filter(gw, gb, g, x, c.opt);
  expect_near_all(gx.data(), ref.gx, "backward_data " + what);
  expect_near_all(gw.data(), ref.gw, "backward_filter " + what);

  // The filter gradient is deterministic: the same bits on a second run.
  Tensor gw2 = Tensor::full(w.shape(), -3.f), gb2 = Tensor();
  cpu::conv2d_backward_filter(gw2, gb2, g, x, c.opt);
  EXPECT_EQ(gw.to_vector(), gw2.to_vector()) << "backward_filter not deterministic: " << what;
}

const Case kCases[] = {
    {32, 3, 16, 16, 8, 3, 3, Conv2dOptions().padding(1)},             // a W1-like batch
    {1, 16, 67, 61, 12, 3, 3, Conv2dOptions().padding(1)},            // one image, many row blocks
    {1, 16, 67, 61, 12, 3, 3, Conv2dOptions().stride(2)},             // stride 2, pad 0, odd
    {2, 5, 45, 37, 7, 5, 3, Conv2dOptions().padding(2).stride(2)},    // 5x3 filter, odd everything
    {1, 9, 53, 41, 6, 3, 3, Conv2dOptions().dilation(2).padding(2)},  // dilation: wider overlap
    {1, 8, 31, 29, 8, 3, 3, Conv2dOptions().group(4).padding(1)},     // groups
    {3, 6, 25, 23, 10, 1, 1, Conv2dOptions()},                        // 1x1 direct path
    {1, 64, 40, 40, 32, 1, 1, Conv2dOptions()},                       // 1x1 direct, split in rows
    {1, 4, 7, 5, 3, 3, 3, Conv2dOptions()},                           // tiny, pad 0
    {1, 96, 20, 19, 16, 3, 3, Conv2dOptions().padding(1)},            // deep im2col, few rows per block
    // The direct kernel's edges: 3 filters (a partial register panel), widths that are not a multiple
    // of the vector (8 or 16 floats) nor of a 3-vector tile, rows shorter than a vector, partial
    // panels in backward-data (19 channels), dilation with unequal padding, stride 2
    // along the height only, padding larger than the filter reach on one side, W2-like depth.
    {2, 3, 23, 37, 3, 3, 3, Conv2dOptions().padding(1)},
    {1, 19, 9, 5, 20, 3, 3, Conv2dOptions().padding(1)},
    {1, 5, 30, 33, 9, 3, 3, Conv2dOptions{2, 1, 1, 1, 1, 1, 1}},
    {1, 4, 12, 14, 6, 3, 3, Conv2dOptions{1, 1, 3, 2, 1, 1, 1}},
    {1, 17, 19, 21, 11, 3, 5, Conv2dOptions{1, 1, 0, 2, 1, 2, 1}},
    {1, 130, 14, 14, 17, 3, 3, Conv2dOptions().padding(1)},
    // Winograd F(2x2, 3x3) (3x3, stride 1, >= 64 channels each way, >= 128 output tiles): odd output
    // sides (a last tile cut in half), padding 0 and 2 (backward-data then pads 2 and 0), unequal
    // padding, partial filter panels (66, 67, 72 filters), one image cut into many chunks, a batch
    // whose chunks span images, planes of 1x1 and 2x2 outputs.
    {3, 64, 16, 17, 72, 3, 3, Conv2dOptions()},
    {1, 72, 21, 23, 64, 3, 3, Conv2dOptions().padding(2)},
    {2, 65, 17, 19, 67, 3, 3, Conv2dOptions{1, 1, 1, 0, 1, 1, 1}},
    {1, 64, 29, 33, 66, 3, 3, Conv2dOptions().padding(1)},
    {15, 64, 6, 5, 64, 3, 3, Conv2dOptions().padding(1)},
    {130, 64, 1, 1, 64, 3, 3, Conv2dOptions().padding(1)},
    {128, 65, 2, 2, 64, 3, 3, Conv2dOptions().padding(1)},
};

TEST(FastKernels, ConvMatchesDefinitionOnRandomShapes) {
  for (const Case& c : kCases) {
    const Problem pr = make_problem(c);
    for (Path path : {Path::Default, Path::Direct, Path::Im2col})
      for (int threads : {1, 2, 3}) check_case(c, pr, threads, path);
  }
  cpu::set_conv2d_winograd(true);
  cpu::set_conv2d_direct(true);
  set_num_threads(2);
}

// The Winograd cases above test something only if Winograd runs: its rounding differs from the
// direct sum's, so on a qualifying convolution the default path and the Winograd-off path must
// differ in some bit (in a build without the SIMD tile both are the direct path: skipped). Also:
// its result does not depend on the batch it is computed in (each image alone gives the same bits).
TEST(FastKernels, WinogradRunsAndIsBatchInvariant) {
  set_num_threads(2);
  Rng rng(11);
  const Conv2dOptions opt = Conv2dOptions().padding(1);
  Tensor x = Tensor::uniform({3, 64, 24, 23}, rng, -1, 1);  // 12 x 12 tiles: each image alone qualifies
  Tensor w = Tensor::uniform({72, 64, 3, 3}, rng, -1, 1);
  Tensor b = Tensor::uniform({72}, rng, -1, 1);
  Tensor out = Tensor::empty({3, 72, 24, 23}), out_direct = Tensor::empty({3, 72, 24, 23});
  cpu::conv2d_forward(out, x, w, b, opt);
  cpu::set_conv2d_winograd(false);
  cpu::conv2d_forward(out_direct, x, w, b, opt);
  cpu::set_conv2d_winograd(true);
#if defined(__AVX2__) && defined(__FMA__)
  EXPECT_NE(out.to_vector(), out_direct.to_vector()) << "the Winograd path did not run";
#else
  GTEST_SKIP() << "no AVX2+FMA in this build: no Winograd path";
#endif
  const int64_t plane = 72 * 24 * 23;
  for (int64_t n = 0; n < 3; ++n) {
    Tensor one = Tensor::empty({1, 72, 24, 23});
    cpu::conv2d_forward(one, x.slice(n, n + 1).contiguous(), w, b, opt);
    const std::vector<float> all = out.to_vector();
    EXPECT_EQ(one.to_vector(), std::vector<float>(all.begin() + n * plane, all.begin() + (n + 1) * plane))
        << "image " << n << " alone differs from its batch";
  }
}

// The 2x2 / stride 2 max-pool path against the rule written out: the value is the window's max
// (NaN if any cell is NaN), the gradient goes to the first maximal cell in row-major order (the
// first NaN when there is one). Odd sizes drop the last row / column; ties and NaNs are planted.
TEST(FastKernels, MaxPool2x2MatchesDefinition) {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (auto [N, C, H, W] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{2, 3, 9, 7}, {4, 16, 32, 33}}) {
      Rng rng(H * W);
      Tensor x = Tensor::uniform({N, C, H, W}, rng, -1, 1);
      float* px = x.data();
      for (int64_t i = 0; i < x.numel(); i += 5) px[i] = std::round(px[i]);  // ties (-1, 0, 1)
      px[3] = std::nanf("");
      px[x.numel() / 2] = std::nanf("");
      const int64_t P = H / 2, Q = W / 2;
      Tensor out = Tensor::empty({N, C, P, Q}), g = Tensor::uniform({N, C, P, Q}, rng, -1, 1);
      Tensor gx = Tensor::zeros(x.shape());
      const Pool2dOptions opt = Pool2dOptions::square(2, 2);
      cpu::max_pool2d_forward(out, x, opt);
      cpu::max_pool2d_backward(gx, g, x, opt);
      std::vector<double> want_gx(x.numel(), 0.0);
      for (int64_t pl = 0; pl < N * C; ++pl)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t q = 0; q < Q; ++q) {
            int64_t best = -1;
            for (int64_t r = 0; r < 2 && !(best >= 0 && std::isnan(px[best])); ++r)
              for (int64_t t = 0; t < 2; ++t) {
                const int64_t i = (pl * H + 2 * p + r) * W + 2 * q + t;
                if (best < 0 || px[i] > px[best] || std::isnan(px[i])) {
                  best = i;
                  if (std::isnan(px[i])) break;
                }
              }
            const float got = out.data()[(pl * P + p) * Q + q];
            if (std::isnan(px[best]))
              EXPECT_TRUE(std::isnan(got));
            else
              EXPECT_EQ(got, px[best]) << "plane " << pl << " window " << p << "," << q;
            want_gx[best] += g.data()[(pl * P + p) * Q + q];
          }
      for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(gx.data()[i], float(want_gx[i])) << "gx entry " << i;
      // Backward overwrites (the kernel contract): the same into a buffer full of garbage, zeros
      // included in the odd last row/column no window covers; so does the general path (3x3
      // windows, stride 2).
      Tensor junk = Tensor::full(x.shape(), 7.f);
      cpu::max_pool2d_backward(junk, g, x, opt);
      EXPECT_EQ(junk.to_vector(), gx.to_vector());
      const Pool2dOptions o3 = Pool2dOptions::square(3, 2);
      const Shape s3{N, C, window_out_size(H, 3, 2, 0), window_out_size(W, 3, 2, 0)};
      Tensor g3 = Tensor::uniform(s3, rng, -1, 1), zero = Tensor::zeros(x.shape()),
             over = Tensor::full(x.shape(), -3.f);
      cpu::max_pool2d_backward(zero, g3, x, o3);
      cpu::max_pool2d_backward(over, g3, x, o3);
      EXPECT_EQ(over.to_vector(), zero.to_vector());
    }
  }
  set_num_threads(2);
}

TEST(FastKernels, ParallelForRunsEveryItemOnce) {
  set_num_threads(3);
  for (int64_t count : {0, 1, 2, 5, 1000}) {
    std::vector<std::atomic<int>> hits(count);
    parallel_for(count, [&](int64_t i) {
      hits[i]++;
      // Nested: runs serially inside, still once each.
      std::atomic<int> inner{0};
      parallel_for(4, [&](int64_t) { inner++; });
      EXPECT_EQ(inner.load(), 4);
    });
    for (int64_t i = 0; i < count; ++i) EXPECT_EQ(hits[i].load(), 1) << "item " << i << " of " << count;
  }
  std::vector<int> cover(10007, 0);
  parallel_for_range(10007, 100, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) cover[i]++;
  });
  for (int v : cover) ASSERT_EQ(v, 1);
  set_num_threads(2);
}

TEST(FastKernels, GemmPanelsMatchNaiveProduct) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{97, 131, 61}, {301, 17, 203}, {5, 7, 3}}) {
          Rng rng(M + N + K);
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
          Tensor A = Tensor::uniform({(ta ? K : M) * lda}, rng, -1, 1);
          Tensor B = Tensor::uniform({(tb ? N : K) * ldb}, rng, -1, 1);
          Tensor C = Tensor::uniform({M * ldc}, rng, -1, 1);
          std::vector<float> C0 = C.to_vector();
          cpu::gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.f, C.data(), ldc);
          double worst = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double s = 0;
              for (int64_t k = 0; k < K; ++k)
                s += double(ta ? A.data()[k * lda + i] : A.data()[i * lda + k]) *
                     (tb ? B.data()[j * ldb + k] : B.data()[k * ldb + j]);
              worst = std::max(worst,
                               glimpse::testing::value_error(C.data()[i * ldc + j], 0.5 * s + 2.0 * C0[i * ldc + j]));
            }
          EXPECT_LE(worst, 1e-4) << "gemm " << M << "x" << N << "x" << K << " trans " << ta << tb << ", " << threads
                                 << " threads";
          // The padding columns of C stay untouched.
          for (int64_t i = 0; i < M; ++i) EXPECT_EQ(C.data()[i * ldc + N], C0[i * ldc + N]);
        }
  }
  set_num_threads(2);
}

}  // namespace
}  // namespace glimpse
