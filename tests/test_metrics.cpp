// Metrics (attribution/metrics.cpp) on hand-made maps and masks whose values are worked out in
// the comments.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "attribution/metrics.h"
#include "core/error.h"
#include "layers/module.h"

using namespace glimpse;
using namespace glimpse::attr;
using namespace glimpse::io;

namespace {

Mask mask_from(int64_t w, int64_t h, std::initializer_list<std::pair<int, int>> xy) {
  Mask m(w, h);
  for (auto [x, y] : xy) m.at(x, y) = 1;
  return m;
}

// softmax(model(x)) = [1 - m, m] with m = mean of the image's pixels (clamped to [1e-6, 1 - 1e-6]):
// logits = [log(1 - m), log(m)]. So the probability of class 1 is the image's mean brightness,
// and deletion/insertion curves can be computed by hand.
class MeanProbability : public Module {
 public:
  MeanProbability() : Module("MeanProbability") {}
  Tensor forward(const Tensor& x) override {
    const int64_t n = x.size(0), per = x.numel() / n;
    Tensor c = x.contiguous();
    Tensor out = Tensor::empty({n, 2});
    for (int64_t i = 0; i < n; ++i) {
      double m = 0;
      for (int64_t j = 0; j < per; ++j) m += c.data()[i * per + j];
      m = std::clamp(m / per, 1e-6, 1 - 1e-6);
      out.data()[2 * i] = static_cast<float>(std::log(1 - m));
      out.data()[2 * i + 1] = static_cast<float>(std::log(m));
    }
    return out;
  }
};

}  // namespace

// pred = the 2x2 block at the top-left (4 px); truth = rows 0-1, columns 0-2 (6 px).
//   |P n G| = 4, |P u G| = 6: Dice = 2*4 / (4 + 6) = 0.8, IoU = 4/6 = 2/3.
TEST(Metrics, DiceAndIoU) {
  Mask pred = mask_from(4, 4, {{0, 0}, {1, 0}, {0, 1}, {1, 1}});
  Mask truth = mask_from(4, 4, {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}});
  EXPECT_DOUBLE_EQ(dice(pred, truth), 0.8);
  EXPECT_DOUBLE_EQ(iou(pred, truth), 4.0 / 6.0);
  // disjoint: 0; identical: 1; both empty: 1 (perfect agreement on "nothing")
  Mask other = mask_from(4, 4, {{3, 3}});
  EXPECT_DOUBLE_EQ(dice(pred, other), 0.0);
  EXPECT_DOUBLE_EQ(iou(pred, other), 0.0);
  EXPECT_DOUBLE_EQ(dice(truth, truth), 1.0);
  EXPECT_DOUBLE_EQ(dice(Mask(4, 4), Mask(4, 4)), 1.0);
  EXPECT_THROW(dice(pred, Mask(5, 4)), Error);
}

// Map (4x4): 1.0 at (0,0), 0.5 at (1,1), 0.5 at (3,3), -1 at (2,2), 0 elsewhere; mask {(0,0), (1,1)}.
//   energy = (1 + 0.5) / (1 + 0.5 + 0.5) = 0.75 (the negative value counts as 0).
// Thresholded at fraction 0.5 (>= 0.5): {(0,0), (1,1), (3,3)}: |P n G| = 2, Dice = 4/5 = 0.8, IoU = 2/3.
// Peak (0,0) is in the mask: distance 0, a hit.
TEST(Metrics, EnergyAndLocalizationScores) {
  Tensor map = Tensor::zeros({4, 4});
  map.at({0, 0}) = 1.f, map.at({1, 1}) = 0.5f, map.at({3, 3}) = 0.5f, map.at({2, 2}) = -1.f;
  Mask truth = mask_from(4, 4, {{0, 0}, {1, 1}});
  EXPECT_NEAR(energy_inside(map, truth), 0.75, 1e-12);
  LocalizationScores s = localization_scores(map, truth, {ThresholdMethod::Fraction, 0.5f});
  EXPECT_NEAR(s.dice, 0.8, 1e-12);
  EXPECT_NEAR(s.iou, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s.energy, 0.75, 1e-12);
  EXPECT_EQ(s.peak_distance, 0.0);
  EXPECT_TRUE(s.hit);
  // an all-zero map has no energy anywhere
  EXPECT_EQ(energy_inside(Tensor::zeros({1, 4, 4}), truth), 0.0);
}

// 40x40 map with its peak at (x=30, y=30). Mask pixel at (30, 18): distance 12 <= 15, a hit;
// at (30, 15): exactly 15, a hit; at (30, 14): 16, a miss; at (21, 18): sqrt(81 + 144) = 15, a hit.
TEST(Metrics, PointingGame) {
  Tensor map = Tensor::zeros({40, 40});
  map.at({30, 30}) = 1.f;
  map.at({5, 5}) = 0.5f;
  EXPECT_TRUE(pointing_game(map, mask_from(40, 40, {{30, 18}})));
  EXPECT_DOUBLE_EQ(peak_distance(map, mask_from(40, 40, {{30, 18}})), 12.0);
  EXPECT_TRUE(pointing_game(map, mask_from(40, 40, {{30, 15}})));
  EXPECT_FALSE(pointing_game(map, mask_from(40, 40, {{30, 14}})));
  EXPECT_TRUE(pointing_game(map, mask_from(40, 40, {{21, 18}})));
  EXPECT_FALSE(pointing_game(map, mask_from(40, 40, {{30, 18}}), 11.0));
  EXPECT_FALSE(pointing_game(map, Mask(40, 40)));  // empty mask: nowhere to point
  EXPECT_THROW(pointing_game(map, Mask(20, 40)), Error);
}

// Image (1 channel, 2x2) = [[0.8, 0.6], [0.4, 0.2]], map = the same values, so pixels are removed
// or inserted in the order 0.8, 0.6, 0.4, 0.2. With MeanProbability, p = mean of the image; S = 4.
//   deletion, zero baseline:  p = 2.0/4, 1.2/4, 0.6/4, 0.2/4, 0 = 0.5, 0.3, 0.15, 0.05, 0
//     AUC = 1/4 * ((0.5+0.3)/2 + (0.3+0.15)/2 + (0.15+0.05)/2 + (0.05+0)/2) = 1/4 * 0.75 = 0.1875
//   insertion, zero baseline: p = 0, 0.2, 0.35, 0.45, 0.5
//     AUC = 1/4 * (0.1 + 0.275 + 0.4 + 0.475) = 0.3125
//   insertion, mean baseline (0.5 everywhere): p = 0.5, 0.575, 0.6, 0.575, 0.5
//     AUC = 1/4 * (0.5375 + 0.5875 + 0.5875 + 0.5375) = 0.5625
TEST(Metrics, DeletionAndInsertionAuc) {
  MeanProbability model;
  Tensor image = Tensor::from_vector({1, 1, 2, 2}, {0.8f, 0.6f, 0.4f, 0.2f});
  Tensor map = Tensor::from_vector({2, 2}, {0.8f, 0.6f, 0.4f, 0.2f});
  CurveOptions opt;
  opt.steps = 4;
  opt.baseline = Baseline::Zero;
  Curve del = deletion_curve(model, image, map, 1, opt);
  ASSERT_EQ(del.probability.size(), 5u);
  const double want_del[5] = {0.5, 0.3, 0.15, 0.05, 0.0};
  for (int k = 0; k < 5; ++k) {
    EXPECT_NEAR(del.probability[k], want_del[k], 1e-5) << k;
    EXPECT_DOUBLE_EQ(del.fraction[k], k / 4.0);
  }
  EXPECT_NEAR(del.auc, 0.1875, 1e-5);
  Curve ins = insertion_curve(model, image, map, 1, opt);
  EXPECT_NEAR(ins.auc, 0.3125, 1e-5);
  opt.baseline = Baseline::Mean;
  EXPECT_NEAR(insertion_curve(model, image, map, 1, opt).auc, 0.5625, 1e-5);
  // batches of 2 give the same curve
  opt.baseline = Baseline::Zero;
  opt.batch = 2;
  EXPECT_NEAR(deletion_curve(model, image, map, 1, opt).auc, 0.1875, 1e-5);
  // the probability of class 0 is 1 - p, so its deletion AUC is 1 - 0.1875
  EXPECT_NEAR(deletion_curve(model, image, map, 0, opt).auc, 0.8125, 1e-5);
  // Default baselines: deletion -> zero (same as above), insertion -> blur; blurring a constant
  // image changes nothing, so a constant image inserts into itself: p = 0.5 throughout.
  opt.baseline = Baseline::Default;
  EXPECT_NEAR(deletion_curve(model, image, map, 1, opt).auc, 0.1875, 1e-5);
  Tensor flat = Tensor::full({1, 1, 2, 2}, 0.5f);
  EXPECT_NEAR(insertion_curve(model, flat, map, 1, opt).auc, 0.5, 1e-5);
  EXPECT_THROW(deletion_curve(model, image, map, 2, opt), Error);                    // class out of range
  EXPECT_THROW(deletion_curve(model, image, Tensor::zeros({3, 3}), 1, opt), Error);  // map size
}

TEST(Metrics, TrapezoidAndBlur) {
  EXPECT_DOUBLE_EQ(trapezoid_auc({1, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(trapezoid_auc({0, 1}), 0.5);
  EXPECT_DOUBLE_EQ(trapezoid_auc({0, 0.5, 1}), 0.5);
  Tensor c = Tensor::full({1, 3, 9, 9}, 0.3f);
  for (float v : gaussian_blur(c, 2.f).to_vector()) EXPECT_NEAR(v, 0.3f, 1e-6);
  // a single bright pixel spreads but keeps (most of) its mass in the middle of a large image
  Tensor d = Tensor::zeros({1, 1, 31, 31});
  d.at({0, 0, 15, 15}) = 1.f;
  Tensor b = gaussian_blur(d, 1.f);
  double s = 0;
  for (float v : b.to_vector()) s += v;
  EXPECT_NEAR(s, 1.0, 1e-5);
  EXPECT_LT(b.at({0, 0, 15, 15}), 1.f);
  EXPECT_GT(b.at({0, 0, 15, 16}), 0.f);
}

// Image (1 channel) [1, 2, 3, 4] (mean 2.5), map [0.1, 0.9, 0.5, 0.2]: the top 50% = pixels 1 and 2
// are replaced by 2.5 -> [1, 2.5, 2.5, 4]; keep=true replaces the others -> [2.5, 2, 3, 2.5].
// A second channel [10, 20, 30, 40] (mean 25) is replaced at the same pixels.
TEST(Metrics, RemoveAndRetrainBuildingBlocks) {
  Tensor img = Tensor::from_vector({1, 2, 2, 2}, {1, 2, 3, 4, 10, 20, 30, 40});
  Tensor map = Tensor::from_vector({1, 2, 2}, {0.1f, 0.9f, 0.5f, 0.2f});
  std::vector<float> got = mask_top_fraction(img, map, 0.5f).to_vector();
  std::vector<float> want = {1, 2.5f, 2.5f, 4, 10, 25, 25, 40};
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
  got = mask_top_fraction(img, map, 0.5f, true).to_vector();
  want = {2.5f, 2, 3, 2.5f, 25, 20, 30, 25};
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
  // 0% changes nothing, 100% gives the mean colour everywhere
  EXPECT_EQ(mask_top_fraction(img, map, 0.f).to_vector(), img.to_vector());
  got = mask_top_fraction(img, map, 1.f).to_vector();
  for (size_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(got[i], 2.5f);
  // the input is not modified
  EXPECT_EQ(img.at({0, 0, 0, 1}), 2.f);
  EXPECT_THROW(mask_top_fraction(img, map, 1.5f), Error);
  EXPECT_THROW(mask_top_fraction(img, Tensor::zeros({2, 2, 2}), 0.5f), Error);

  Tensor r1 = random_maps(2, 3, 4, 42), r2 = random_maps(2, 3, 4, 42), r3 = random_maps(2, 3, 4, 43);
  EXPECT_EQ(r1.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(r1.to_vector(), r2.to_vector());
  EXPECT_NE(r1.to_vector(), r3.to_vector());
  for (float v : r1.to_vector()) {
    EXPECT_GE(v, 0.f);
    EXPECT_LE(v, 1.f);
  }
}
