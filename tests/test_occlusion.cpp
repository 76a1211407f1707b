// Occlusion and the sliding-window classification map (attribution/occlusion.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "attribution/attribution.h"
#include "core/error.h"
#include "layers/layers.h"
#include "layers/models.h"

using namespace glimpse;

namespace {

// y = W vec(x) + b: the drop of y_c when a window is filled with f is sum over the window and the
// channels of W[c, ch, i, j] * (x[ch, i, j] - f), so occlusion has a closed form.
std::shared_ptr<Sequential> linear_model(int64_t C, int64_t H, int64_t W, int64_t K, Rng& rng,
                                         std::shared_ptr<Linear>* lin_out) {
  auto net = std::make_shared<Sequential>();
  net->emplace<Flatten>();
  *lin_out = net->emplace<Linear>(C * H * W, K, true, rng);
  return net;
}

// The expected occlusion map of the linear model, straight from the definition.
std::vector<float> expected_linear_occlusion(const Linear& lin, const Tensor& x, int64_t n, int64_t c, int64_t win,
                                             const std::vector<int64_t>& starts, float fill) {
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> sum(H * W, 0), cnt(H * W, 0);
  for (int64_t y0 : starts)
    for (int64_t x0 : starts) {
      double drop = 0;
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t i = y0; i < y0 + win; ++i)
          for (int64_t j = x0; j < x0 + win; ++j)
            drop += lin.weight.at({c, (ch * H + i) * W + j}) * (x.at({n, ch, i, j}) - fill);
      for (int64_t i = y0; i < y0 + win; ++i)
        for (int64_t j = x0; j < x0 + win; ++j) sum[i * W + j] += drop, cnt[i * W + j] += 1;
    }
  std::vector<float> out(H * W);
  for (int64_t p = 0; p < H * W; ++p) out[p] = cnt[p] > 0 ? static_cast<float>(sum[p] / cnt[p]) : 0.f;
  return out;
}

}  // namespace

// Window 1, stride 1: occlusion of a linear model is (x - fill) times the weights, summed over channels:
//   raw[n, 0, i, j] = sum_ch W[c, ch, i, j] (x[n, ch, i, j] - fill).
TEST(Occlusion, LinearModelPixelWindowsClosedForm) {
  Rng rng(3);
  std::shared_ptr<Linear> lin;
  auto net = linear_model(2, 6, 6, 3, rng, &lin);
  Tensor x = Tensor::randn({2, 2, 6, 6}, rng);
  attr::Options opt;
  opt.occlusion_window = 1;
  opt.occlusion_stride = 1;
  opt.occlusion_fill = 0.25f;
  opt.targets = {2, 1};
  auto r = attr::occlusion(*net, x, opt);
  ASSERT_EQ(r.raw.shape(), (Shape{2, 1, 6, 6}));
  ASSERT_EQ(r.map.shape(), (Shape{2, 6, 6}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = 0; j < 6; ++j) {
        double want = 0;
        for (int64_t ch = 0; ch < 2; ++ch)
          want += lin->weight.at({opt.targets[n], (ch * 6 + i) * 6 + j}) * (x.at({n, ch, i, j}) - 0.25f);
        EXPECT_NEAR(r.raw.at({n, 0, i, j}), want, 1e-5) << n << " " << i << " " << j;
      }
}

// Window 3, stride 2 on 8x8: corners 0, 2, 4 and the flush corner 5 in each direction; every pixel
// is covered and gets the mean drop of its windows.
TEST(Occlusion, LinearModelWindowsClosedFormAndFullCoverage) {
  Rng rng(4);
  std::shared_ptr<Linear> lin;
  auto net = linear_model(3, 8, 8, 2, rng, &lin);
  Tensor x = Tensor::uniform({1, 3, 8, 8}, rng, 0.f, 1.f);
  attr::Options opt;
  opt.occlusion_window = 3;
  opt.occlusion_stride = 2;
  opt.occlusion_fill = 0.f;
  opt.targets = {1};
  auto r = attr::occlusion(*net, x, opt);
  std::vector<float> want = expected_linear_occlusion(*lin, x, 0, 1, 3, {0, 2, 4, 5}, 0.f);
  for (int64_t p = 0; p < 64; ++p) EXPECT_NEAR(r.raw.data()[p], want[p], 1e-5) << p;
  EXPECT_NEAR(
      r.scores[0],
      lin->bias.data()[1] +
          [&] {
            double s = 0;
            for (int64_t k = 0; k < 192; ++k) s += lin->weight.at({1, k}) * x.data()[k];
            return s;
          }(),
      1e-4);
}

TEST(Occlusion, BatchEqualsOneAtATime) {
  Rng rng(8);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::randn({3, 3, 16, 16}, rng);
  attr::Options opt;
  opt.occlusion_window = 4;
  opt.occlusion_stride = 3;
  auto all = attr::occlusion(*model, x, opt);  // predicted targets
  for (int64_t n = 0; n < 3; ++n) {
    auto one = attr::occlusion(*model, x.slice(n, n + 1).contiguous(), opt);
    EXPECT_EQ(one.targets[0], all.targets[n]);
    std::vector<float> a = all.raw.slice(n, n + 1).contiguous().to_vector(), b = one.raw.to_vector();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 + 1e-4 * std::fabs(b[i])) << i;
  }
  for (auto& [name, m] : model->named_modules()) EXPECT_EQ(m->num_forward_hooks(), 0u) << name;
}

TEST(Occlusion, WindowThatDoesNotFitIsAnError) {
  Rng rng(1);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::randn({1, 3, 16, 16}, rng);
  attr::Options opt;
  opt.occlusion_window = 17;
  try {
    attr::occlusion(*model, x, opt);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("17"), std::string::npos) << e.what();
  }
  opt.occlusion_window = 4;
  opt.occlusion_stride = 0;
  EXPECT_THROW(attr::occlusion(*model, x, opt), Error);
  opt = {};
  opt.sliding_window = 40;
  EXPECT_THROW(attr::sliding_window(*model, x, opt), Error);
}

// A "brightness detector": logit_1 = 10 * mean(x) - 5, logit_0 = 0. A bright 8x8 square in the
// top-left of a dark 32x32 image: windows over the square are brighter, so classified more
// confidently as class 1; the map peaks on the square and is lowest far from it.
TEST(SlidingWindow, PeaksOnTheBrightSquare) {
  auto net = std::make_shared<Sequential>();
  net->emplace<GlobalAvgPool>();
  auto lin = net->emplace<Linear>(1, 2);
  lin->weight.data()[0] = 0.f, lin->weight.data()[1] = 10.f;
  lin->bias.data()[0] = 0.f, lin->bias.data()[1] = -5.f;
  Tensor x = Tensor::zeros({1, 1, 32, 32});
  for (int i = 2; i < 10; ++i)
    for (int j = 2; j < 10; ++j) x.at({0, 0, i, j}) = 1.f;
  attr::Options opt;
  opt.sliding_window = 16;
  opt.sliding_stride = 8;
  opt.targets = {1};
  auto r = attr::sliding_window(*net, x, opt);
  ASSERT_EQ(r.raw.shape(), (Shape{1, 1, 32, 32}));
  // The window [0,16)x[0,16) holds the whole square: mean 64/256 = 0.25, logit 10*0.25-5 = -2.5,
  // p = 1/(1+e^2.5). Pixel (0, 0) is covered by that window only.
  EXPECT_NEAR(r.raw.at({0, 0, 0, 0}), 1.0 / (1.0 + std::exp(2.5)), 1e-5);
  // Pixel (31, 31): covered only by the window [16,32)^2, which is dark: p = 1/(1+e^5).
  EXPECT_NEAR(r.raw.at({0, 0, 31, 31}), 1.0 / (1.0 + std::exp(5.0)), 1e-5);
  // The peak of the map is on the square.
  int64_t best = 0;
  std::vector<float> v = r.raw.to_vector();
  for (int64_t p = 1; p < 32 * 32; ++p)
    if (v[p] > v[best]) best = p;
  EXPECT_LT(best / 32, 10);
  EXPECT_LT(best % 32, 10);
  for (float p : v) {
    EXPECT_GE(p, 0.f);
    EXPECT_LE(p, 1.f);
  }
  // Score = the target logit on the whole image: 10 * 64/1024 - 5.
  EXPECT_NEAR(r.scores[0], 10.f * 64 / 1024 - 5, 1e-5);

  // One window the size of the image: the map is the whole image's probability everywhere.
  opt.sliding_window = 32;
  auto whole = attr::sliding_window(*net, x, opt);
  const double p_all = 1.0 / (1.0 + std::exp(-(10.0 * 64 / 1024 - 5)));
  for (float p : whole.raw.to_vector()) EXPECT_NEAR(p, p_all, 1e-5);
  EXPECT_EQ(whole.map.shape(), (Shape{1, 32, 32}));
  for (float p : whole.map.to_vector()) EXPECT_EQ(p, 0.f);  // a constant map normalizes to zeros
}

TEST(SlidingWindow, BatchEqualsOneAtATime) {
  Rng rng(9);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::randn({2, 3, 16, 16}, rng);
  attr::Options opt;
  opt.sliding_window = 8;
  opt.sliding_stride = 4;
  auto all = attr::sliding_window(*model, x, opt);
  for (int64_t n = 0; n < 2; ++n) {
    auto one = attr::sliding_window(*model, x.slice(n, n + 1).contiguous(), opt);
    std::vector<float> a = all.raw.slice(n, n + 1).contiguous().to_vector(), b = one.raw.to_vector();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
  }
}
