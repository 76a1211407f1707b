// The contract of attribution/attribution.h, for every method by name (explain):
//   - a batch with one target per image gives the same maps as one image at a time;
//   - every hook is removed on return, and on an exception; 1,000 Grad-CAM calls leave none;
//   - no parameter gets a .grad (the backward stops at the input or the layer);
//   - result shapes, targets, scores; bad input gives a clear error naming the value at fault.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "tests/support.h"

using namespace glimpse;

namespace {

// max |a - b| / max |b|, or max |a - b| against an all-zero b (NaN-aware: tests/support.h).
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  const glimpse::testing::Mismatch m = glimpse::testing::worst_mismatch(a, b);
  return m.scale == 0 ? m.error : m.error / m.scale;
}

std::vector<float> row(const Tensor& t, int64_t i) { return t.slice(i, i + 1).contiguous().to_vector(); }

attr::Options small_options() {
  attr::Options o;
  o.smoothgrad_samples = 4;
  o.ig_steps = 8;
  o.occlusion_window = 4;
  o.occlusion_stride = 4;
  o.sliding_window = 8;
  o.sliding_stride = 4;
  o.scorecam_batch = 16;
  return o;
}

size_t total_forward_hooks(Module& m) {
  size_t n = 0;
  for (auto& [name, mod] : m.named_modules()) n += mod->num_forward_hooks();
  return n;
}

void expect_no_param_grads(Module& m, const std::string& method) {
  for (auto& [name, p] : m.named_parameters())
    EXPECT_FALSE(p.grad().defined()) << method << " left a .grad on " << name;
}

using glimpse::testing::error_of;

}  // namespace

TEST(AttributionApi, MethodNamesCoverTheHeader) {
  std::vector<std::string> expect = {"cam",
                                     "gradcam",
                                     "gradcam++",
                                     "layercam",
                                     "hirescam",
                                     "scorecam",
                                     "deconvnet",
                                     "guided-backprop",
                                     "guided-gradcam",
                                     "saliency",
                                     "smoothgrad",
                                     "integrated-gradients",
                                     "gradient-x-input",
                                     "occlusion",
                                     "sliding-window",
                                     "lrp-epsilon",
                                     "lrp-alphabeta",
                                     "lrp-composite",
                                     "sam"};
  std::vector<std::string> got = attr::method_names();
  std::sort(expect.begin(), expect.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expect);
  std::string e = error_of([] {
    auto m = small_gap_net(2, 8);
    attr::explain("grad-cam", *m, Tensor::zeros({1, 3, 8, 8}));
  });
  EXPECT_NE(e.find("grad-cam"), std::string::npos) << e;
  EXPECT_NE(e.find("gradcam++"), std::string::npos) << e;  // lists the known names
}

TEST(AttributionApi, BatchEqualsOneImageAtATimeForEveryMethod) {
  Rng rng(101);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::uniform({3, 3, 16, 16}, rng, -1.f, 1.f);
  attr::Options opt = small_options();
  opt.targets = {2, 0, 1};
  for (const std::string& name : attr::method_names()) {
    SCOPED_TRACE(name);
    attr::AttributionMap b = attr::explain(name, *model, x, opt);
    EXPECT_EQ(b.method, name);
    EXPECT_EQ(b.targets, opt.targets);
    ASSERT_EQ(b.scores.size(), 3u);
    ASSERT_TRUE(b.raw.defined());
    EXPECT_EQ(b.raw.size(0), 3);
    ASSERT_TRUE(b.map.defined());
    EXPECT_EQ(b.map.shape(), (Shape{3, 16, 16}));
    for (float v : b.map.to_vector()) ASSERT_TRUE(v >= 0.f && v <= 1.f) << v;
    EXPECT_EQ(total_forward_hooks(*model), 0u);
    expect_no_param_grads(*model, name);
    for (int64_t i = 0; i < 3; ++i) {
      attr::Options one = opt;
      one.targets = {opt.targets[i]};
      attr::AttributionMap s = attr::explain(name, *model, x.slice(i, i + 1).contiguous(), one);
      EXPECT_NEAR(s.scores[0], b.scores[i], 1e-5);
      EXPECT_LE(rel_err(row(b.raw, i), s.raw.to_vector()), 1e-5) << "raw, image " << i;
      EXPECT_LE(rel_err(row(b.map, i), s.map.to_vector()), 1e-4) << "map, image " << i;
    }
  }
}

TEST(AttributionApi, PredictedTargetsByDefault) {
  Rng rng(102);
  auto model = small_gap_net(4, 16, rng);
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, -1.f, 1.f);
  Tensor logits;
  {
    NoGradGuard ng;
    model->eval();
    logits = (*model)(x);
  }
  std::vector<int64_t> pred = argmax_rows(logits);
  for (const char* name : {"gradcam", "saliency", "cam", "scorecam"}) {
    attr::AttributionMap m = attr::explain(name, *model, x, small_options());
    EXPECT_EQ(m.targets, pred) << name;
    EXPECT_NEAR(m.scores[1], logits.at({1, pred[1]}), 1e-5) << name;
  }
}

TEST(AttributionApi, ShapesOfRawAndMap) {
  Rng rng(103);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, -1.f, 1.f);
  attr::Options opt;
  EXPECT_EQ(attr::gradcam(*model, x, opt).raw.shape(), (Shape{2, 4, 4}));
  EXPECT_EQ(attr::saliency(*model, x, opt).raw.shape(), (Shape{2, 3, 16, 16}));
  opt.layer = "features.1";  // a shallow layer: 16x16
  attr::AttributionMap g = attr::gradcam(*model, x, opt);
  EXPECT_EQ(g.layer, "features.1");
  EXPECT_EQ(g.raw.shape(), (Shape{2, 16, 16}));
  attr::AttributionMap s = attr::sam(*model, x, opt);
  EXPECT_EQ(s.layer, "features.1");
  EXPECT_EQ(s.raw.shape(), (Shape{2, 3, 16, 16}));
  opt.upsample = false;
  opt.normalize = false;
  EXPECT_FALSE(attr::gradcam(*model, x, opt).map.defined());
  opt.normalize = true;  // normalize alone still gives [N, H, W]
  EXPECT_EQ(attr::gradcam(*model, x, opt).map.shape(), (Shape{2, 16, 16}));
  // The model's own training flags come back after the call.
  model->train();
  attr::gradcam(*model, x);
  for (auto& [name, m] : model->named_modules()) EXPECT_TRUE(m->training()) << name;
}

TEST(AttributionApi, HooksRemovedOnException) {
  Rng rng(104);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, -1.f, 1.f);
  for (const std::string& name : attr::method_names()) {
    SCOPED_TRACE(name);
    {
      // A user hook above the target layer throws in the middle of the method's forward pass.
      HookHandle boom = register_forward_hook(
          *model, "classifier", [](Module&, const Tensor&, const Tensor&) -> Tensor { throw Error("boom"); });
      EXPECT_THROW(attr::explain(name, *model, x, small_options()), Error);
    }
    EXPECT_EQ(model->find("features.7").num_forward_hooks(), 0u);
    EXPECT_EQ(total_forward_hooks(*model), 0u);
    EXPECT_TRUE(grad_enabled());
    EXPECT_EQ(relu_rule(), ReluRule::Standard);
  }
}

TEST(AttributionApi, ThousandGradCamCallsLeaveNoHooks) {
  Rng rng(105);
  auto model = small_gap_net(2, 8, rng);
  Tensor x = Tensor::uniform({1, 3, 8, 8}, rng, -1.f, 1.f);
  attr::Options opt;
  opt.upsample = opt.normalize = false;
  std::vector<float> first;
  for (int i = 0; i < 1000; ++i) {
    attr::AttributionMap m = attr::gradcam(*model, x, opt);
    ASSERT_EQ(model->find("features.7").num_forward_hooks(), 0u) << "call " << i;
    if (i == 0)
      first = m.raw.to_vector();
    else
      ASSERT_EQ(m.raw.to_vector(), first) << "call " << i;
  }
  EXPECT_EQ(total_forward_hooks(*model), 0u);
  expect_no_param_grads(*model, "gradcam");
}

TEST(AttributionApi, ClearErrors) {
  Rng rng(106);
  auto model = small_gap_net(3, 16, rng);
  Tensor x = Tensor::uniform({2, 3, 16, 16}, rng, -1.f, 1.f);
  attr::Options opt;

  opt.layer = "features.77";
  std::string e = error_of([&] { attr::gradcam(*model, x, opt); });
  EXPECT_NE(e.find("features.77"), std::string::npos) << e;
  EXPECT_NE(e.find("features.7'"), std::string::npos) << "should list the valid names: " << e;

  opt.layer = "classifier";
  e = error_of([&] { attr::gradcam(*model, x, opt); });
  EXPECT_NE(e.find("classifier"), std::string::npos) << e;
  EXPECT_NE(e.find("spatial"), std::string::npos) << e;
  opt.layer.clear();

  opt.targets = {0, 3};
  e = error_of([&] { attr::gradcam(*model, x, opt); });
  EXPECT_NE(e.find("target class 3"), std::string::npos) << e;
  EXPECT_NE(e.find("3 classes"), std::string::npos) << e;
  opt.targets = {0};
  e = error_of([&] { attr::saliency(*model, x, opt); });
  EXPECT_NE(e.find("1 targets for a batch of 2"), std::string::npos) << e;
  opt.targets.clear();

  e = error_of([&] { attr::gradcam(*model, Tensor::zeros({1, 1, 16, 16}), opt); });
  EXPECT_NE(e.find("1 channels"), std::string::npos) << e;
  EXPECT_NE(e.find("expects 3"), std::string::npos) << e;
  e = error_of([&] { attr::gradcam(*model, Tensor::zeros({3, 16, 16}), opt); });
  EXPECT_NE(e.find("[3, 16, 16]"), std::string::npos) << e;
  e = error_of([&] { attr::gradcam(*model, Tensor::zeros({1, 3, 2, 2}), opt); });
  EXPECT_NE(e.find("2x2"), std::string::npos) << e;

  // CAM on a head that is not GAP -> Linear suggests Grad-CAM.
  auto flat_head = std::make_shared<Sequential>();
  flat_head->emplace<Conv2d>(3, 4, 3, Conv2dOptions{}.padding(1), true, rng);
  flat_head->emplace<ReLU>();
  flat_head->emplace<Flatten>();
  flat_head->emplace<Linear>(4 * 16 * 16, 2, true, rng);
  e = error_of([&] { attr::cam(*flat_head, x, opt); });
  EXPECT_NE(e.find("GlobalAvgPool"), std::string::npos) << e;
  EXPECT_NE(e.find("gradcam"), std::string::npos) << e;
  // ... where Grad-CAM itself works (default layer: the last spatial module, "1").
  attr::AttributionMap g = attr::gradcam(*flat_head, x, opt);
  EXPECT_EQ(g.layer, "1");
  // CAM on another layer than the GAP's input suggests Grad-CAM too.
  opt.layer = "features.4";
  e = error_of([&] { attr::cam(*model, x, opt); });
  EXPECT_NE(e.find("gradcam"), std::string::npos) << e;
}

TEST(AttributionApi, DefaultLayerWithoutModelInfo) {
  Rng rng(107);
  auto net = std::make_shared<Sequential>();
  net->emplace<Conv2d>(3, 4, 3, Conv2dOptions{}.padding(1), true, rng);
  net->emplace<ReLU>();
  net->emplace<MaxPool2d>(2);
  net->emplace<Conv2d>(4, 4, 3, Conv2dOptions{}.padding(1), true, rng);
  net->emplace<ReLU>();
  net->emplace<GlobalAvgPool>();
  net->emplace<Linear>(4, 2, true, rng);
  Tensor x = Tensor::zeros({1, 3, 8, 8});
  EXPECT_EQ(attr::default_layer(*net, x), "4");
  auto model = resnet18_gap(2, 32, rng);
  EXPECT_EQ(attr::default_layer(*model, Tensor::zeros({1, 3, 32, 32})), "layer4");
}
