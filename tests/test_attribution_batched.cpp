// The batched attribution paths (issue #14) against one image, one step at a time: each method
// packs many perturbed copies -- of several images, several steps or samples -- into one forward
// pass, and must give what the straightforward loop gives, up to float rounding (relative error
// <= 1e-5). Odd sizes throughout (3 images of 19 x 23, windows and batches that do not divide the
// counts), so that a forward batch spans image boundaries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "attribution/attribution.h"
#include "attribution/metrics.h"
#include "core/rng.h"
#include "layers/models.h"
#include "support.h"

using namespace glimpse;
using namespace glimpse::attr;
using glimpse::testing::expect_close;

namespace {

constexpr double kTol = 1e-5;

struct Fixture {
  std::shared_ptr<Model> net;
  Tensor x;  // [3, 3, 19, 23]
  Fixture() {
    Rng init(11), data(12);
    net = small_gap_net(3, 19, init);
    x = Tensor::uniform({3, 3, 19, 23}, data, -1.f, 1.f);
  }
  Tensor image(int64_t i) const { return x.slice(i, i + 1).contiguous(); }
};

// [N, ...] from N tensors of [1, ...].
Tensor stack(const std::vector<Tensor>& parts) {
  Shape s = parts[0].shape();
  s[0] = static_cast<int64_t>(parts.size());
  Tensor out = Tensor::empty(s);
  const int64_t per = parts[0].numel();
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor c = parts[i].contiguous();
    std::copy_n(c.data(), per, out.data() + i * per);
  }
  return out;
}

}  // namespace

// rise_curves (all images, both curves, points shared, batches across images) equals
// deletion_curve / insertion_curve of each image alone, for every baseline and batch size.
TEST(AttributionBatched, RiseCurvesEqualOneImageAtATime) {
  Fixture f;
  Rng mr(13);
  const Tensor maps = Tensor::uniform({3, 19, 23}, mr, 0.f, 1.f);
  const std::vector<int64_t> targets = {0, 2, 1};
  for (Baseline b : {Baseline::Default, Baseline::Zero, Baseline::Mean, Baseline::Blur})
    for (int64_t batch : {1, 5, 7, 200}) {
      CurveOptions o;
      o.steps = 7;
      o.baseline = b;
      o.blur_sigma = 1.5f;
      o.batch = batch;
      const std::vector<CurvePair> got = rise_curves(*f.net, f.x, maps, targets, o);
      ASSERT_EQ(got.size(), 3u);
      CurveOptions one = o;
      one.batch = 8;  // one image's 8 points per forward, as localize did
      for (int64_t i = 0; i < 3; ++i) {
        const Tensor mi = maps.slice(i, i + 1).contiguous();
        const Curve d = deletion_curve(*f.net, f.image(i), mi, targets[i], one);
        const Curve n = insertion_curve(*f.net, f.image(i), mi, targets[i], one);
        ASSERT_EQ(got[i].deletion.probability.size(), d.probability.size());
        ASSERT_EQ(got[i].insertion.probability.size(), n.probability.size());
        for (size_t k = 0; k < d.probability.size(); ++k) {
          EXPECT_NEAR(got[i].deletion.probability[k], d.probability[k], kTol * std::max(1.0, d.probability[k]))
              << "baseline " << static_cast<int>(b) << " batch " << batch << " image " << i << " step " << k;
          EXPECT_NEAR(got[i].insertion.probability[k], n.probability[k], kTol * std::max(1.0, n.probability[k]))
              << "baseline " << static_cast<int>(b) << " batch " << batch << " image " << i << " step " << k;
          EXPECT_EQ(got[i].deletion.fraction[k], d.fraction[k]);
        }
        EXPECT_NEAR(got[i].deletion.auc, d.auc, kTol);
        EXPECT_NEAR(got[i].insertion.auc, n.auc, kTol);
      }
    }
  // Argument errors name the function.
  EXPECT_THROW(rise_curves(*f.net, f.x, maps, {0, 1}, {}), Error);
  EXPECT_THROW(rise_curves(*f.net, f.x, Tensor::zeros({3, 19, 22}), targets, {}), Error);
  EXPECT_THROW(rise_curves(*f.net, f.x, maps, {0, 1, 3}, {}), Error);
}

// Anchors kept by a first call (another map of the same images) give the curves of a call without
// them, and the second call forwards only its map's own copies. Per image, 7 steps: 6 inner points
// per curve, the clean image (both curves' ends) and the blur baseline (insertion's start); deletion
// ends on the all-zero image, one for the whole batch.
TEST(AttributionBatched, RiseCurvesWithKeptAnchorsEqualAFreshCall) {
  Fixture f;
  Rng mr(14);
  const Tensor first_maps = Tensor::uniform({3, 19, 23}, mr, 0.f, 1.f);
  const Tensor maps = Tensor::uniform({3, 19, 23}, mr, 0.f, 1.f);
  const std::vector<int64_t> targets = {1, 0, 2};
  CurveOptions o;
  o.steps = 7;
  o.blur_sigma = 1.5f;
  o.batch = 10;
  int64_t forwarded = 0;
  HookHandle count = f.net->find("features.0").register_forward_hook([&](Module&, const Tensor& in, const Tensor&) {
    forwarded += in.size(0);
    return Tensor();
  });
  CurveAnchors anchors;
  rise_curves(*f.net, f.x, first_maps, targets, o, &anchors);
  const int64_t first = forwarded;
  forwarded = 0;
  const std::vector<CurvePair> kept = rise_curves(*f.net, f.x, maps, targets, o, &anchors);
  const int64_t second = forwarded;
  forwarded = 0;
  const std::vector<CurvePair> fresh = rise_curves(*f.net, f.x, maps, targets, o);
  EXPECT_EQ(first, 3 * (2 * 6 + 2) + 1);
  EXPECT_EQ(second, 3 * (2 * 6));  // the inner points only
  EXPECT_EQ(forwarded, first);
  for (size_t i = 0; i < 3; ++i)
    for (size_t k = 0; k < 8; ++k) {
      EXPECT_NEAR(kept[i].deletion.probability[k], fresh[i].deletion.probability[k], kTol) << i << " " << k;
      EXPECT_NEAR(kept[i].insertion.probability[k], fresh[i].insertion.probability[k], kTol) << i << " " << k;
    }
  // Anchors of three images are refused for two.
  EXPECT_THROW(rise_curves(*f.net, f.x.slice(0, 2), maps.slice(0, 2), {1, 0}, o, &anchors), Error);
}

// SmoothGrad with several samples per forward pass equals the average of saliency maps of the
// noisy copies, computed one sample and one image at a time with the same noise fields.
TEST(AttributionBatched, SmoothGradEqualsSampleLoop) {
  Fixture f;
  Options o;
  o.smoothgrad_samples = 5;
  o.smoothgrad_noise = 0.2f;
  o.seed = 3;
  o.normalize = false;
  const AttributionMap got = smoothgrad(*f.net, f.x, o);
  const int64_t per = f.x.numel() / 3;
  std::vector<Tensor> want;
  for (int64_t i = 0; i < 3; ++i) {
    const Tensor xi = f.image(i);
    float lo = xi.data()[0], hi = lo;
    for (int64_t j = 0; j < per; ++j) lo = std::min(lo, xi.data()[j]), hi = std::max(hi, xi.data()[j]);
    const float sigma = o.smoothgrad_noise * (hi - lo);
    Rng rng(o.seed);  // the same fields for every image, drawn in sample order
    Tensor acc = Tensor::zeros(xi.shape());
    Options so;
    so.targets = {got.targets[i]};
    for (int s = 0; s < o.smoothgrad_samples; ++s) {
      Tensor z = Tensor::randn({per}, rng);
      Tensor xs = Tensor::empty(xi.shape());
      for (int64_t j = 0; j < per; ++j) xs.data()[j] = xi.data()[j] + sigma * z.data()[j];
      acc.add_(saliency(*f.net, xs, so).raw);
    }
    acc.scale_(1.f / o.smoothgrad_samples);
    want.push_back(acc);
  }
  expect_close("smoothgrad batched", got.raw, stack(want), kTol);
  // And one image alone gives its slice of the batch's map.
  Options one = o;
  one.targets = {got.targets[1]};
  expect_close("smoothgrad alone", smoothgrad(*f.net, f.image(1), one).raw, want[1], kTol);
}

// Integrated Gradients (path points batched across steps and images) equals the trapezoid sum of
// saliency maps along the path, one point and one image at a time. A random baseline: on the zero
// image every max-pool window is a tie (conv output = bias), and which tied input gets the
// gradient then hangs on the last bit of the forward, which a different batch may round otherwise.
TEST(AttributionBatched, IntegratedGradientsEqualsStepLoop) {
  Fixture f;
  Options o;
  o.ig_steps = 9;
  o.normalize = false;
  Rng br(14);
  o.ig_baseline = Tensor::uniform({1, 3, 19, 23}, br, -0.5f, 0.5f);
  const float* bp = o.ig_baseline.data();
  const AttributionMap got = integrated_gradients(*f.net, f.x, o);
  std::vector<Tensor> want;
  for (int64_t i = 0; i < 3; ++i) {
    const Tensor xi = f.image(i);
    Options so;
    so.targets = {got.targets[i]};
    Tensor acc = Tensor::zeros(xi.shape());
    for (int k = 0; k <= o.ig_steps; ++k) {  // the path point b + a (x - b)
      const float a = static_cast<float>(k) / o.ig_steps;
      Tensor xk = Tensor::empty(xi.shape());
      for (int64_t j = 0; j < xk.numel(); ++j) xk.data()[j] = bp[j] + a * (xi.data()[j] - bp[j]);
      Tensor gk = saliency(*f.net, xk, so).raw;
      gk.scale_((k == 0 || k == o.ig_steps ? 0.5f : 1.f) / o.ig_steps);
      acc.add_(gk);
    }
    for (int64_t j = 0; j < acc.numel(); ++j) acc.data()[j] *= xi.data()[j] - bp[j];
    want.push_back(acc);
  }
  expect_close("integrated-gradients batched", got.raw, stack(want), kTol);
}

// Occlusion, Score-CAM and the sliding window on 3 images at once (forward batches spanning images) equal each image
// explained alone. Occlusion on whole copies (its batching across images); its receptive-field path,
// one image at a time, has tests/test_local_forward.cpp.
TEST(AttributionBatched, PerturbationMethodsEqualOneImageAtATime) {
  Fixture f;
  Options o;
  o.occlusion_local = false;
  o.occlusion_window = 5;
  o.occlusion_stride = 3;  // 6 x 7 = 42 windows per image: a batch of 64 spans two images
  o.scorecam_batch = 7;    // 128 channels per image: batches straddle the images
  o.normalize = false;
  o.sliding_window = 9;  // 5 x 6 = 30 windows per image
  o.sliding_stride = 3;
  for (const char* m : {"occlusion", "scorecam", "sliding-window"}) {
    const AttributionMap got = explain(m, *f.net, f.x, o);
    std::vector<Tensor> want;
    for (int64_t i = 0; i < 3; ++i) {
      Options one = o;
      one.targets = {got.targets[i]};
      want.push_back(explain(m, *f.net, f.image(i), one).raw);
    }
    expect_close(std::string(m) + " batched", got.raw, stack(want), kTol);
    // not a vacuous comparison: the maps vary over the image
    const std::vector<float> v = got.raw.contiguous().to_vector();
    EXPECT_GT(*std::max_element(v.begin(), v.end()), *std::min_element(v.begin(), v.end())) << m;
  }
}
