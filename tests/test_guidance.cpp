// Mask guidance (attribution/guidance.h): the soft masks on the feature grid, the loss against the
// attribution code's own CAM and energy metric (it must be exactly 1 - energy of the min-max CAM),
// its numerical gradient, and the hook-based trainer side (which images count, errors, and that a
// few steps on the loss alone do move the CAM into the mask).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attribution/attribution.h"
#include "attribution/guidance.h"
#include "attribution/metrics.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "layers/optim.h"
#include "tests/support.h"

using namespace glimpse;
using glimpse::testing::error_of;

namespace {

io::Mask box_mask(int64_t w, int64_t h, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  io::Mask m(w, h);
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) m.at(x, y) = 1;
  return m;
}

// The GAP's input of `model` for x (a capture hook, removed on return).
Tensor gap_input(Module& model, const Tensor& x) {
  Tensor captured;
  HookHandle h = model.find("gap").register_forward_hook([&](Module&, const Tensor& in, const Tensor&) {
    captured = in;
    return Tensor();
  });
  model(x);
  return captured;
}

}  // namespace

TEST(MasksOnGrid, CellsAreTheFractionOfLesionPixels) {
  // 8x8 onto 2x2: each cell is a 4x4 block.
  std::vector<io::Mask> masks = {box_mask(8, 8, 0, 0, 4, 4), box_mask(8, 8, 2, 0, 8, 2), io::Mask()};
  const Tensor g = attr::masks_on_grid(masks, 2, 2);
  ASSERT_EQ(g.shape(), (Shape{3, 1, 2, 2}));
  const std::vector<float> v = g.to_vector();
  const std::vector<float> want = {1,        0,        0, 0,   // the top-left block exactly
                                   4.f / 16, 8.f / 16, 0, 0,   // rows 0-1, columns 2-7
                                   0,        0,        0, 0};  // no mask: all zero
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(v[i], want[i]) << "element " << i;
  // Uneven cells: 5 pixels onto 2 cells are 3 + 2 (pixel x goes to cell x * 2 / 5).
  const Tensor u = attr::masks_on_grid({box_mask(5, 1, 2, 0, 4, 1)}, 1, 2);
  EXPECT_FLOAT_EQ(u.to_vector()[0], 1.f / 3);
  EXPECT_FLOAT_EQ(u.to_vector()[1], 1.f / 2);
  EXPECT_NE(error_of([] { attr::masks_on_grid({io::Mask(3, 3)}, 4, 4); }).find("smaller than the 4x4 grid"),
            std::string::npos);
}

TEST(CamOutsideFraction, IsOneMinusTheEnergyOfTheNormalisedCam) {
  Rng rng(5);
  auto model = small_gap_net(3, 16, rng);  // features.7: [N, 128, 4, 4]
  model->eval();
  const Tensor x = Tensor::uniform({3, 3, 16, 16}, rng, -1.f, 1.f);
  const Tensor A = gap_input(*model, x);
  ASSERT_EQ(A.shape(), (Shape{3, 128, 4, 4}));
  // Binary masks at the grid's own size, so the soft mask is the mask itself.
  const std::vector<io::Mask> masks = {box_mask(4, 4, 0, 0, 2, 2), box_mask(4, 4, 1, 1, 4, 3),
                                       box_mask(4, 4, 3, 0, 4, 4)};
  const std::vector<int64_t> classes = {2, 0, 1};
  std::vector<float> range;
  const Tensor got = attr::cam_outside_fraction(A, dynamic_cast<Linear&>(model->find("classifier")).weight,
                                                attr::masks_on_grid(masks, 4, 4), classes, &range);
  ASSERT_EQ(got.shape(), (Shape{3}));
  // The reference: attr::cam's class score map, min-max normalised by the attribution code, and the
  // metric `localize` reports.
  attr::Options opt;
  opt.targets = classes;
  const attr::AttributionMap m = attr::cam(*model, x, opt);
  const Tensor normed = attr::normalize_maps(m.raw);  // [3, 4, 4]
  for (int64_t i = 0; i < 3; ++i) {
    const Tensor one = m.raw.slice(i, i + 1).contiguous();
    const std::vector<float> v = one.to_vector();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    EXPECT_NEAR(range[static_cast<size_t>(i)], *hi - *lo, 1e-5);
    const double energy = attr::energy_inside(normed.slice(i, i + 1).contiguous(), masks[static_cast<size_t>(i)]);
    EXPECT_NEAR(got.to_vector()[static_cast<size_t>(i)], 1 - energy, 1e-5) << "image " << i;
  }
}

TEST(CamOutsideFraction, GradientMatchesCentralDifferences) {
  Rng rng(7);
  Tensor A = Tensor::uniform({2, 4, 3, 3}, rng, 0.f, 2.f);
  Tensor W = Tensor::uniform({3, 4}, rng, -1.f, 1.f);
  A.set_requires_grad(true);
  W.set_requires_grad(true);
  const Tensor grid = attr::masks_on_grid({box_mask(6, 6, 0, 0, 3, 4), box_mask(6, 6, 2, 2, 6, 6)}, 3, 3);
  GradcheckOptions go;
  go.step = 1e-3f;
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) {
        return attr::cam_outside_fraction(in[0], in[1], grid, {1, 2});
      },
      {A, W}, go);
  std::printf("  checked %lld points, %lld kinks skipped\n", static_cast<long long>(r.checked),
              static_cast<long long>(r.skipped_kinks));
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 40);
}

TEST(CamOutsideFraction, BadShapesNameTheShape) {
  const Tensor A = Tensor::zeros({2, 4, 3, 3});
  const Tensor W = Tensor::zeros({3, 4}), grid = Tensor::zeros({2, 1, 3, 3});
  EXPECT_NE(error_of([&] {
              attr::cam_outside_fraction(A, Tensor::zeros({3, 5}), grid, {0, 0});
            }).find("must be [C, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              attr::cam_outside_fraction(A, W, Tensor::zeros({2, 1, 4, 4}), {0, 0});
            }).find("[2, 1, 3, 3]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              attr::cam_outside_fraction(A, W, grid, {0, 3});
            }).find("class 3 of image 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { attr::cam_outside_fraction(A, W, grid, {0}); }).find("1 classes for 2 images"),
            std::string::npos);
  // A constant map scores 0, not NaN.
  EXPECT_EQ(attr::cam_outside_fraction(A, W, grid, {0, 1}).to_vector(), (std::vector<float>{0.f, 0.f}));
}

TEST(MaskGuidance, AveragesOverImagesWithALesionWeighedByTheMapsRange) {
  Rng rng(9);
  auto model = small_gap_net(3, 16, rng);
  const std::vector<int64_t> classes = {0, 1, 2, 1};
  for (float tau : {1e-6f, 1e3f}) {  // every weight 1; every weight range / tau < 1
    attr::MaskGuidance guide(*model, tau);
    EXPECT_NE(error_of([&] { guide.loss({}, {}); }).find("before any forward pass"), std::string::npos);
    const Tensor x = Tensor::uniform({4, 3, 16, 16}, rng, -1.f, 1.f);
    model->eval();
    (*model)(x);
    const std::vector<io::Mask> masks = {box_mask(16, 16, 0, 0, 8, 8), io::Mask(), io::Mask(16, 16),
                                         box_mask(16, 16, 4, 0, 16, 8)};
    const Tensor loss = guide.loss(masks, classes);
    EXPECT_EQ(guide.last_count(), 2);  // no mask, and a mask with no lesion pixel, do not count
    std::vector<float> range;
    const std::vector<float> out =
        attr::cam_outside_fraction(gap_input(*model, x), dynamic_cast<Linear&>(model->find("classifier")).weight,
                                   attr::masks_on_grid(masks, 4, 4), classes, &range)
            .to_vector();
    const double w0 = std::min(1.f, range[0] / tau), w3 = std::min(1.f, range[3] / tau);
    EXPECT_NEAR(loss.item(), (w0 * out[0] + w3 * out[3]) / 2, 1e-6) << "tau " << tau;
    EXPECT_NEAR(guide.last_outside(), (out[0] + out[3]) / 2, 1e-6);
    if (tau > 1) {
      EXPECT_LT(w0, 0.1);  // the small random net's maps span far less than 1000
    }
    EXPECT_NE(error_of([&] { guide.loss({masks[0]}, classes); }).find("1 masks for a batch of 4"), std::string::npos);
    const Tensor none = guide.loss(std::vector<io::Mask>(4), classes);
    EXPECT_EQ(guide.last_count(), 0);
    EXPECT_EQ(none.item(), 0.f);
  }
}

TEST(MaskGuidance, NeedsAGapLinearHead) {
  Sequential net;
  net.add(std::make_shared<Conv2d>(3, 4, 3));
  EXPECT_NE(error_of([&] { attr::MaskGuidance g(net); }).find("mask guidance: "), std::string::npos);
}

// Training on the guidance loss alone moves the evidence into the mask: the gradient reaches the
// layers below the GAP, and the hook follows each new forward pass.
TEST(MaskGuidance, StepsOnTheLossMoveTheCamIntoTheMask) {
  Rng rng(11);
  auto model = small_gap_net(3, 16, rng);
  model->eval();
  const Tensor x = Tensor::uniform({4, 3, 16, 16}, rng, -1.f, 1.f);
  const std::vector<io::Mask> masks(4, box_mask(16, 16, 4, 4, 12, 12));
  attr::MaskGuidance guide(*model, 1e-6f);  // unweighted: the random net's maps are nearly flat
  AdamOptions ao;
  ao.lr = 3e-3f;
  Adam opt(model->parameters(), ao);
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    (*model)(x);
    Tensor loss = guide.loss(masks, {0, 1, 2, 0});
    if (step == 0) first = loss.item();
    last = loss.item();
    opt.zero_grad();
    loss.backward();
    if (step == 0) {
      const Tensor g = model->find("features.0").named_parameters()[0].second.grad();
      ASSERT_TRUE(g.defined());
      double norm = 0;
      for (float v : g.to_vector()) norm += std::fabs(v);
      EXPECT_GT(norm, 0) << "no gradient reached the first convolution";
    }
    opt.step();
  }
  std::printf("  CAM share outside the mask: %.3f -> %.3f after 30 Adam steps\n", first, last);
  EXPECT_LT(last, first - 0.1f);
}
