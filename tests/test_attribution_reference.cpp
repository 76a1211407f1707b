// glimpse's attribution maps against PyTorch: the fixture of tools/make_attribution_reference.py
// holds small_gap_net(3)'s weights (torch.manual_seed(1)), two 32x32 images, fixed targets and the
// maps PyTorch computes (in float64) for Grad-CAM, Grad-CAM++, guided backprop, saliency,
// Integrated Gradients (64 trapezoid intervals, zero baseline) and occlusion (window 8, stride 4,
// fill 0; the exact definition is at the top of the script). Each must agree within a relative
// error of 1e-4 (max |got - ref| / max |ref|).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "core/io/safetensors.h"
#include "layers/checkpoint.h"
#include "layers/models.h"
#include "tests/support.h"

using namespace glimpse;
using glimpse::testing::expect_close;

namespace {

const std::string kReference = std::string(GLIMPSE_TEST_FIXTURES) + "/attribution_reference.safetensors";
constexpr double kTolerance = 1e-4;

class AttributionReference : public ::testing::Test {
 protected:
  void SetUp() override {
    ref = load_safetensors(kReference);
    model = small_gap_net(3, 32);
    CheckpointLoad r = load_checkpoint(*model, kReference, /*strict=*/false);
    ASSERT_TRUE(r.missing.empty());
    x = ref.at("input");
    for (float t : ref.at("targets").to_vector()) opt.targets.push_back(static_cast<int64_t>(t));
    opt.layer = "features.7";
  }
  SafetensorsFile ref;
  std::shared_ptr<Model> model;
  Tensor x;
  attr::Options opt;
};

}  // namespace

TEST_F(AttributionReference, GradCam) {
  attr::AttributionMap m = attr::gradcam(*model, x, opt);
  EXPECT_EQ(m.layer, "features.7");
  EXPECT_EQ(m.targets, opt.targets);
  expect_close("gradcam", m.raw, ref.at("gradcam"), kTolerance);
  std::vector<float> logits = ref.at("logits").to_vector();
  EXPECT_NEAR(m.scores[0], logits[0 * 3 + opt.targets[0]], 1e-5);
  EXPECT_NEAR(m.scores[1], logits[1 * 3 + opt.targets[1]], 1e-5);
}

TEST_F(AttributionReference, GradCamPlusPlus) {
  expect_close("gradcam++", attr::gradcam_plus_plus(*model, x, opt).raw, ref.at("gradcampp"), kTolerance);
}

TEST_F(AttributionReference, GuidedBackprop) {
  expect_close("guided-backprop", attr::guided_backprop(*model, x, opt).raw, ref.at("guided_backprop"), kTolerance);
}

TEST_F(AttributionReference, Saliency) {
  attr::AttributionMap m = attr::saliency(*model, x, opt);
  expect_close("saliency (raw)", m.raw, ref.at("saliency"), kTolerance);
  // map = max over colour channels of |grad|, then normalized per image.
  std::vector<float> g = ref.at("saliency").to_vector();
  Tensor mx = Tensor::zeros({2, 32, 32});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 1024; ++p)
        mx.data()[i * 1024 + p] = std::max(mx.data()[i * 1024 + p], std::fabs(g[(i * 3 + c) * 1024 + p]));
  expect_close("saliency (map)", m.map, attr::normalize_maps(mx), kTolerance);
}

TEST_F(AttributionReference, IntegratedGradients) {
  opt.ig_steps = 64;
  attr::AttributionMap m = attr::integrated_gradients(*model, x, opt);
  expect_close("integrated-grads", m.raw, ref.at("ig"), kTolerance);
}

TEST_F(AttributionReference, Occlusion) {
  opt.occlusion_window = 8;
  opt.occlusion_stride = 4;
  opt.occlusion_fill = 0.f;
  attr::AttributionMap m = attr::occlusion(*model, x, opt);
  expect_close("occlusion", m.raw, ref.at("occlusion"), kTolerance);
}
