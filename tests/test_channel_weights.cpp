// attr::channel_weights, the inside of CAM and Grad-CAM that the explorer's glass-box view shows:
//   - CAM's weights are the classifier's row of the target (read here from the Linear itself);
//   - Grad-CAM's weights are W[c, k] / hw on a GAP -> Linear net (dy_c/dA_k is constant there);
//   - sum_k weights[k] A_k, recomputed here channel by channel, is cam()'s raw map, and its ReLU is
//     gradcam()'s;
//   - CAM's A_k are the activations of the GAP's input: their spatial means, weighted, plus the bias
//     give the target's logit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "attribution/attribution.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/models.h"

using namespace glimpse;

namespace {

Tensor weighted(const attr::ChannelWeights& c, bool relu) {
  const int64_t k = c.A.size(0), hw = c.A.size(1) * c.A.size(2);
  Tensor out = Tensor::zeros({c.A.size(1), c.A.size(2)});
  for (int64_t ch = 0; ch < k; ++ch)
    for (int64_t p = 0; p < hw; ++p) out.data()[p] += c.weights[static_cast<size_t>(ch)] * c.A.data()[ch * hw + p];
  if (relu)
    for (int64_t p = 0; p < hw; ++p) out.data()[p] = std::max(out.data()[p], 0.f);
  return out;
}

}  // namespace

TEST(ChannelWeights, CamAndGradCamAreWeightedSumsOfTheirFeatureMaps) {
  Rng rng(7);
  auto model = small_gap_net(3, 16, rng);
  const Tensor x = Tensor::uniform({1, 3, 16, 16}, rng, -1.f, 1.f);
  const auto& lin = dynamic_cast<Linear&>(model->find("classifier"));
  for (int64_t target = 0; target < 3; ++target) {
    attr::Options opt;
    opt.targets = {target};
    const attr::ChannelWeights c = attr::channel_weights("cam", *model, x, opt);
    const attr::ChannelWeights g = attr::channel_weights("gradcam", *model, x, opt);
    ASSERT_EQ(c.A.dim(), 3);
    const int64_t k = c.A.size(0), hw = c.A.size(1) * c.A.size(2);
    ASSERT_EQ(static_cast<int64_t>(c.weights.size()), k);
    ASSERT_EQ(g.A.shape(), c.A.shape());
    EXPECT_EQ(c.target, target);
    for (int64_t ch = 0; ch < k; ++ch) {
      EXPECT_FLOAT_EQ(c.weights[static_cast<size_t>(ch)], lin.weight.data()[target * k + ch]) << ch;
      EXPECT_NEAR(g.weights[static_cast<size_t>(ch)] * static_cast<float>(hw), c.weights[static_cast<size_t>(ch)], 1e-5)
          << "Grad-CAM's alpha_k = W[c,k]/hw on a GAP net, channel " << ch;
    }
    const Tensor cam_raw = attr::cam(*model, x, opt).raw, grad_raw = attr::gradcam(*model, x, opt).raw;
    const Tensor cw = weighted(c, false), gw = weighted(g, true);
    for (int64_t p = 0; p < hw; ++p) {
      EXPECT_NEAR(cw.data()[p], cam_raw.data()[p], 1e-5);
      EXPECT_NEAR(c.raw.data()[p], cam_raw.data()[p], 1e-6);
      EXPECT_NEAR(gw.data()[p], grad_raw.data()[p], 1e-5);
      EXPECT_NEAR(g.raw.data()[p], grad_raw.data()[p], 1e-6);
    }
    // y_c = sum_k w_k mean(A_k) + b_c.
    double y = lin.bias.data()[target];
    for (int64_t ch = 0; ch < k; ++ch) {
      double mean = 0;
      for (int64_t p = 0; p < hw; ++p) mean += c.A.data()[ch * hw + p];
      y += c.weights[static_cast<size_t>(ch)] * mean / static_cast<double>(hw);
    }
    Tensor logits;
    {
      NoGradGuard no_grad;
      logits = (*model)(x);
    }
    EXPECT_NEAR(y, logits.data()[target], 1e-4);
  }
  EXPECT_THROW(attr::channel_weights("saliency", *model, x), Error);
}
