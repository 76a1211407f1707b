// The receptive-field recomputation (attribution/local_forward.h) against whole forward passes of
// the same copies, and occlusion through it against occlusion on whole copies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "attribution/local_forward.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "support.h"

using namespace glimpse;
using glimpse::testing::expect_close;

namespace {

// A chain with every kind of step the plan knows and the awkward geometry: a 5x5 convolution with
// padding 2 and stride 2, a dilated one, a padding-0 one, max pooling 3/2 with padding 1 (its pad
// must never win), average pooling 3/2 with padding 1 (pad counts as 0), batch norm with running
// statistics, leaky ReLU, dropout in eval mode, and a two-layer head.
class OddChain : public Model {
 public:
  explicit OddChain(Rng& rng) : Model("OddChain", {"odd-chain", 4, 29, 3, 4, "features.4"}) {
    auto f = register_module("features", std::make_shared<Sequential>());
    f->add(std::make_shared<Conv2d>(3, 8, 5, Conv2dOptions().padding(2).stride(2), true, rng));
    auto bn = f->add(std::make_shared<BatchNorm2d>(8));
    bn->running_mean = Tensor::randn({8}, rng, 0.f, 0.3f);
    bn->running_var = Tensor::uniform({8}, rng, 0.5f, 2.f);
    bn->weight = Tensor::uniform({8}, rng, 0.5f, 1.5f);
    bn->bias = Tensor::randn({8}, rng, 0.f, 0.2f);
    f->add(std::make_shared<LeakyReLU>(0.1f));
    f->add(std::make_shared<MaxPool2d>(3, 2, 1));
    f->add(std::make_shared<Conv2d>(8, 12, 3, Conv2dOptions().padding(2).dilation(2), true, rng));
    f->add(std::make_shared<ReLU>());
    f->add(std::make_shared<Dropout>(0.5f));
    f->add(std::make_shared<AvgPool2d>(3, 2, 1));
    f->add(std::make_shared<Conv2d>(12, 16, 3, Conv2dOptions(), true, rng));  // padding 0
    f->add(std::make_shared<ReLU>());
    register_module("gap", std::make_shared<GlobalAvgPool>());
    register_module("fc1", std::make_shared<Linear>(16, 10, true, rng));
    register_module("act", std::make_shared<ReLU>());
    register_module("fc2", std::make_shared<Linear>(10, 4, true, rng));
  }
  bool is_chain() const override { return true; }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (const auto& [name, child] : children()) y = (*child)(y);
    return y;
  }
};

// Running statistics away from 0 / 1, so that eval-mode batch norm is a real per-channel affine map.
void randomize_running_statistics(Module& net, Rng& rng) {
  for (auto& [name, m] : net.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      bn->running_mean = Tensor::randn({bn->num_features}, rng, 0.f, 0.2f);
      bn->running_var = Tensor::uniform({bn->num_features}, rng, 0.5f, 2.f);
    }
}

// Copies of image [1, C, H, W] with patches [B, C, h, w] pasted at (ys[b], xs[b]): the reference.
Tensor pasted(const Tensor& image, const Tensor& patches, const std::vector<int64_t>& ys,
              const std::vector<int64_t>& xs) {
  const int64_t B = patches.size(0), C = image.size(1), H = image.size(2), W = image.size(3);
  const int64_t h = patches.size(2), w = patches.size(3);
  Tensor out = Tensor::empty({B, C, H, W});
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(image.data(), C * H * W, out.data() + b * C * H * W);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j)
          out.data()[((b * C + c) * H + ys[b] + i) * W + xs[b] + j] = patches.data()[((b * C + c) * h + i) * w + j];
  }
  return out;
}

// Patches of every size in `sides` at random places, plus the four corners and the whole image:
// the local logits against whole forwards.
void check_model(Module& model, int64_t C, int64_t S, const std::vector<int64_t>& sides, uint64_t seed) {
  Rng rng(seed);
  model.eval();
  const Tensor image = Tensor::randn({1, C, S, S}, rng);
  const std::optional<attr::LocalForward> lf = attr::LocalForward::plan(model, image);
  ASSERT_TRUE(lf.has_value()) << "no plan for " << model.type_name();
  NoGradGuard no_grad;
  for (int64_t side : sides) {
    std::vector<int64_t> ys = {0, 0, S - side, S - side}, xs = {0, S - side, 0, S - side};
    for (int k = 0; k < 6; ++k) {
      ys.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(S - side + 1))));
      xs.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(S - side + 1))));
    }
    const int64_t B = static_cast<int64_t>(ys.size());
    const Tensor patches = Tensor::randn({B, C, side, side}, rng, 0.5f, 2.f);
    const Tensor want = model(pasted(image, patches, ys, xs));
    const Tensor got = lf->logits(patches, ys, xs);
    expect_close(model.type_name() + " patch " + std::to_string(side), got, want, 1e-5);
    // not vacuous: the patches move the logits far more than the two paths disagree
    const Tensor clean = model(pasted(image, Tensor::zeros({B, C, 0, 0}), std::vector<int64_t>(B, 0), xs));
    EXPECT_GT(glimpse::testing::max_abs_error(want, clean), 100 * glimpse::testing::max_abs_error(got, want))
        << "patch " << side;
  }
}

}  // namespace

TEST(LocalForward, SmallGapOddSideMatchesWholeCopies) {
  Rng rng(1);
  auto net = small_gap_net(3, 37, rng);
  check_model(*net, 3, 37, {1, 4, 8, 13, 37}, 11);
}

TEST(LocalForward, BatchNormNetsMatchWholeCopies) {
  Rng rng(2);
  for (const char* arch : {"bn-gap", "bn-gap-fine"}) {
    auto net = make_model(arch, 3, 40, rng);
    randomize_running_statistics(*net, rng);
    check_model(*net, 3, 40, {2, 8, 11}, 12);
  }
}

TEST(LocalForward, StridedDilatedPaddedPoolsMatchWholeCopies) {
  Rng rng(3);
  OddChain net(rng);
  check_model(net, 3, 29, {1, 3, 6, 29}, 13);
}

// ResNet-18: residual blocks with identity and strided 1x1 downsample shortcuts, a 7x7/2 stem and
// a padded 3x3/2 max pool.
TEST(LocalForward, ResNetBlocksMatchWholeCopies) {
  Rng rng(6);
  auto net = resnet18_gap(3, 64, rng);
  randomize_running_statistics(*net, rng);
  check_model(*net, 3, 64, {3, 8, 20}, 14);
}

TEST(LocalForward, RefusesWhatItCannotRecompute) {
  Rng rng(4);
  const Tensor image = Tensor::randn({1, 3, 32, 32}, rng);
  OddChain odd(rng);
  odd.eval();
  EXPECT_TRUE(attr::LocalForward::plan(odd, image).has_value());
  // the same children behind a forward() that is not declared a chain
  struct Opaque : OddChain {
    using OddChain::OddChain;
    bool is_chain() const override { return false; }
  } opaque(rng);
  opaque.eval();
  EXPECT_FALSE(attr::LocalForward::plan(opaque, image).has_value()) << "a forward the plan cannot read";

  auto net = make_model("bn-gap", 3, 32, rng);
  net->train();
  EXPECT_FALSE(attr::LocalForward::plan(*net, image).has_value()) << "batch norm in training mode mixes images";
  net->eval();
  EXPECT_TRUE(attr::LocalForward::plan(*net, image).has_value());
  {
    HookHandle h =
        net->find("features.5").register_forward_hook([](Module&, const Tensor&, const Tensor&) { return Tensor(); });
    EXPECT_FALSE(attr::LocalForward::plan(*net, image).has_value()) << "a hook may change an output";
  }
  EXPECT_FALSE(attr::LocalForward::plan(*net, Tensor::randn({2, 3, 32, 32}, rng)).has_value()) << "one image";
}

// attr::occlusion takes the local path on a chain (Options::occlusion_local, the default) and
// whole copies without it; both maps must agree.
TEST(LocalForward, OcclusionEqualsWholeCopies) {
  Rng rng(5);
  auto net = small_gap_net(3, 45, rng);
  const Tensor x = Tensor::randn({3, 3, 45, 45}, rng);
  attr::Options opt;
  opt.occlusion_window = 7;
  opt.occlusion_stride = 3;
  opt.occlusion_fill = 0.1f;
  opt.normalize = false;
  const attr::AttributionMap local = attr::occlusion(*net, x, opt);
  opt.occlusion_local = false;
  const attr::AttributionMap whole = attr::occlusion(*net, x, opt);
  // raw values are differences of logits, so either path's rounding of a logit (~1e-7 of its size,
  // above) shows at the logits' scale, not at raw's: compare on that scale.
  double logit_scale = 0;
  for (float s : whole.scores) logit_scale = std::max(logit_scale, std::fabs(static_cast<double>(s)));
  const double err = glimpse::testing::max_abs_error(local.raw, whole.raw);
  std::printf("  occlusion raw: max |local - whole| = %.3e, logit scale %.3f\n", err, logit_scale);
  EXPECT_LE(err, 1e-5 * logit_scale);
  EXPECT_EQ(local.targets, whole.targets);
}
