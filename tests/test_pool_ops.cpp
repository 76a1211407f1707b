// max_pool2d, avg_pool2d, global_avg_pool, upsample_bilinear: forward against direct loops (and
// hand-computed values for the resize), gradients by gradcheck, shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/pool2d.h"
#include "core/rng.h"
#include "tests/support.h"

namespace glimpse {
using glimpse::testing::error_of;
using glimpse::testing::expect_abs_close;

namespace {

void expect_values(const Tensor& t, const std::vector<float>& want, float tol = 1e-5f) {
  auto v = t.to_vector();
  ASSERT_EQ(v.size(), want.size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], want[i], tol) << "element " << i;
}

// Distinct values 0.05 apart in random order: no ties, and a gradcheck step of 0.01 never moves
// the max of a window to another cell.
Tensor distinct_values(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  std::vector<float> v(t.numel());
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.05f * static_cast<float>(i) - 0.025f * static_cast<float>(v.size());
  std::shuffle(v.begin(), v.end(), rng.engine());
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

// max (is_max) or count_include_pad average over each window, padding as -inf / 0.
Tensor pool_reference(const Tensor& x, const Pool2dOptions& o, bool is_max) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t P = (H + 2 * o.pad_h - o.kernel_h) / o.stride_h + 1;
  const int64_t Q = (W + 2 * o.pad_w - o.kernel_w) / o.stride_w + 1;
  Tensor out = Tensor::zeros({N, C, P, Q});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
          for (int64_t i = 0; i < o.kernel_h; ++i)
            for (int64_t j = 0; j < o.kernel_w; ++j) {
              const int64_t h = p * o.stride_h - o.pad_h + i, w = q * o.stride_w - o.pad_w + j;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              const double v = x.at({n, c, h, w});
              acc = is_max ? std::max(acc, v) : acc + v;
            }
          out.at({n, c, p, q}) = static_cast<float>(is_max ? acc : acc / (o.kernel_h * o.kernel_w));
        }
  return out;
}

struct PoolCase {
  const char* name;
  Shape x;
  Pool2dOptions opt;
};

Pool2dOptions make(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  return {kh, kw, sh, sw, ph, pw};
}

const PoolCase kPoolCases[] = {
    {"k2s2", {2, 3, 6, 8}, Pool2dOptions::square(2, 2)},
    {"k2s2_odd", {2, 2, 7, 5}, Pool2dOptions::square(2, 2)},
    {"k3s2_pad1", {2, 2, 7, 6}, Pool2dOptions::square(3, 2, 1)},
    {"k3s1_pad1_overlap", {1, 3, 5, 5}, Pool2dOptions::square(3, 1, 1)},
    {"k3s2_pad0_odd", {2, 2, 9, 7}, Pool2dOptions::square(3, 2)},
    {"rect", {1, 2, 7, 9}, make(2, 3, 1, 2, 1, 1)},
    {"whole", {2, 2, 4, 4}, Pool2dOptions::square(4, 4)},
};

class PoolCases : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolCases, MaxForwardMatchesDirectLoops) {
  Rng rng(1);
  Tensor x = Tensor::randn(GetParam().x, rng);
  expect_abs_close(max_pool2d(x, GetParam().opt), pool_reference(x, GetParam().opt, true), 0.f);
}

TEST_P(PoolCases, AvgForwardMatchesDirectLoops) {
  Rng rng(2);
  Tensor x = Tensor::randn(GetParam().x, rng);
  expect_abs_close(avg_pool2d(x, GetParam().opt), pool_reference(x, GetParam().opt, false), 1e-5f);
}

TEST_P(PoolCases, MaxGradcheck) {
  Rng rng(3);
  Tensor x = distinct_values(GetParam().x, rng).set_requires_grad();
  const Pool2dOptions opt = GetParam().opt;
  GradcheckResult r = gradcheck([opt](const std::vector<Tensor>& in) { return max_pool2d(in[0], opt); }, {x});
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(r.skipped_kinks, 0);
}

TEST_P(PoolCases, AvgGradcheck) {
  Rng rng(4);
  Tensor x = Tensor::randn(GetParam().x, rng).set_requires_grad();
  const Pool2dOptions opt = GetParam().opt;
  GradcheckResult r = gradcheck([opt](const std::vector<Tensor>& in) { return avg_pool2d(in[0], opt); }, {x});
  EXPECT_TRUE(r.ok) << r.report;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolCases, ::testing::ValuesIn(kPoolCases),
                         [](const ::testing::TestParamInfo<PoolCase>& i) { return std::string(i.param.name); });

TEST(MaxPool2d, TiesSendTheGradientToTheFirstMaximum) {
  Tensor x = Tensor::from_vector({1, 1, 2, 2}, {5, 5, 5, 5}).set_requires_grad();
  Tensor g = grad({max_pool2d(x, Pool2dOptions::square(2, 2))}, {Tensor::ones({1, 1, 1, 1})}, {x})[0];
  expect_values(g, {1, 0, 0, 0});
}

TEST(MaxPool2d, OverlappingWindowsAccumulate) {
  // 1x3 row, kernel 1x2 stride 1: both windows pick the middle cell.
  Tensor x = Tensor::from_vector({1, 1, 1, 3}, {0, 9, 1}).set_requires_grad();
  Tensor y = max_pool2d(x, make(1, 2, 1, 1, 0, 0));
  expect_values(y, {9, 9});
  Tensor g = grad({y}, {Tensor::from_vector({1, 1, 1, 2}, {2, 3})}, {x})[0];
  expect_values(g, {0, 5, 0});
}

// The fused ReLU + 2x2 max pool against the two ops it replaces: the same bits forward and
// backward under each ReLU rule, on odd sizes, with ties, zeros, negatives-only windows, NaN and
// gradients of both signs. And its own gradient check.
TEST(ReluMaxPool2x2, SameBitsAsReluThenMaxPool) {
  const Pool2dOptions two = Pool2dOptions::square(2, 2);
  for (auto [H, W] : {std::pair<int64_t, int64_t>{6, 8}, {7, 5}, {9, 9}}) {
    Rng rng(static_cast<uint64_t>(H * 10 + W));
    Tensor x = Tensor::uniform({2, 3, H, W}, rng, -1.f, 1.f);
    float* px = x.data();
    for (int64_t i = 0; i < x.numel(); i += 3) px[i] = std::round(px[i]);   // ties and zeros
    for (int64_t i = 0; i < 8; ++i) px[i] = -0.5f - static_cast<float>(i);  // all-negative windows
    px[x.numel() / 2] = std::nanf("");
    px[x.numel() / 3] = -0.f;
    const Shape os{2, 3, H / 2, W / 2};
    Tensor g = Tensor::uniform(os, rng, -1.f, 1.f);
    for (ReluRule rule : {ReluRule::Standard, ReluRule::Deconvnet, ReluRule::Guided}) {
      ReluRuleGuard guard(rule);
      Tensor a = x.clone().set_requires_grad(), b = x.clone().set_requires_grad();
      Tensor ya = relu_max_pool2x2(a), yb = max_pool2d(relu(b), two);
      EXPECT_EQ(ya.to_vector(), yb.to_vector());
      const Tensor ga = grad({ya}, {g}, {a})[0], gb = grad({yb}, {g}, {b})[0];
      const auto va = ga.to_vector(), vb = gb.to_vector();
      ASSERT_EQ(va.size(), vb.size());
      for (size_t i = 0; i < va.size(); ++i)
        ASSERT_TRUE(va[i] == vb[i] || (std::isnan(va[i]) && std::isnan(vb[i])))
            << "rule " << static_cast<int>(rule) << " " << H << "x" << W << " entry " << i << ": " << va[i] << " vs "
            << vb[i];
    }
  }
  Rng rng(5);
  Tensor x = Tensor::uniform({1, 2, 5, 6}, rng, -1.f, 1.f).set_requires_grad();
  GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return relu_max_pool2x2(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.report;
}

// The window rule the CUDA kernels run (core/ops/pool2d.h) against the CPU kernels,
// window for window: values drawn from {NaN, -1, 0, 0.5, 2} so that NaN cells, ties, all-negative
// and all-zero windows all occur. A GPU-less machine thus checks the device's window logic.
TEST(ReluMaxPool2x2, SharedWindowRuleEqualsTheCpuKernels) {
  const float pool[] = {std::numeric_limits<float>::quiet_NaN(), -1.f, 0.f, 0.5f, 0.5f, 2.f};
  const int64_t windows = 2000;
  Rng rng(41);
  // x [1, 1, 2, 2 * windows]: window k holds a b (row 0) and c e (row 1) at columns 2k, 2k + 1.
  Tensor x = Tensor::empty({1, 1, 2, 2 * windows});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = pool[static_cast<int>(rng.uniform(0.f, 6.f)) % 6];
  Tensor g = Tensor::uniform({1, 1, 1, windows}, rng, -1.f, 1.f);
  Tensor y = Tensor::empty({1, 1, 1, windows});
  cpu::relu_max_pool2x2_forward(y, x);
  const float* r0 = x.data();
  const float* r1 = x.data() + 2 * windows;
  for (ReluRule rule : {ReluRule::Standard, ReluRule::Deconvnet, ReluRule::Guided}) {
    Tensor gx = Tensor::full(x.shape(), 7.f);  // the CPU backward overwrites every cell
    cpu::relu_max_pool2x2_backward(gx, g, x, rule);
    for (int64_t k = 0; k < windows; ++k) {
      const float a = r0[2 * k], b = r0[2 * k + 1], c = r1[2 * k], e = r1[2 * k + 1];
      const float m = relu_pool::max4(a, b, c, e);
      ASSERT_EQ(m, y.data()[k]) << "window " << k << ": " << a << " " << b << " / " << c << " " << e;
      const int pick = relu_pool::first_argmax4(a, b, c, e);
      const float want = relu_pool::passed(m, g.data()[k], rule);
      const float got[4] = {gx.data()[2 * k], gx.data()[2 * k + 1], gx.data()[2 * windows + 2 * k],
                            gx.data()[2 * windows + 2 * k + 1]};
      for (int cell = 0; cell < 4; ++cell)
        ASSERT_EQ(got[cell], cell == pick ? want : 0.f)
            << "rule " << static_cast<int>(rule) << ", window " << k << " (" << a << " " << b << " / " << c << " " << e
            << "), cell " << cell;
    }
  }
}

TEST(AvgPool2d, PaddingCountsInTheDivisor) {
  // 2x2 of ones, kernel 3 stride 1 pad 1: every window holds 4 real cells of 9 -> 4/9.
  Tensor x = Tensor::ones({1, 1, 2, 2});
  expect_values(avg_pool2d(x, Pool2dOptions::square(3, 1, 1)), {4.f / 9, 4.f / 9, 4.f / 9, 4.f / 9});
}

TEST(GlobalAvgPool, ForwardAndGradient) {
  Rng rng(5);
  Tensor x = Tensor::randn({2, 3, 5, 3}, rng).set_requires_grad();
  Tensor y = global_avg_pool(x);
  ASSERT_EQ(shape_str(y.shape()), "[2, 3]");
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c) {
      double s = 0;
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 3; ++w) s += x.at({n, c, h, w});
      EXPECT_NEAR(y.at({n, c}), s / 15, 1e-6);
    }
  GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.report;
}

// ---- upsample_bilinear ----

// PyTorch's F.interpolate(x, size=(4, 4), mode='bilinear') of [[1, 2], [3, 4]].
TEST(UpsampleBilinear, HandValuesAlignCornersFalse) {
  Tensor x = Tensor::from_vector({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_values(upsample_bilinear(x, 4, 4, false), {1.00f, 1.25f, 1.75f, 2.00f, 1.50f, 1.75f, 2.25f, 2.50f, 2.50f,
                                                    2.75f, 3.25f, 3.50f, 3.00f, 3.25f, 3.75f, 4.00f});
  // 3 -> 5 columns: source x = max(0, (o + 0.5) * 0.6 - 0.5) = 0, 0.4, 1.0, 1.6, 2.2 (clamped to 2).
  expect_values(upsample_bilinear(Tensor::from_vector({1, 1, 1, 3}, {0, 10, 20}), 1, 5, false), {0, 4, 10, 16, 20});
  // Downsampling 2x4 -> 1x2: sources (0.5, 0.5) and (0.5, 2.5).
  Tensor d = Tensor::from_vector({1, 1, 2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  expect_values(upsample_bilinear(d, 1, 2, false), {2.5f, 4.5f});
}

TEST(UpsampleBilinear, HandValuesAlignCornersTrue) {
  Tensor x = Tensor::from_vector({1, 1, 2, 2}, {1, 2, 3, 4});
  const float t = 1.f / 3;
  expect_values(upsample_bilinear(x, 4, 4, true), {1, 1 + t, 1 + 2 * t, 2, 1 + 2 * t, 2, 2 + t, 2 + 2 * t, 2 + t,
                                                   2 + 2 * t, 3, 3 + t, 3, 3 + t, 3 + 2 * t, 4});
  // One output row reads source row 0; columns 0 and 3.
  Tensor d = Tensor::from_vector({1, 1, 2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  expect_values(upsample_bilinear(d, 1, 2, true), {0, 3});
}

TEST(UpsampleBilinear, SameSizeIsIdentity) {
  Rng rng(6);
  Tensor x = Tensor::randn({2, 3, 5, 4}, rng);
  expect_abs_close(upsample_bilinear(x, 5, 4, false), x, 0.f);
  expect_abs_close(upsample_bilinear(x, 5, 4, true), x, 1e-6f);
}

TEST(UpsampleBilinear, GradcheckBothModes) {
  Rng rng(7);
  for (bool ac : {false, true})
    for (auto [oh, ow] : {std::pair<int64_t, int64_t>{7, 9}, {2, 3}, {1, 1}, {5, 2}}) {
      Tensor x = Tensor::randn({2, 2, 3, 4}, rng).set_requires_grad();
      GradcheckResult r =
          gradcheck([=](const std::vector<Tensor>& in) { return upsample_bilinear(in[0], oh, ow, ac); }, {x});
      EXPECT_TRUE(r.ok) << "align_corners=" << ac << " out " << oh << "x" << ow << "\n" << r.report;
    }
}

// The adjoint identity <up(x), g> == <x, up^T(g)> on a CAM-sized upsampling (7x7 -> 224x224 style).
TEST(UpsampleBilinear, BackwardIsTheAdjoint) {
  Rng rng(8);
  for (bool ac : {false, true}) {
    Tensor x = Tensor::randn({1, 2, 7, 7}, rng).set_requires_grad();
    Tensor g = Tensor::randn({1, 2, 60, 45}, rng);
    Tensor y = upsample_bilinear(x, 60, 45, ac);
    Tensor gx = grad({y}, {g}, {x})[0];
    double lhs = 0, rhs = 0;
    auto vy = y.to_vector(), vg = g.to_vector(), vx = x.to_vector(), vgx = gx.to_vector();
    for (size_t i = 0; i < vy.size(); ++i) lhs += static_cast<double>(vy[i]) * vg[i];
    for (size_t i = 0; i < vx.size(); ++i) rhs += static_cast<double>(vx[i]) * vgx[i];
    EXPECT_NEAR(lhs, rhs, 1e-3 * std::max(1.0, std::abs(lhs)));
  }
}

// ---- errors ----

TEST(PoolErrors, MessagesNameTheOpAndShapes) {
  std::string m = error_of([] { max_pool2d(Tensor::zeros({3, 8, 8}), Pool2dOptions::square(2, 2)); });
  EXPECT_NE(m.find("max_pool2d: input must be [N, C, H, W], got shape [3, 8, 8]"), std::string::npos) << m;

  m = error_of([] { avg_pool2d(Tensor::zeros({1, 1, 8, 8}), Pool2dOptions::square(2, 2, 2)); });
  EXPECT_NE(m.find("avg_pool2d: padding (2, 2)"), std::string::npos) << m;
  EXPECT_NE(m.find("half the kernel 2x2"), std::string::npos) << m;

  m = error_of([] { max_pool2d(Tensor::zeros({1, 1, 2, 2}), Pool2dOptions::square(3, 1)); });
  EXPECT_NE(m.find("max_pool2d: input [1, 1, 2, 2]"), std::string::npos) << m;
  EXPECT_NE(m.find("smaller than the kernel 3x3"), std::string::npos) << m;

  m = error_of([] { max_pool2d(Tensor::zeros({1, 1, 4, 4}), Pool2dOptions::square(2, 0)); });
  EXPECT_NE(m.find("stride must be >= 1"), std::string::npos) << m;

  m = error_of([] { global_avg_pool(Tensor::zeros({2, 3})); });
  EXPECT_NE(m.find("global_avg_pool: input must be [N, C, H, W], got shape [2, 3]"), std::string::npos) << m;

  m = error_of([] { upsample_bilinear(Tensor::zeros({1, 1, 4, 4}), 0, 8); });
  EXPECT_NE(m.find("upsample_bilinear: output size must be positive, got 0x8"), std::string::npos) << m;

  m = error_of([] { upsample_bilinear(Tensor::zeros({4, 4}), 8, 8); });
  EXPECT_NE(m.find("upsample_bilinear: input must be [N, C, H, W], got shape [4, 4]"), std::string::npos) << m;
}

}  // namespace
}  // namespace glimpse
