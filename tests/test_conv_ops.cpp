// conv2d: forward against a direct nested-loop convolution, gradients by gradcheck, shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "tests/support.h"

namespace glimpse {
using glimpse::testing::error_of;
using glimpse::testing::expect_abs_close;

namespace {

// out[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n, g*Cg + c, p*sh - ph + r*dh, q*sw - pw + s*dw]
Tensor conv_reference(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t K = w.size(0), Cg = w.size(1), R = w.size(2), S = w.size(3), Kg = K / o.groups;
  const int64_t P = (H + 2 * o.pad_h - o.dilation_h * (R - 1) - 1) / o.stride_h + 1;
  const int64_t Q = (W + 2 * o.pad_w - o.dilation_w * (S - 1) - 1) / o.stride_w + 1;
  EXPECT_EQ(Cg * o.groups, C);
  Tensor out = Tensor::zeros({N, K, P, Q});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double s = b.defined() ? b.at({k}) : 0.0;
          const int64_t g = k / Kg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t t = 0; t < S; ++t) {
                const int64_t ih = p * o.stride_h - o.pad_h + r * o.dilation_h;
                const int64_t iw = q * o.stride_w - o.pad_w + t * o.dilation_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += static_cast<double>(w.at({k, c, r, t})) * x.at({n, g * Cg + c, ih, iw});
              }
          out.at({n, k, p, q}) = static_cast<float>(s);
        }
  return out;
}

struct ConvCase {
  const char* name;
  int64_t N, C, H, W, K, R, S;
  Conv2dOptions opt;
  bool bias;
};

Conv2dOptions make(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t g) {
  Conv2dOptions o;
  o.stride_h = sh, o.stride_w = sw, o.pad_h = ph, o.pad_w = pw, o.dilation_h = dh, o.dilation_w = dw, o.groups = g;
  return o;
}

const ConvCase kCases[] = {
    {"3x3_pad1", 2, 3, 7, 6, 4, 3, 3, Conv2dOptions().padding(1), true},
    {"3x2_stride2_pad0_odd", 3, 2, 9, 8, 5, 3, 2, Conv2dOptions().stride(2), true},
    {"dilation2_pad2", 2, 3, 8, 7, 2, 3, 3, Conv2dOptions().dilation(2).padding(2), true},
    {"groups2", 2, 4, 6, 5, 6, 3, 3, Conv2dOptions().group(2).padding(1), true},
    {"depthwise", 2, 4, 7, 7, 4, 3, 3, Conv2dOptions().group(4).padding(1).stride(2), true},
    {"depthwise_multiplier2", 1, 3, 5, 6, 6, 3, 3, Conv2dOptions().group(3), false},
    {"pointwise_direct", 2, 5, 4, 3, 3, 1, 1, Conv2dOptions(), true},
    {"pointwise_stride2", 2, 3, 5, 5, 2, 1, 1, Conv2dOptions().stride(2), false},
    {"asymmetric", 2, 2, 6, 9, 3, 2, 3, make(1, 2, 0, 1, 2, 1, 1), true},
    {"single_image_no_bias", 1, 3, 5, 5, 4, 3, 3, Conv2dOptions().padding(2).stride(2), false},
    {"big_padding", 1, 2, 3, 3, 2, 2, 2, Conv2dOptions().padding(3), true},
};

class Conv2dCases : public ::testing::TestWithParam<ConvCase> {};

// Random input, weight and (if the case has one) bias of a case.
struct ConvInputs {
  Tensor x, w, b;
};
ConvInputs random_inputs(const ConvCase& c, uint64_t seed) {
  Rng rng(seed);
  ConvInputs in;
  in.x = Tensor::randn({c.N, c.C, c.H, c.W}, rng);
  in.w = Tensor::randn({c.K, c.C / c.opt.groups, c.R, c.S}, rng);
  in.b = c.bias ? Tensor::randn({c.K}, rng) : Tensor();
  return in;
}

TEST_P(Conv2dCases, ForwardMatchesDirectLoops) {
  const ConvCase& c = GetParam();
  auto [x, w, b] = random_inputs(c, 7);
  expect_abs_close(conv2d(x, w, b, c.opt), conv_reference(x, w, b, c.opt), 1e-4f);
}

TEST_P(Conv2dCases, GradcheckEveryInput) {
  const ConvCase& c = GetParam();
  auto [x, w, b] = random_inputs(c, 11);
  x.set_requires_grad();
  w.set_requires_grad();
  if (b.defined()) b.set_requires_grad();
  const Conv2dOptions opt = c.opt;
  auto f = [opt](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), opt); };
  std::vector<Tensor> inputs{x, w};
  if (c.bias) inputs.push_back(b);
  GradcheckResult r = gradcheck(f, inputs);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 0);
}

// The fused inference kernel against the straightforward pair, on every shape above (odd sizes,
// stride 2, padding 0, groups, no bias): relu(conv_reference) within float rounding. With a tape
// wanted, conv2d_relu is the differentiable pair itself.
TEST_P(Conv2dCases, FusedReluMatchesConvThenRelu) {
  const ConvCase& c = GetParam();
  auto [x, w, b] = random_inputs(c, 13);
  Tensor want = conv_reference(x, w, b, c.opt);
  for (int64_t i = 0; i < want.numel(); ++i) want.data()[i] = std::max(want.data()[i], 0.f);
  {
    NoGradGuard ng;
    expect_abs_close(conv2d_relu(x, w, b, c.opt), want, 1e-4f);
  }
  w.set_requires_grad();
  Tensor y = conv2d_relu(x, w, b, c.opt);
  expect_abs_close(y, want, 1e-4f);
  EXPECT_TRUE(y.requires_grad());
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dCases, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<ConvCase>& i) { return std::string(i.param.name); });

// Grad-CAM asks only for the input gradient: the weight takes none and the result is unchanged.
TEST(Conv2d, InputGradientAloneMatchesFullBackward) {
  Rng rng(3);
  Tensor x = Tensor::randn({2, 3, 6, 6}, rng).set_requires_grad();
  Tensor w = Tensor::randn({4, 3, 3, 3}, rng);
  Tensor b = Tensor::randn({4}, rng);
  Tensor gy = Tensor::randn({2, 4, 6, 6}, rng);
  const auto opt = Conv2dOptions().padding(1);
  Tensor gx_alone = grad({conv2d(x, w, b, opt)}, {gy}, {x})[0];

  Tensor w2 = w.clone().set_requires_grad(), b2 = b.clone().set_requires_grad();
  auto all = grad({conv2d(x, w2, b2, opt)}, {gy}, {x, w2, b2});
  expect_abs_close(gx_alone, all[0], 1e-5f);
  EXPECT_EQ(shape_str(all[1].shape()), "[4, 3, 3, 3]");
  EXPECT_EQ(shape_str(all[2].shape()), "[4]");
}

// A frozen input (the image into the first layer): only weight and bias take gradients.
TEST(Conv2d, GradcheckWeightAndBiasOnly) {
  Rng rng(4);
  Tensor x = Tensor::randn({2, 4, 6, 5}, rng);
  Tensor w = Tensor::randn({4, 2, 3, 3}, rng).set_requires_grad();
  Tensor b = Tensor::randn({4}, rng).set_requires_grad();
  const auto opt = Conv2dOptions().group(2).stride(2).padding(1);
  GradcheckResult r =
      gradcheck([opt](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], opt); }, {x, w, b});
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(r.checked, w.numel() + b.numel());
}

// The bias gradient is the sum of the output gradient over n, p, q.
TEST(Conv2d, BiasGradientIsSumOfOutputGradient) {
  Rng rng(5);
  Tensor x = Tensor::randn({2, 2, 4, 4}, rng);
  Tensor w = Tensor::randn({3, 2, 3, 3}, rng);
  Tensor b = Tensor::zeros({3}).set_requires_grad();
  Tensor gy = Tensor::randn({2, 3, 2, 2}, rng);
  Tensor gb = grad({conv2d(x, w, b)}, {gy}, {b})[0];
  for (int64_t k = 0; k < 3; ++k) {
    double s = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) s += gy.at({n, k, i, j});
    EXPECT_NEAR(gb.at({k}), s, 1e-5);
  }
}

// A larger problem through both the batch-parallel and the single-image (Eigen-threaded) paths.
TEST(Conv2d, LargerProblemMatchesReference) {
  Rng rng(9);
  Tensor x = Tensor::randn({4, 8, 17, 15}, rng);
  Tensor w = Tensor::randn({16, 8, 3, 3}, rng);
  Tensor b = Tensor::randn({16}, rng);
  const auto opt = Conv2dOptions().padding(1).stride(2);
  expect_abs_close(conv2d(x, w, b, opt), conv_reference(x, w, b, opt), 1e-3f);
  Tensor x1 = x.slice(0, 1);
  expect_abs_close(conv2d(x1, w, b, opt), conv_reference(x1, w, b, opt), 1e-3f);
}

// Empty inputs: a batch of none (the CPU kernel's work split divided by N and crashed), no input
// channels (the output is the bias alone), and an empty plane that padding still turns into output.
TEST(Conv2d, EmptyBatchChannelsAndPlanes) {
  Rng rng(61);
  const auto pad1 = Conv2dOptions().padding(1);
  for (const Shape& xs : {Shape{0, 3, 8, 8}, Shape{2, 0, 5, 5}, Shape{2, 3, 0, 4}}) {
    SCOPED_TRACE(shape_str(xs));
    Tensor x = Tensor::uniform(xs, rng, -1.f, 1.f).set_requires_grad();
    Tensor w = Tensor::uniform({4, xs[1], xs[2] == 0 ? 1 : 3, xs[2] == 0 ? 1 : 3}, rng, -1.f, 1.f).set_requires_grad();
    Tensor b = Tensor::uniform({4}, rng, -1.f, 1.f).set_requires_grad();
    Tensor y = conv2d(x, w, b, pad1);
    Tensor want = Tensor::zeros(y.shape());  // only padding zeros are convolved: the bias alone
    for (int64_t i = 0; i < want.numel(); ++i) want.data()[i] = b.data()[(i / (y.size(2) * y.size(3))) % 4];
    expect_abs_close(y, want, 0.f);
    sum(y).backward();
    expect_abs_close(w.grad(), Tensor::zeros(w.shape()), 0.f);
    EXPECT_EQ(x.grad().shape(), x.shape());
    const float per_channel = static_cast<float>(y.numel() / 4);  // d sum / d b_k = outputs per channel
    expect_abs_close(b.grad(), Tensor::full({4}, per_channel), 0.f);
  }
}

TEST(Conv2d, ShapeErrorsNameTheOpAndShapes) {
  Tensor x = Tensor::zeros({1, 4, 8, 8});
  Tensor w = Tensor::zeros({8, 3, 3, 3});
  EXPECT_THROW(conv2d(x, w, Tensor()), Error);
  std::string m = error_of([&] { conv2d(x, w, Tensor()); });
  EXPECT_NE(m.find("conv2d: input has 4 channels but weight [8, 3, 3, 3] expects 3 (groups=1)"), std::string::npos)
      << m;

  m = error_of([&] { conv2d(Tensor::zeros({1, 3, 8, 8}), w, Tensor::zeros({4})); });
  EXPECT_NE(m.find("bias has shape [4]"), std::string::npos) << m;
  EXPECT_NE(m.find("[8, 3, 3, 3]"), std::string::npos) << m;

  m = error_of([&] {
    conv2d(Tensor::zeros({1, 6, 8, 8}), Tensor::zeros({8, 3, 3, 3}), Tensor(), Conv2dOptions().group(4));
  });
  EXPECT_NE(m.find("not divisible by groups=4"), std::string::npos) << m;

  m = error_of([&] {
    conv2d(Tensor::zeros({1, 4, 8, 8}), Tensor::zeros({6, 1, 3, 3}), Tensor(), Conv2dOptions().group(4));
  });
  EXPECT_NE(m.find("output channels 6"), std::string::npos) << m;

  m = error_of([&] { conv2d(Tensor::zeros({3, 8, 8}), w, Tensor()); });
  EXPECT_NE(m.find("conv2d: input must be [N, C, H, W], got shape [3, 8, 8]"), std::string::npos) << m;

  m = error_of([&] { conv2d(Tensor::zeros({1, 3, 2, 2}), w, Tensor()); });
  EXPECT_NE(m.find("input [1, 3, 2, 2]"), std::string::npos) << m;
  EXPECT_NE(m.find("smaller than the kernel 3x3"), std::string::npos) << m;

  m = error_of([&] { conv2d(Tensor::zeros({1, 3, 8, 8}), w, Tensor(), Conv2dOptions().stride(0)); });
  EXPECT_NE(m.find("stride must be >= 1"), std::string::npos) << m;
}

}  // namespace
}  // namespace glimpse
