// Attribution methods against the identities they must satisfy:
//   CAM = Grad-CAM x (h w) on a GAP -> linear net (before Grad-CAM's ReLU: compared where CAM > 0,
//         and exactly on a net whose classifier weights are all positive, where CAM >= 0);
//   Integrated Gradients: sum = y_c(x) - y_c(baseline) within 1% at 64 steps (completeness);
//   on a linear model gradient x input = Integrated Gradients (zero baseline);
//   Grad-CAM = LayerCAM where every gradient is positive (GAP -> linear, positive weights);
//   HiResCAM sums to y_c - b_c on a GAP -> linear net;
//   guided backprop is zero wherever a ReLU's forward input or incoming gradient is negative;
//   SmoothGrad and Score-CAM are deterministic for a seed; a constant map normalizes to zeros.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "attribution/attribution.h"
#include "autograd/functions.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "layers/optim.h"
#include "tests/support.h"

using namespace glimpse;

namespace {

// max |a - b| / max |b| (NaN-aware: tests/support.h).
double rel_err(const Tensor& a, const Tensor& b) { return glimpse::testing::relative_error(a, b, 1e-30); }

Tensor random_images(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Rng rng(seed);
  return Tensor::uniform({n, c, h, w}, rng, lo, hi);
}

// small_gap_net with its classifier weights made positive: dy_c/dA_k(x, y) = W[c,k]/hw > 0.
std::shared_ptr<Model> positive_head_net(uint64_t seed) {
  Rng rng(seed);
  auto m = small_gap_net(3, 16, rng);
  auto& lin = dynamic_cast<Linear&>(m->find("classifier"));
  for (int64_t j = 0; j < lin.weight.numel(); ++j) lin.weight.data()[j] = std::fabs(lin.weight.data()[j]) + 0.01f;
  return m;
}

}  // namespace

TEST(AttributionIdentities, CamEqualsGradCamTimesHwWherePositive) {
  Rng rng(3);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = random_images(3, 3, 16, 16, 11);
  attr::Options opt;
  opt.targets = {0, 1, 2};
  attr::AttributionMap c = attr::cam(*model, x, opt);
  attr::AttributionMap g = attr::gradcam(*model, x, opt);
  ASSERT_EQ(c.raw.shape(), (Shape{3, 4, 4}));
  ASSERT_EQ(g.raw.shape(), (Shape{3, 4, 4}));
  EXPECT_EQ(c.layer, "features.7");
  const float hw = 16.f;
  // Grad-CAM = ReLU(CAM / hw): compare ReLU(CAM) with Grad-CAM x hw over the whole map.
  Tensor relu_cam = Tensor::empty(c.raw.shape()), scaled = Tensor::empty(g.raw.shape());
  int positive = 0;
  for (int64_t j = 0; j < c.raw.numel(); ++j) {
    relu_cam.data()[j] = std::max(c.raw.data()[j], 0.f);
    scaled.data()[j] = g.raw.data()[j] * hw;
    positive += c.raw.data()[j] > 0;
  }
  double err = rel_err(scaled, relu_cam);
  std::printf("  ReLU(CAM) vs Grad-CAM x hw (signed head): rel err %.3e (%d of %lld cells positive)\n", err, positive,
              static_cast<long long>(c.raw.numel()));
  EXPECT_LE(err, 1e-5);
  EXPECT_GT(positive, 0);
  EXPECT_LT(positive, c.raw.numel());  // the comparison covers both sides of the ReLU
}

TEST(AttributionIdentities, CamEqualsGradCamTimesHwAndLayerCamOnPositiveHead) {
  auto model = positive_head_net(5);
  Tensor x = random_images(2, 3, 16, 16, 12);
  attr::Options opt;
  opt.targets = {2, 0};
  attr::AttributionMap c = attr::cam(*model, x, opt);
  attr::AttributionMap g = attr::gradcam(*model, x, opt);
  attr::AttributionMap l = attr::layercam(*model, x, opt);
  Tensor scaled = Tensor::empty(g.raw.shape());
  for (int64_t j = 0; j < g.raw.numel(); ++j) scaled.data()[j] = g.raw.data()[j] * 16.f;
  for (int64_t j = 0; j < c.raw.numel(); ++j) ASSERT_GE(c.raw.data()[j], 0.f);  // no ReLU to compare across
  double e1 = rel_err(scaled, c.raw), e2 = rel_err(l.raw, g.raw);
  std::printf("  CAM vs Grad-CAM x hw (positive head): rel err %.3e;  LayerCAM vs Grad-CAM: rel err %.3e\n", e1, e2);
  EXPECT_LE(e1, 1e-5);
  EXPECT_LE(e2, 1e-5);
  // Maps: the normalized maps agree too.
  EXPECT_LE(rel_err(c.map, g.map), 1e-5);
}

TEST(AttributionIdentities, HiResCamSumsToLogitMinusBias) {
  Rng rng(8);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = random_images(2, 3, 16, 16, 13);
  attr::AttributionMap h = attr::hirescam(*model, x);
  auto& lin = dynamic_cast<Linear&>(model->find("classifier"));
  for (int64_t i = 0; i < 2; ++i) {
    double s = 0;
    for (int64_t p = 0; p < 16; ++p) s += h.raw.data()[i * 16 + p];
    double expect = h.scores[i] - lin.bias.data()[h.targets[i]];
    EXPECT_NEAR(s, expect, 1e-5 * std::max(1.0, std::fabs(expect)));
  }
}

namespace {
// 16x16 images, half with a bright 5x5 square (class 1) on noise (class 0 without).
void blob_batch(Rng& rng, int64_t n, Tensor& x, std::vector<int64_t>& y) {
  x = Tensor::uniform({n, 3, 16, 16}, rng, 0.f, 0.3f);
  y.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<int64_t>(i % 2);
    if (!y[i]) continue;
    int64_t r = rng.below(12), c = rng.below(12);
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t a = 0; a < 5; ++a)
        for (int64_t b = 0; b < 5; ++b) x.at({i, ch, r + a, c + b}) = 1.f;
  }
}

// small_gap_net(2, 16) trained for a few dozen steps on blob_batch: logits far from the baseline's.
std::shared_ptr<Model> briefly_trained_net() {
  Rng rng(71);
  auto model = small_gap_net(2, 16, rng);
  Adam opt(model->parameters(), AdamOptions{3e-3f});
  model->train();
  for (int step = 0; step < 30; ++step) {
    Tensor x;
    std::vector<int64_t> y;
    blob_batch(rng, 16, x, y);
    opt.zero_grad();
    cross_entropy((*model)(x), y).backward();
    opt.step();
  }
  model->eval();
  return model;
}
}  // namespace

TEST(AttributionIdentities, IntegratedGradientsCompleteness) {
  // A ReLU/max-pool network is piecewise linear, so the trapezoid rule errs only where the path
  // crosses a kink; at 64 steps the sum must be within 1% of y_c(x) - y_c(x'). A briefly trained
  // net, explaining its detection of the blob, so that y_c(x) - y_c(x') is a real change: where
  // it is near zero (a fresh net, or the "no blob" logit of a noise image against a zero image)
  // a relative error means nothing -- those cases are printed, and held to 1% of the logit scale.
  auto model = briefly_trained_net();
  Rng rng(72);
  Tensor x;
  std::vector<int64_t> y;
  blob_batch(rng, 4, x, y);
  double worst = 0;
  for (int baseline_kind = 0; baseline_kind < 2; ++baseline_kind) {
    attr::Options opt;
    opt.ig_steps = 64;
    opt.targets = y;  // the true class: blob or no blob
    Tensor base = baseline_kind == 0 ? Tensor::zeros({1, 3, 16, 16}) : random_images(4, 3, 16, 16, 73, 0.f, 0.3f);
    opt.ig_baseline = base;
    attr::AttributionMap ig = attr::integrated_gradients(*model, x, opt);
    Tensor lx, lb;
    {
      NoGradGuard ng;
      lx = (*model)(x);
      lb = (*model)(baseline_kind == 0 ? Tensor::zeros({4, 3, 16, 16}) : base);
    }
    for (int64_t i = 0; i < 4; ++i) {
      double s = 0;
      for (int64_t j = 0; j < 3 * 256; ++j) s += ig.raw.data()[i * 768 + j];
      double delta = lx.at({i, y[i]}) - lb.at({i, y[i]});
      double e = std::fabs(s - delta) / std::fabs(delta);
      // The gap IG returns is this same sum IG - (y(x) - y(x')), from its own forward passes.
      ASSERT_EQ(ig.completeness_gap.size(), 4u);
      EXPECT_NEAR(ig.completeness_gap[static_cast<size_t>(i)], s - delta,
                  1e-5 * std::max({1.0, std::fabs(s), std::fabs(delta)}))
          << "image " << i;
      std::printf("  baseline %s, image %lld (class %lld): sum IG %+.5f, y(x) - y(x') %+.5f, rel err %.2e\n",
                  baseline_kind == 0 ? "zeros" : "noise", static_cast<long long>(i), static_cast<long long>(y[i]), s,
                  delta, e);
      if (y[i] == 1) {
        worst = std::max(worst, e);
        EXPECT_LE(e, 0.01) << "image " << i << ": sum IG " << s << " vs " << delta;
      } else {
        double scale = std::max<double>({std::fabs(delta), std::fabs(lx.at({i, y[i]})), std::fabs(lb.at({i, y[i]}))});
        EXPECT_LE(std::fabs(s - delta), 0.01 * scale) << "image " << i << ": sum IG " << s << " vs " << delta;
      }
    }
  }
  std::printf("  IG completeness at 64 steps (blob images, blob class): worst relative error %.3e\n", worst);
}

namespace {
// y = W flatten(x) + b: a linear model, for which gradient x input is exact.
class LinearModel : public Module {
 public:
  LinearModel(int64_t in, int64_t out, Rng& rng) : Module("LinearModel") {
    flat = register_module("flatten", std::make_shared<Flatten>());
    fc = register_module("fc", std::make_shared<Linear>(in, out, true, rng));
  }
  Tensor forward(const Tensor& x) override { return (*fc)((*flat)(x)); }
  std::shared_ptr<Flatten> flat;
  std::shared_ptr<Linear> fc;
};
}  // namespace

TEST(AttributionIdentities, GradientTimesInputEqualsIgOnLinearModel) {
  Rng rng(31);
  LinearModel model(3 * 8 * 8, 4, rng);
  Tensor x = random_images(3, 3, 8, 8, 32);
  attr::Options opt;
  opt.ig_steps = 16;
  attr::AttributionMap gi = attr::gradient_x_input(model, x, opt);
  attr::AttributionMap ig = attr::integrated_gradients(model, x, opt);
  EXPECT_EQ(gi.targets, ig.targets);
  double e = rel_err(ig.raw, gi.raw);
  std::printf("  linear model: IG vs gradient x input rel err %.3e\n", e);
  EXPECT_LE(e, 1e-5);
  // On a linear model the path integral is exact: the completeness gap is rounding only.
  ASSERT_EQ(ig.completeness_gap.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_LE(std::fabs(ig.completeness_gap[i]), 1e-4) << "image " << i;
  EXPECT_TRUE(gi.completeness_gap.empty());  // only IG fills it
  // and both equal W[c] * x
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 192; ++j)
      EXPECT_NEAR(gi.raw.data()[i * 192 + j], model.fc->weight.at({gi.targets[i], j}) * x.data()[i * 192 + j], 1e-6);
}

TEST(AttributionIdentities, GuidedBackpropZeroWhereInputOrGradientNegative) {
  // Model level: a net whose first module is a ReLU on the raw image -- guided backprop's input
  // signal must vanish wherever the image is negative.
  Rng rng(41);
  auto net = std::make_shared<Sequential>();
  net->emplace<ReLU>();
  net->emplace<Conv2d>(3, 8, 3, Conv2dOptions{1, 1}, true, rng);
  net->emplace<ReLU>();
  net->emplace<GlobalAvgPool>();
  net->emplace<Linear>(8, 2, true, rng);
  Tensor x = random_images(2, 3, 8, 8, 42);
  attr::AttributionMap gb = attr::guided_backprop(*net, x);
  int neg = 0, nonzero = 0;
  for (int64_t j = 0; j < x.numel(); ++j) {
    if (x.data()[j] <= 0) {
      ++neg;
      EXPECT_EQ(gb.raw.data()[j], 0.f) << "at " << j;
    } else if (gb.raw.data()[j] != 0.f) {
      ++nonzero;
    }
  }
  EXPECT_GT(neg, 0);
  EXPECT_GT(nonzero, 0);

  // Inside small_gap_net: at the ReLU "features.4", the gradient leaving it (to the conv output)
  // is g * [x > 0] * [g > 0] of the gradient g arriving at its output -- zero where either is <= 0.
  Rng rng2(43);
  auto model = small_gap_net(3, 16, rng2);
  Tensor relu_in, g_out, g_in;
  std::vector<HookHandle> grad_hooks;
  HookHandle h1 = register_forward_hook(*model, "features.3", [&](Module&, const Tensor&, const Tensor& y) {
    relu_in = y;
    grad_hooks.push_back(y.register_hook([&](const Tensor& g) {
      g_in = g.clone();
      return Tensor();
    }));
    return Tensor();
  });
  HookHandle h2 = register_forward_hook(*model, "features.4", [&](Module&, const Tensor&, const Tensor& y) {
    grad_hooks.push_back(y.register_hook([&](const Tensor& g) {
      g_out = g.clone();
      return Tensor();
    }));
    return Tensor();
  });
  attr::guided_backprop(*model, random_images(2, 3, 16, 16, 44));
  ASSERT_TRUE(g_in.defined() && g_out.defined());
  int zero_by_x = 0, zero_by_g = 0, passed = 0;
  for (int64_t j = 0; j < g_in.numel(); ++j) {
    float xv = relu_in.data()[j], gv = g_out.data()[j];
    if (xv <= 0)
      ++zero_by_x;
    else if (gv <= 0)
      ++zero_by_g;
    else
      ++passed;
    EXPECT_EQ(g_in.data()[j], (xv > 0 && gv > 0) ? gv : 0.f) << "at " << j;
  }
  EXPECT_GT(zero_by_x, 0);
  EXPECT_GT(zero_by_g, 0);
  EXPECT_GT(passed, 0);
}

TEST(AttributionIdentities, SmoothGradAndScoreCamDeterministic) {
  Rng rng(51);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = random_images(2, 3, 16, 16, 52);
  attr::Options opt;
  opt.smoothgrad_samples = 8;
  opt.seed = 7;
  attr::AttributionMap a = attr::smoothgrad(*model, x, opt), b = attr::smoothgrad(*model, x, opt);
  EXPECT_EQ(a.raw.to_vector(), b.raw.to_vector());
  EXPECT_EQ(a.map.to_vector(), b.map.to_vector());
  opt.seed = 8;
  attr::AttributionMap c = attr::smoothgrad(*model, x, opt);
  EXPECT_NE(a.raw.to_vector(), c.raw.to_vector()) << "another seed should draw other noise";

  attr::AttributionMap s1 = attr::scorecam(*model, x, opt), s2 = attr::scorecam(*model, x, opt);
  EXPECT_EQ(s1.raw.to_vector(), s2.raw.to_vector());
  opt.scorecam_batch = 5;  // another batching of the masked images: the same map
  attr::AttributionMap s3 = attr::scorecam(*model, x, opt);
  EXPECT_LE(rel_err(s3.raw, s1.raw), 1e-6);
}

TEST(AttributionIdentities, ConstantMapNormalizesToZeros) {
  for (float v : {0.f, 1.f, -3.5f, 1e-20f, 1e20f}) {
    Tensor m = attr::normalize_maps(Tensor::full({2, 5, 7}, v));
    for (float f : m.to_vector()) ASSERT_EQ(f, 0.f) << v;
    Tensor u = attr::normalize_maps(attr::upsample_maps(Tensor::full({1, 3, 3}, v), 17, 13));
    for (float f : u.to_vector()) ASSERT_EQ(f, 0.f) << v;
  }
  // One constant image next to a varying one: zeros for the first, [0, 1] for the second.
  Tensor m = Tensor::zeros({2, 2, 2});
  for (int j = 0; j < 4; ++j) m.data()[j] = 2.f, m.data()[4 + j] = static_cast<float>(j);
  std::vector<float> n = attr::normalize_maps(m).to_vector();
  EXPECT_EQ(n, (std::vector<float>{0, 0, 0, 0, 0, 1.f / 3, 2.f / 3, 1}));
  // A Grad-CAM that is zero everywhere (an all-zero image into a bias-free ... any net whose
  // map vanishes) gives a zero map, not NaN.
  Rng rng(61);
  auto model = small_gap_net(2, 8, rng);
  auto& lin = dynamic_cast<Linear&>(model->find("classifier"));
  lin.weight.fill_(0.f);  // every gradient zero: alpha = 0, Grad-CAM = 0
  attr::AttributionMap g = attr::gradcam(*model, random_images(1, 3, 8, 8, 62));
  for (float f : g.map.to_vector()) ASSERT_EQ(f, 0.f);
}
