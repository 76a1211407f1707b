// Modules: dotted names, find(), hooks and their lifetime, modes, model shapes, layer gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/init.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "tests/support.h"

using namespace glimpse;

namespace {

std::vector<std::string> keys(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> k;
  for (auto& [n, _] : v) k.push_back(n);
  return k;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

using glimpse::testing::error_of;

}  // namespace

TEST(Modules, SmallGapNetNamesMatchPyTorch) {
  Rng rng(1);
  auto m = small_gap_net(3, 64, rng);
  const std::vector<std::string> expected = {"features.0.weight", "features.0.bias",   "features.3.weight",
                                             "features.3.bias",   "features.6.weight", "features.6.bias",
                                             "classifier.weight", "classifier.bias"};
  EXPECT_EQ(keys(m->named_parameters()), expected);
  EXPECT_TRUE(m->named_buffers().empty());
  EXPECT_EQ(keys(m->state()), expected);

  std::vector<std::string> mods;
  for (auto& [n, _] : m->named_modules()) mods.push_back(n);
  const std::vector<std::string> expected_mods = {"",           "features",   "features.0", "features.1",
                                                  "features.2", "features.3", "features.4", "features.5",
                                                  "features.6", "features.7", "gap",        "classifier"};
  EXPECT_EQ(mods, expected_mods);
  EXPECT_EQ(m->find("features.6").describe(), "Conv2d(64, 128, kernel=3, stride=1, padding=1)");
  EXPECT_EQ(m->find("classifier").describe(), "Linear(128, 3)");
  EXPECT_EQ(m->find("features.7").type_name(), "ReLU");
  EXPECT_EQ(&m->find(""), m.get());
  // 3*32*9+32 + 32*64*9+64 + 64*128*9+128 + 128*3+3
  EXPECT_EQ(m->num_parameters(), 896 + 18496 + 73856 + 387);
  EXPECT_EQ(m->info.cam_layer, "features.7");
  EXPECT_EQ(m->info.input_size, 64);
  for (auto& p : m->parameters()) EXPECT_TRUE(p.requires_grad());
  const std::string s = m->summary();
  EXPECT_NE(s.find("features.3"), std::string::npos);
  EXPECT_NE(s.find("total parameters: 93635"), std::string::npos) << s;
}

TEST(Modules, ResNet18NamesMatchTorchvision) {
  Rng rng(2);
  auto m = resnet18_gap(10, 32, rng);
  auto params = keys(m->named_parameters());
  auto buffers = keys(m->named_buffers());
  for (const char* name : {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.1.conv2.weight",
                           "fc.weight", "fc.bias"})
    EXPECT_TRUE(contains(params, name)) << name;
  for (const char* name : {"bn1.running_mean", "bn1.running_var", "layer3.0.downsample.1.running_var"})
    EXPECT_TRUE(contains(buffers, name)) << name;
  EXPECT_FALSE(contains(params, "layer1.0.downsample.0.weight"));  // identity shortcut in layer1
  EXPECT_FALSE(contains(params, "conv1.bias"));
  // torchvision's resnet18 has 11,689,512 parameters with 1000 classes: 11,176,512 without fc.
  EXPECT_EQ(m->num_parameters(), 11176512 + 512 * 10 + 10);
  EXPECT_EQ(m->find("layer2.0.relu2").type_name(), "ReLU");
  EXPECT_EQ(m->find("layer2.0").describe(), "BasicBlock(64, 128, stride=2, downsample)");
  // state(): parameters and buffers, each module's parameters before its buffers (state_dict order).
  auto st = keys(m->state());
  EXPECT_EQ(st.size(), params.size() + buffers.size());
  EXPECT_EQ(st[0], "conv1.weight");
  EXPECT_EQ(st[1], "bn1.weight");
  EXPECT_EQ(st[3], "bn1.running_mean");
}

TEST(Modules, FindErrorListsEveryName) {
  Rng rng(3);
  auto m = small_gap_net(3, 32, rng);
  const std::string msg = error_of([&] { m->find("features.9"); });
  EXPECT_NE(msg.find("features.9"), std::string::npos);
  for (auto& [name, _] : m->named_modules()) {
    if (name.empty()) continue;
    EXPECT_NE(msg.find("'" + name + "'"), std::string::npos) << name << " missing from: " << msg;
  }
  EXPECT_NE(error_of([&] { m->find("features."); }), "(no error)");
  EXPECT_NE(error_of([&] { m->find("gap.0"); }), "(no error)");
  EXPECT_NE(error_of([&] {
              (void)register_forward_hook(*m, "nope", [](Module&, const Tensor&, const Tensor&) { return Tensor(); });
            }),
            "(no error)");
}

TEST(Modules, RegistrationErrors) {
  Sequential s;
  s.add(std::make_shared<ReLU>());
  EXPECT_NE(error_of([&] { s.add("0", std::make_shared<ReLU>()); }), "(no error)");    // duplicate
  EXPECT_NE(error_of([&] { s.add("a.b", std::make_shared<ReLU>()); }), "(no error)");  // dot
  EXPECT_NE(error_of([&] { s.add(std::shared_ptr<ReLU>()); }), "(no error)");          // null
  s.add("head", std::make_shared<Flatten>());
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.children()[1].first, "head");
  EXPECT_EQ(s[1].type_name(), "Flatten");
  EXPECT_NE(error_of([&] { s.at(5); }), "(no error)");
  // Constructor validation.
  EXPECT_NE(error_of([] { Conv2d(0, 3, 3); }), "(no error)");
  EXPECT_NE(error_of([] { Conv2d(3, 4, 3, Conv2dOptions().group(2)); }), "(no error)");
  EXPECT_NE(error_of([] { Conv2d(3, 4, 3, Conv2dOptions().stride(0)); }), "(no error)");
  EXPECT_NE(error_of([] { Linear(3, 0); }), "(no error)");
  EXPECT_NE(error_of([] { BatchNorm2d(0); }), "(no error)");
  EXPECT_NE(error_of([] { MaxPool2d(2, 2, 2); }), "(no error)");
  EXPECT_NE(error_of([] { Dropout(1.f); }), "(no error)");
  EXPECT_NE(error_of([] { small_gap_net(3, 3); }), "(no error)");
  EXPECT_NE(error_of([] { vgg16_gap(3, 8); }), "(no error)");
  EXPECT_NE(error_of([] { resnet18_gap(0, 64); }), "(no error)");
  const std::string unknown = error_of([] { make_model("vgg19", 3, 64); });
  for (const char* n : {"small-gap", "bn-gap", "vgg16-gap", "resnet18-gap"})
    EXPECT_NE(unknown.find(n), std::string::npos);
}

TEST(Modules, Describe) {
  EXPECT_EQ(Conv2d(3, 32, 3, Conv2dOptions().padding(1)).describe(), "Conv2d(3, 32, kernel=3, stride=1, padding=1)");
  EXPECT_EQ(Conv2d(3, 8, 1, Conv2dOptions().stride(2), false).describe(),
            "Conv2d(3, 8, kernel=1, stride=2, padding=0, bias=false)");
  EXPECT_EQ(MaxPool2d(2).describe(), "MaxPool2d(kernel=2, stride=2, padding=0)");
  EXPECT_EQ(ReLU().describe(), "ReLU");
}

TEST(Modules, DefaultInitBounds) {
  Rng rng(4);
  Conv2d c(8, 16, 3, {}, true, rng);  // fan_in 72
  const float bound = 1.f / std::sqrt(72.f);
  auto w = c.weight.to_vector();
  auto b = c.bias.to_vector();
  float wmax = 0, bmax = 0;
  for (float v : w) wmax = std::max(wmax, std::abs(v));
  for (float v : b) bmax = std::max(bmax, std::abs(v));
  EXPECT_LE(wmax, bound);
  EXPECT_GT(wmax, 0.8f * bound);
  EXPECT_LE(bmax, bound);
  // Same seed, same weights.
  Rng r1(9), r2(9);
  EXPECT_EQ(Linear(5, 4, true, r1).weight.to_vector(), Linear(5, 4, true, r2).weight.to_vector());
  // kaiming_normal_ fan_out relu: std = sqrt(2 / (16*9)).
  Tensor big = Tensor::empty({64, 32, 3, 3});
  init::kaiming_normal_(big, rng, 0.f, init::FanMode::FanOut, init::Nonlinearity::ReLU);
  double ss = 0;
  for (float v : big.to_vector()) ss += double(v) * v;
  EXPECT_NEAR(std::sqrt(ss / big.numel()), std::sqrt(2.0 / (64 * 9)), 0.02 * std::sqrt(2.0 / (64 * 9)));
  init::xavier_uniform_(big, rng);
  const float xb = std::sqrt(6.f / (32 * 9 + 64 * 9));
  for (float v : big.to_vector()) ASSERT_LE(std::abs(v), xb);
}

TEST(Modules, ForwardHooksFireReplaceAndDetach) {
  Rng rng(5);
  auto m = small_gap_net(3, 16, rng);
  m->eval();
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, -1.f, 1.f);
  int calls = 0;
  Shape seen;
  {
    HookHandle h = register_forward_hook(*m, "features.7", [&](Module& mod, const Tensor& in, const Tensor& out) {
      ++calls;
      EXPECT_EQ(mod.type_name(), "ReLU");
      EXPECT_EQ(in.shape(), out.shape());
      seen = out.shape();
      return Tensor();
    });
    EXPECT_TRUE(h.active());
    EXPECT_EQ(m->find("features.7").num_forward_hooks(), 1u);
    (*m)(x);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen, (Shape{2, 128, 4, 4}));
  }
  EXPECT_EQ(m->find("features.7").num_forward_hooks(), 0u);
  (*m)(x);
  EXPECT_EQ(calls, 1);  // removed with the handle

  // Replacing the output: zero features -> the logits are the classifier bias.
  {
    HookHandle h = m->find("gap").register_forward_hook(
        [](Module&, const Tensor&, const Tensor& out) { return Tensor::zeros(out.shape()); });
    auto logits = (*m)(x).to_vector();
    auto bias = dynamic_cast<Linear&>(m->find("classifier")).bias.to_vector();
    for (int n = 0; n < 2; ++n)
      for (int k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(logits[n * 3 + k], bias[k]);
    h.remove();
    EXPECT_FALSE(h.active());
  }
  auto logits = (*m)(x).to_vector();
  auto bias = dynamic_cast<Linear&>(m->find("classifier")).bias.to_vector();
  EXPECT_NE(logits[0], bias[0]);

  // Several hooks run in registration order; a hook may remove itself while running.
  std::vector<int> order;
  HookHandle self;
  HookHandle a = m->find("gap").register_forward_hook([&](Module&, const Tensor&, const Tensor&) {
    order.push_back(1);
    self.remove();
    return Tensor();
  });
  self = std::move(a);
  HookHandle b = m->find("gap").register_forward_hook([&](Module&, const Tensor&, const Tensor&) {
    order.push_back(2);
    return Tensor();
  });
  (*m)(x);
  (*m)(x);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 2}));
}

TEST(Modules, HookHandleOutlivesModule) {
  HookHandle h;
  {
    Rng rng(6);
    auto m = small_gap_net(3, 8, rng);
    h = m->find("features.0").register_forward_hook([](Module&, const Tensor&, const Tensor&) { return Tensor(); });
    EXPECT_TRUE(h.active());
  }
  h.remove();  // the model is gone: must not touch it
  EXPECT_FALSE(h.active());
}

TEST(Modules, TrainEvalRecursive) {
  Rng rng(7);
  auto m = resnet18_gap(3, 32, rng);
  for (auto& [n, mod] : m->named_modules()) EXPECT_TRUE(mod->training()) << n;
  m->eval();
  for (auto& [n, mod] : m->named_modules()) EXPECT_FALSE(mod->training()) << n;
  m->find("layer3").train();
  EXPECT_TRUE(m->find("layer3.1.bn2").training());
  EXPECT_FALSE(m->find("layer2.1.bn2").training());
  m->train();
  for (auto& [n, mod] : m->named_modules()) EXPECT_TRUE(mod->training()) << n;
}

TEST(Modules, SequentialFusesConvReluOnlyWhenNothingWatches) {
  // Under NoGradGuard, Conv2d + ReLU pairs run as one kernel; the output is the same as the
  // unfused modules give with the tape on, and a hook on the ReLU (the CAM layer) still sees the
  // conv's output as its input.
  Rng rng(12);
  auto m = small_gap_net(3, 16, rng);
  m->eval();
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, -1.f, 1.f);
  const std::vector<float> taped = (*m)(x).to_vector();  // parameters require grad: unfused
  NoGradGuard ng;
  const std::vector<float> fused = (*m)(x).to_vector();
  ASSERT_EQ(fused.size(), taped.size());
  for (size_t i = 0; i < fused.size(); ++i) EXPECT_NEAR(fused[i], taped[i], 1e-5f * (1.f + std::abs(taped[i])));
  Shape seen_in, seen_out;
  HookHandle h = register_forward_hook(*m, "features.7", [&](Module&, const Tensor& in, const Tensor& out) {
    seen_in = in.shape();
    seen_out = out.shape();
    float lo = 0;
    for (float v : in.to_vector()) lo = std::min(lo, v);
    EXPECT_LT(lo, 0.f);  // the pre-activation, negatives included
    return Tensor();
  });
  const std::vector<float> hooked = (*m)(x).to_vector();
  EXPECT_EQ(seen_in, (Shape{2, 128, 4, 4}));
  EXPECT_EQ(seen_out, seen_in);
  for (size_t i = 0; i < hooked.size(); ++i) EXPECT_NEAR(hooked[i], fused[i], 1e-5f * (1.f + std::abs(fused[i])));
}

TEST(Modules, FusedReluPoolGivesTheSameGradients) {
  // Training runs ReLU + MaxPool2d(2) pairs fused; with a hook on the ReLUs the pairs run apart.
  // Loss and every parameter gradient agree bit for bit.
  Rng rng(14);
  auto m = small_gap_net(3, 16, rng);
  Tensor x = Tensor::uniform({4, 3, 16, 16}, rng, -1.f, 1.f);
  auto run = [&] {
    m->zero_grad();
    Tensor loss = cross_entropy((*m)(x), {0, 1, 2, 1});
    loss.backward();
    std::vector<float> out = loss.to_vector();
    for (auto& [name, p] : m->named_parameters())
      for (float v : p.grad().to_vector()) out.push_back(v);
    return out;
  };
  const std::vector<float> fused = run();
  auto watch = [](Module&, const Tensor&, const Tensor&) { return Tensor(); };
  HookHandle h1 = register_forward_hook(*m, "features.1", watch), h4 = register_forward_hook(*m, "features.4", watch);
  EXPECT_EQ(run(), fused);
}

TEST(Modules, ZeroGrad) {
  Rng rng(8);
  Linear lin(4, 2, true, rng);
  Tensor x = Tensor::uniform({3, 4}, rng, -1.f, 1.f);
  sum(lin(x)).backward();
  EXPECT_TRUE(lin.weight.grad().defined());
  lin.zero_grad();
  EXPECT_FALSE(lin.weight.grad().defined());
  EXPECT_FALSE(lin.bias.grad().defined());
}

TEST(Modules, ModelOutputShapes) {
  Rng rng(10);
  Tensor x = Tensor::uniform({2, 3, 32, 32}, rng, -1.f, 1.f);
  int64_t vgg_params = 0;
  for (const auto& name : model_names()) {
    auto m = make_model(name, 5, 32, rng);
    if (name == "vgg16-gap") vgg_params = m->num_parameters();
    m->eval();
    EXPECT_EQ(m->info.name, name);
    // The CAM layer exists and gives a spatial map of the recorded size.
    Shape cam;
    HookHandle h = register_forward_hook(*m, m->info.cam_layer, [&](Module&, const Tensor&, const Tensor& out) {
      cam = out.shape();
      return Tensor();
    });
    NoGradGuard ng;
    Tensor y = (*m)(x);
    EXPECT_EQ(y.shape(), (Shape{2, 5})) << name;
    for (float v : y.to_vector()) EXPECT_TRUE(std::isfinite(v)) << name;
    ASSERT_EQ(cam.size(), 4u) << name;
    EXPECT_EQ(cam[2], m->info.feature_size()) << name;
  }
  // bn-gap: 7 bias-free 3x3 convs, a BatchNorm (weight + bias) after each, linear 128 -> 5.
  auto bn = bn_gap_net(5, 32, rng);
  const int64_t convs = 9 * (3 * 32 + 32 * 32 + 32 * 32 + 32 * 64 + 64 * 64 + 64 * 128 + 128 * 128);
  EXPECT_EQ(bn->num_parameters(), convs + 2 * (32 + 32 + 32 + 64 + 64 + 128 + 128) + 128 * 5 + 5);
  EXPECT_EQ(bn->find("features.22").type_name(), "BatchNorm2d");
  EXPECT_EQ(bn->find("features.23").type_name(), "ReLU");
  EXPECT_EQ(make_model("bn-gap", 3)->info.input_size, 96);
  // bn-gap-fine: the same parameters (dilation adds none), no third pool, CAM at 1/4 of the input.
  auto fine = bn_gap_fine_net(5, 32, rng);
  EXPECT_EQ(fine->num_parameters(), bn->num_parameters());
  EXPECT_EQ(fine->info.cam_layer, "features.22");
  EXPECT_EQ(fine->find("features.22").type_name(), "ReLU");
  EXPECT_EQ(fine->find("features.20").describe(),
            "Conv2d(128, 128, kernel=3, stride=1, padding=2, dilation=2, bias=false)");
  EXPECT_EQ(fine->info.feature_size(), 8);
  // Default input size from the registry; vgg16 without the extra conv has the 13 convs only.
  EXPECT_EQ(make_model("small-gap", 3)->info.input_size, 64);
  auto v13 = vgg16_gap(5, 32, rng, false);
  EXPECT_EQ(vgg_params - v13->num_parameters(), 512 * 512 * 9 + 512);  // the extra conv
  // torchvision's vgg16 features: 14,714,688 parameters.
  EXPECT_EQ(v13->num_parameters(), 14714688 + 512 * 5 + 5);
  EXPECT_EQ(v13->info.cam_layer, "features.29");
  EXPECT_EQ(v13->find("features.28").describe(), "Conv2d(512, 512, kernel=3, stride=1, padding=1)");
  EXPECT_EQ(v13->find("features.23").type_name(), "MaxPool2d");
  // Input validation at forward time.
  auto small = small_gap_net(3, 32, rng);
  EXPECT_NE(error_of([&] { (*small)(Tensor::zeros({1, 1, 32, 32})); }), "(no error)");
  EXPECT_NE(error_of([&] { (*small)(Tensor::zeros({1, 3, 2, 2})); }), "(no error)");
}

TEST(Modules, BatchNormRunningStats) {
  BatchNorm2d bn(2, 1e-5f, 0.5f);
  Rng rng(11);
  Tensor x = Tensor::uniform({4, 2, 3, 3}, rng, 0.f, 2.f);
  bn(x);
  auto rm = bn.running_mean.to_vector();
  EXPECT_GT(rm[0], 0.2f);  // moved halfway towards the batch mean (about 1)
  EXPECT_LT(rm[0], 0.8f);
  bn.eval();
  Tensor y = bn(x);  // eval uses the running statistics
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(bn.running_mean.to_vector(), rm);
}

TEST(Modules, DropoutSeededAndEvalIdentity) {
  Tensor x = Tensor::ones({4, 64});
  Dropout d1(0.5f, 42), d2(0.5f, 42);
  EXPECT_EQ(d1(x).to_vector(), d2(x).to_vector());
  d1.eval();
  EXPECT_EQ(d1(x).to_vector(), x.to_vector());
}

TEST(Modules, GradcheckLinear) {
  Rng rng(12);
  Linear lin(5, 3, true, rng);
  Tensor x = Tensor::uniform({4, 5}, rng, -1.f, 1.f).set_requires_grad();
  auto res = gradcheck([&](const std::vector<Tensor>& in) { return lin(in[0]); }, {x, lin.weight, lin.bias});
  EXPECT_TRUE(res.ok) << res.report;
  EXPECT_GT(res.checked, 0);
}

// Sets every BatchNorm of `block` to gamma in [0.5, 1], beta = +5 / -5 / +5 ... by channel (the
// shortcut's BN: beta 0, gamma 0.5), so each ReLU unit sits far on one side of its kink: channels
// with beta +5 pass everything, with -5 nothing. In train mode BN couples all values of a channel,
// so a finite difference otherwise moves hundreds of pre-ReLU values at once and some cross zero
// unnoticed, which no step size avoids in float32; away from the kinks the check is sharp.
void set_bn_away_from_kinks(BasicBlock& block, Rng& rng) {
  for (auto& [name, m] : block.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      const bool shortcut = name.find("downsample") != std::string::npos;
      init::uniform_(bn->weight, rng, 0.5f, shortcut ? 0.5f : 1.f);
      float* b = bn->bias.data();
      for (int64_t c = 0; c < bn->num_features; ++c) b[c] = shortcut ? 0.f : (c % 2 ? -5.f : 5.f);
    }
}

TEST(Modules, GradcheckBasicBlockTrainMode) {
  for (int64_t stride : {1, 2}) {
    Rng rng(13 + stride);
    BasicBlock block(stride == 1 ? 3 : 2, 3, stride, rng);  // identity shortcut, then 1x1 conv + BN
    block.train();
    set_bn_away_from_kinks(block, rng);
    Tensor x = Tensor::uniform({2, block.in_channels, 5, 5}, rng, -1.f, 1.f).set_requires_grad();
    std::vector<Tensor> inputs = {x};
    for (auto& p : block.parameters()) inputs.push_back(p);
    GradcheckOptions opt;
    opt.step = 3e-3f;
    opt.max_points = 64;
    auto res = gradcheck([&](const std::vector<Tensor>& in) { return block(in[0]); }, inputs, opt);
    EXPECT_TRUE(res.ok) << "stride " << stride << ": " << res.report;
    EXPECT_LT(res.skipped_kinks, res.checked / 10);  // only BN's curvature at a few points
    EXPECT_GT(res.checked, 0);
  }
}
