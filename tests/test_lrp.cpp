// LRP (attribution/lrp.cpp): the rules on hand-computed examples (the composite's too), relevance
// conservation on bias-free ReLU networks, non-negativity of z+, batch norm folding, batches, and
// hook hygiene.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numeric>

#include "attribution/attribution.h"
#include "core/error.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "support.h"

using namespace glimpse;

namespace {

// conv -> relu -> maxpool -> conv -> relu -> avgpool -> conv -> relu -> gap -> linear, no biases.
std::shared_ptr<Sequential> bias_free_net(Rng& rng) {
  auto net = std::make_shared<Sequential>();
  net->emplace<Conv2d>(3, 6, 3, Conv2dOptions().padding(1), false, rng);
  net->emplace<ReLU>();
  net->emplace<MaxPool2d>(2);
  net->emplace<Conv2d>(6, 8, 3, Conv2dOptions().padding(1), false, rng);
  net->emplace<ReLU>();
  net->emplace<AvgPool2d>(2);
  net->emplace<Conv2d>(8, 8, 3, Conv2dOptions().padding(1), false, rng);
  net->emplace<ReLU>();
  net->emplace<GlobalAvgPool>();
  net->emplace<Linear>(8, 4, false, rng);
  return net;
}

double image_sum(const Tensor& raw, int64_t n) {
  const int64_t per = raw.numel() / raw.size(0);
  const float* p = raw.data() + n * per;
  double s = 0;
  for (int64_t i = 0; i < per; ++i) s += p[i];
  return s;
}

// The learner's guide's two-layer net (docs/learn/README.md, "LRP"): W1 = [[1, 0, 1], [-1, 1, 0]],
// ReLU, W2 = (1, -2), no biases; the input is [1, 1, 1, 3].
std::shared_ptr<Sequential> guide_two_layer_net() {
  auto net = std::make_shared<Sequential>();
  net->emplace<Flatten>();
  auto l1 = net->emplace<Linear>(3, 2, false);
  net->emplace<ReLU>();
  auto l2 = net->emplace<Linear>(2, 1, false);
  const float w1[6] = {1, 0, 1, -1, 1, 0}, w2[2] = {1, -2};
  std::copy(w1, w1 + 6, l1->weight.data());
  std::copy(w2, w2 + 2, l2->weight.data());
  return net;
}

void expect_no_hooks(Module& m) {
  for (auto& [name, mod] : m.named_modules()) EXPECT_EQ(mod->num_forward_hooks(), 0u) << "module '" << name << "'";
}

}  // namespace

// The two-layer example of docs/learn/README.md ("LRP"), every number worked by hand there:
//   x = (1, 2, 3); h = ReLU(W1 x) with W1 = [[1, 0, 1], [-1, 1, 0]] -> (4, 1); y = W2 h with W2 = (1, -2) -> 2.
//   LRP-eps (tiny eps): R_h = (4, -2); R_x = (1, 0, 3) + (2, -4, 0) = (3, -4, 3); sum 2 = y.
//   z+:                R_h = (2, 0);  R_x = (0.5, 0, 1.5);                    sum 2 = y.
TEST(Lrp, LearnersGuideTwoLayerExample) {
  auto net = guide_two_layer_net();
  Tensor x = Tensor::from_vector({1, 1, 1, 3}, {1, 2, 3});
  attr::Options opt;
  opt.lrp_epsilon = 1e-9f;
  const auto eps = attr::lrp_epsilon(*net, x, opt);
  EXPECT_NEAR(eps.scores[0], 2.f, 1e-6);
  const float want_eps[3] = {3, -4, 3};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(eps.raw.data()[i], want_eps[i], 1e-5) << i;
  const auto zp = attr::lrp_alphabeta(*net, x, opt);
  const float want_zp[3] = {0.5f, 0, 1.5f};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(zp.raw.data()[i], want_zp[i], 1e-6) << i;
}

// A 4-input linear model: y = sum_i w_i x_i with w = (3, -1, 2, 0.5), x = (1, 2, -1, 4):
//   y = 3 - 2 - 2 + 2 = 1.
//   eps (tiny): R_i = x_i w_i / y * y = (3, -2, -2, 2).
//   z+ : z_i = x_i w_i = (3, -2, -2, 2); positive parts (3, 0, 0, 2) sum to 5, so R = (3, 0, 0, 2) / 5 * 1 = (0.6, 0,
//   0, 0.4). alpha=2, beta=1: negative parts (0, -2, -2, 0) sum to -4: R = 2*(0.6, 0, 0, 0.4) - (0, 0.5, 0.5, 0) =
//   (1.2, -0.5, -0.5, 0.8).
TEST(Lrp, HandComputedLinear) {
  auto net = std::make_shared<Sequential>();
  net->emplace<Flatten>();
  auto lin = net->emplace<Linear>(4, 1, false);
  const float w[4] = {3, -1, 2, 0.5f};
  std::copy(w, w + 4, lin->weight.data());
  Tensor x = Tensor::from_vector({1, 1, 2, 2}, {1, 2, -1, 4});
  attr::Options opt;
  opt.lrp_epsilon = 1e-9f;
  auto eps = attr::lrp_epsilon(*net, x, opt);
  ASSERT_EQ(eps.raw.shape(), (Shape{1, 1, 2, 2}));
  const float want_eps[4] = {3, -2, -2, 2};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(eps.raw.data()[i], want_eps[i], 1e-5) << i;
  EXPECT_NEAR(eps.scores[0], 1.f, 1e-6);

  auto zp = attr::lrp_alphabeta(*net, x, opt);
  const float want_zp[4] = {0.6f, 0, 0, 0.4f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(zp.raw.data()[i], want_zp[i], 1e-6) << i;

  opt.lrp_alpha = 2, opt.lrp_beta = 1;
  auto ab = attr::lrp_alphabeta(*net, x, opt);
  const float want_ab[4] = {1.2f, -0.5f, -0.5f, 0.8f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(ab.raw.data()[i], want_ab[i], 1e-6) << i;

  opt.lrp_alpha = 1.5f, opt.lrp_beta = 1;  // alpha - beta != 1
  EXPECT_THROW(attr::lrp_alphabeta(*net, x, opt), Error);
}

// LRP-eps with a tiny eps on a bias-free ReLU network conserves relevance: sum_i R_i = y_c.
TEST(Lrp, EpsilonConservesRelevanceOnBiasFreeNet) {
  Rng rng(7);
  auto net = bias_free_net(rng);
  Tensor x = Tensor::randn({3, 3, 16, 16}, rng);
  attr::Options opt;
  opt.lrp_epsilon = 1e-9f;
  for (int64_t target : {0, 1, 2, 3}) {
    opt.targets = {target, target, target};
    auto r = attr::lrp_epsilon(*net, x, opt);
    ASSERT_EQ(r.raw.shape(), x.shape());
    for (int64_t n = 0; n < 3; ++n) {
      const double y = r.scores[n];
      EXPECT_NEAR(image_sum(r.raw, n), y, 1e-4 * std::fabs(y) + 1e-7) << "image " << n << " class " << target;
    }
  }
  // map = sum over channels, normalized to [0, 1]
  auto r = attr::lrp_epsilon(*net, x, {});
  ASSERT_EQ(r.map.shape(), (Shape{3, 16, 16}));
  for (float v : r.map.to_vector()) {
    EXPECT_GE(v, 0.f);
    EXPECT_LE(v, 1.f);
  }
}

// z+ (alpha = 1, beta = 0) on positive inputs: relevances are non-negative and conserved.
TEST(Lrp, ZPlusNonNegativeAndConserving) {
  Rng rng(11);
  auto net = bias_free_net(rng);
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, 0.f, 1.f);
  auto r = attr::lrp_alphabeta(*net, x, {});  // defaults: alpha 1, beta 0, predicted class
  for (int64_t n = 0; n < 2; ++n) {
    ASSERT_GT(r.scores[n], 0.f) << "the test needs a positive predicted logit";
    EXPECT_NEAR(image_sum(r.raw, n), r.scores[n], 1e-4 * r.scores[n]) << n;
  }
  for (float v : r.raw.to_vector()) EXPECT_GE(v, 0.f);
}

// BatchNorm2d after a Conv2d is folded: w' = w * g / sqrt(v + eps), b' = (b - mu) * g / sqrt(v + eps) + beta.
// LRP of conv+BN equals LRP of the equivalent conv whose folded weights are computed here by hand.
TEST(Lrp, BatchNormFoldingMatchesHandFoldedConv) {
  Rng rng(3);
  auto a = std::make_shared<Sequential>();
  auto conv = a->emplace<Conv2d>(3, 4, 3, Conv2dOptions().padding(1), true, rng);
  auto bn = a->emplace<BatchNorm2d>(4);
  a->emplace<ReLU>();
  a->emplace<GlobalAvgPool>();
  auto lin = a->emplace<Linear>(4, 3, true, rng);
  const float mu[4] = {0.1f, -0.2f, 0.3f, 0.05f}, var[4] = {0.5f, 2.f, 1.5f, 0.8f};
  const float gamma[4] = {1.2f, 0.7f, -0.9f, 1.1f}, beta[4] = {0.1f, 0.2f, -0.1f, 0.3f};
  for (int k = 0; k < 4; ++k) {
    bn->running_mean.data()[k] = mu[k], bn->running_var.data()[k] = var[k];
    bn->weight.data()[k] = gamma[k], bn->bias.data()[k] = beta[k];
  }
  auto b = std::make_shared<Sequential>();
  auto conv2 = b->emplace<Conv2d>(3, 4, 3, Conv2dOptions().padding(1), true, rng);
  b->emplace<ReLU>();
  b->emplace<GlobalAvgPool>();
  auto lin2 = b->emplace<Linear>(4, 3, true, rng);
  lin2->weight.copy_from(lin->weight);
  lin2->bias.copy_from(lin->bias);
  for (int k = 0; k < 4; ++k) {
    const float s = gamma[k] / std::sqrt(var[k] + bn->eps);
    for (int j = 0; j < 27; ++j) conv2->weight.data()[k * 27 + j] = conv->weight.data()[k * 27 + j] * s;
    conv2->bias.data()[k] = (conv->bias.data()[k] - mu[k]) * s + beta[k];
  }
  Tensor x = Tensor::randn({2, 3, 8, 8}, rng);
  a->train();  // LRP must switch to eval (running statistics) and restore the flag
  attr::Options opt;
  opt.targets = {0, 2};
  auto ra = attr::lrp_epsilon(*a, x, opt), rb = attr::lrp_epsilon(*b, x, opt);
  EXPECT_TRUE(a->training());
  EXPECT_TRUE(bn->training());
  for (int n = 0; n < 2; ++n) EXPECT_NEAR(ra.scores[n], rb.scores[n], 1e-5);
  std::vector<float> va = ra.raw.to_vector(), vb = rb.raw.to_vector();
  for (size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(va[i], vb[i], 1e-5 + 1e-4 * std::fabs(vb[i])) << i;
  auto za = attr::lrp_alphabeta(*a, x, opt), zb = attr::lrp_alphabeta(*b, x, opt);
  va = za.raw.to_vector(), vb = zb.raw.to_vector();
  for (size_t i = 0; i < va.size(); ++i) EXPECT_NEAR(va[i], vb[i], 1e-5 + 1e-4 * std::fabs(vb[i])) << i;

  // A BatchNorm2d with no Conv2d right before it cannot be folded.
  auto c = std::make_shared<Sequential>();
  c->emplace<BatchNorm2d>(3);
  c->emplace<GlobalAvgPool>();
  c->emplace<Linear>(3, 2, true, rng);
  try {
    attr::lrp_epsilon(*c, x, {});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not follow a Conv2d"), std::string::npos) << e.what();
  }
  expect_no_hooks(*c);
}

TEST(Lrp, BatchEqualsOneAtATime) {
  Rng rng(5);
  manual_seed(5);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::randn({3, 3, 16, 16}, rng);
  for (bool eps : {true, false}) {
    attr::Options opt;
    opt.targets = {2, 0, 1};
    auto all = eps ? attr::lrp_epsilon(*model, x, opt) : attr::lrp_alphabeta(*model, x, opt);
    for (int64_t n = 0; n < 3; ++n) {
      attr::Options one;
      one.targets = {opt.targets[n]};
      Tensor xn = x.slice(n, n + 1).contiguous();
      auto r = eps ? attr::lrp_epsilon(*model, xn, one) : attr::lrp_alphabeta(*model, xn, one);
      std::vector<float> a = all.raw.slice(n, n + 1).contiguous().to_vector(), b = r.raw.to_vector();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 + 1e-5 * std::fabs(b[i]));
      std::vector<float> ma = all.map.slice(n, n + 1).contiguous().to_vector(), mb = r.map.to_vector();
      // The normalized map divides by (max - min) of the summed relevance, which amplifies the
      // float32 summation-order differences of a batched GEMM; raw is held to 1e-5 above, the map to
      // 1e-4 as in test_attribution_api.
      for (size_t i = 0; i < ma.size(); ++i) EXPECT_NEAR(ma[i], mb[i], 1e-4);
      EXPECT_EQ(r.targets[0], opt.targets[n]);
    }
  }
  expect_no_hooks(*model);
}

TEST(Lrp, ResidualBlockIsAClearErrorAndHooksAreRemoved) {
  Rng rng(1);
  auto model = resnet18_gap(3, 32, rng);
  Tensor x = Tensor::randn({1, 3, 32, 32}, rng);
  try {
    attr::lrp_epsilon(*model, x, {});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer1.0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("BasicBlock"), std::string::npos) << msg;
  }
  expect_no_hooks(*model);
}

TEST(Lrp, BadTargetIsAnErrorAndHooksAreRemoved) {
  Rng rng(2);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::randn({1, 3, 16, 16}, rng);
  attr::Options opt;
  opt.targets = {7};
  try {
    attr::lrp_alphabeta(*model, x, opt);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("7"), std::string::npos) << e.what();
  }
  expect_no_hooks(*model);
  // a module with no LRP rule
  auto seq = std::make_shared<Sequential>();
  seq->emplace<Conv2d>(3, 2, 3, Conv2dOptions(), false, rng);
  seq->emplace<LeakyReLU>();
  seq->emplace<GlobalAvgPool>();
  EXPECT_NO_THROW(attr::lrp_epsilon(*seq, x, {}));  // LeakyReLU is identity for relevance
  expect_no_hooks(*seq);
  // 1,000 calls in a row leave no hooks behind
  for (int i = 0; i < 1000; ++i) attr::lrp_epsilon(*seq, x, {});
  expect_no_hooks(*seq);
}

// lrp-composite on a chain of 1x1 convolutions, every number by hand. x = (3, 1) (two channels, one
// pixel); conv1 = identity (z^B, the first layer, bounds [0, 4]); conv2 = (2, -1) (LRP-gamma: the lower
// half of the two later convs); conv3 = 1 (LRP-eps); GAP; y = 2*3 - 1 = 5.
//   conv2, gamma = 0.25: contributions (6, -1), z = 5, z+ = 6, denominator 5 + 1.5 = 6.5;
//     R = (6 + 1.5, -1) / 6.5 * 5 = (75/13, -10/13)  (LRP-eps would give (6, -1));
//   conv1, z^B with an identity: each input keeps its neuron's relevance. R_x = (75/13, -10/13), sum 5.
TEST(Lrp, CompositeRulesByHand) {
  auto net = std::make_shared<Sequential>();
  auto c1 = net->emplace<Conv2d>(2, 2, 1, Conv2dOptions(), false);
  net->emplace<ReLU>();
  auto c2 = net->emplace<Conv2d>(2, 1, 1, Conv2dOptions(), false);
  net->emplace<ReLU>();
  auto c3 = net->emplace<Conv2d>(1, 1, 1, Conv2dOptions(), false);
  net->emplace<GlobalAvgPool>();
  const float w1[4] = {1, 0, 0, 1}, w2[2] = {2, -1};
  std::copy(w1, w1 + 4, c1->weight.data());
  std::copy(w2, w2 + 2, c2->weight.data());
  c3->weight.data()[0] = 1;
  Tensor x = Tensor::from_vector({1, 2, 1, 1}, {3, 1});
  attr::Options opt;
  opt.lrp_epsilon = 1e-9f;
  opt.lrp_low = {0.f};
  opt.lrp_high = {4.f};
  const auto r = attr::lrp_composite(*net, x, opt);
  EXPECT_NEAR(r.scores[0], 5.f, 1e-6);
  EXPECT_NEAR(r.raw.data()[0], 75.f / 13, 1e-5);
  EXPECT_NEAR(r.raw.data()[1], -10.f / 13, 1e-5);
  opt.lrp_gamma = 0;  // gamma 0 is LRP-eps
  const auto r0 = attr::lrp_composite(*net, x, opt);
  EXPECT_NEAR(r0.raw.data()[0], 6.f, 1e-5);
  EXPECT_NEAR(r0.raw.data()[1], -1.f, 1e-5);
}

// z^B at the first layer, LRP-0 above, on the learner's guide's two-layer net (x = (1, 2, 3),
// W1 = [[1, 0, 1], [-1, 1, 0]], W2 = (1, -2), y = 2) with bounds l = 0, h = 4:
//   LRP-0 at the top: R_h = (4, -2).
//   z^B, neuron 0 (w = (1, 0, 1)): terms x_i w_i - l w_i^+ - h w_i^- = (1, 0, 3), sum 4 -> (1, 0, 3);
//   neuron 1 (w = (-1, 1, 0)): terms (-1 + 4, 2, 0) = (3, 2, 0), sum 5 -> -2 * (3, 2, 0) / 5;
//   R_x = (1 - 1.2, -0.8, 3) = (-0.2, -0.8, 3), sum 2 = y.
TEST(Lrp, CompositeZBoxAndZeroByHand) {
  auto net = guide_two_layer_net();
  Tensor x = Tensor::from_vector({1, 1, 1, 3}, {1, 2, 3});
  attr::Options opt;
  opt.lrp_low = {0.f};
  opt.lrp_high = {4.f};
  const auto r = attr::lrp_composite(*net, x, opt);
  const float want[3] = {-0.2f, -0.8f, 3.f};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(r.raw.data()[i], want[i], 1e-5) << i;
  // Bounds that do not hold the input, or of the wrong length, are errors naming them.
  opt.lrp_high = {2.f};
  EXPECT_NE(glimpse::testing::error_of([&] { attr::lrp_composite(*net, x, opt); }).find("outside z^B's bounds"),
            std::string::npos);
  opt.lrp_high = {4.f, 4.f};
  EXPECT_NE(glimpse::testing::error_of([&] { attr::lrp_composite(*net, x, opt); }).find("lrp_high has 2 values"),
            std::string::npos);
}

// Every rule of the composite conserves relevance on bias-free layers: sum_i R_i = y_c, per image,
// on the bias-free ReLU net (z^B, then gamma, eps, eps by the split, LRP-0 at the linear layer).
TEST(Lrp, CompositeConservesRelevanceOnBiasFreeNet) {
  Rng rng(5);
  auto net = bias_free_net(rng);
  Tensor x = Tensor::uniform({3, 3, 16, 16}, rng, 0.f, 1.f);
  attr::Options opt;
  opt.lrp_epsilon = 1e-9f;
  opt.lrp_low = {0.f};
  opt.lrp_high = {1.f};
  for (int64_t target : {0, 3}) {
    opt.targets = {target, target, target};
    const auto r = attr::lrp_composite(*net, x, opt);
    const auto eps = attr::lrp_epsilon(*net, x, opt);
    for (int64_t n = 0; n < 3; ++n) {
      const double y = r.scores[n];
      EXPECT_NEAR(image_sum(r.raw, n), y, 1e-4 * std::fabs(y) + 1e-7) << "image " << n << " class " << target;
    }
    // ...and it is not LRP-eps under another name.
    const double differs = glimpse::testing::relative_error(r.raw, eps.raw);
    std::printf("class %lld: composite vs LRP-eps, max |difference| / max |LRP-eps| = %.3f\n",
                static_cast<long long>(target), differs);
    EXPECT_GT(differs, 0.05);
  }
  expect_no_hooks(*net);
  // A batch-norm network (folded into its convolutions) runs through by name, with the default bounds.
  auto bn = bn_gap_net(3, 16, rng);
  const auto m = attr::explain("lrp-composite", *bn, Tensor::uniform({1, 3, 16, 16}, rng, -1.f, 1.f));
  ASSERT_EQ(m.map.shape(), (Shape{1, 16, 16}));
  for (float v : m.map.to_vector()) EXPECT_TRUE(std::isfinite(v));
}
