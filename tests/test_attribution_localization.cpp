// Localization sanity on synthetic data: a small GAP net trained (seconds) to tell a bright blob
// from plain noise on 32x32 images must put the peak of its CAM for "blob" inside the blob on at
// least 95% of the test images that contain one. A CAM that points anywhere else would mean the
// map is not tied to the evidence the classifier uses.
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

using namespace glimpse;

namespace {

constexpr int64_t kSize = 32;

// small_gap_net's layout, narrower (8, 16, 32 channels) so that training takes seconds.
class TinyGapNet : public Model {
 public:
  explicit TinyGapNet(Rng& rng) : Model("TinyGapNet", ModelInfo{"tiny-gap", 2, kSize, 3, 4, "features.7"}) {
    features = register_module("features", std::make_shared<Sequential>());
    features->emplace<Conv2d>(3, 8, 3, Conv2dOptions{}.padding(1), true, rng);
    features->emplace<ReLU>();
    features->emplace<MaxPool2d>(2);
    features->emplace<Conv2d>(8, 16, 3, Conv2dOptions{}.padding(1), true, rng);
    features->emplace<ReLU>();
    features->emplace<MaxPool2d>(2);
    features->emplace<Conv2d>(16, 32, 3, Conv2dOptions{}.padding(1), true, rng);
    features->emplace<ReLU>();
    gap = register_module("gap", std::make_shared<GlobalAvgPool>());
    classifier = register_module("classifier", std::make_shared<Linear>(32, 2, true, rng));
  }
  Tensor forward(const Tensor& x) override { return (*classifier)((*gap)((*features)(x))); }
  std::shared_ptr<Sequential> features;
  std::shared_ptr<GlobalAvgPool> gap;
  std::shared_ptr<Linear> classifier;
};

struct Blob {
  float cy = -1, cx = -1, r = 0;  // r == 0: no blob
  bool contains(int64_t y, int64_t x) const {
    return r > 0 && (y + 0.5f - cy) * (y + 0.5f - cy) + (x + 0.5f - cx) * (x + 0.5f - cx) <= r * r;
  }
};

// Noise U(0, 0.5) in each channel; half the images (odd i) get a bright disc (radius 4..6,
// brightness +0.5..+0.8, soft edge) anywhere inside the image.
void make_batch(Rng& rng, int64_t n, Tensor& x, std::vector<int64_t>& y, std::vector<Blob>& blobs) {
  x = Tensor::uniform({n, 3, kSize, kSize}, rng, 0.f, 0.5f);
  y.assign(n, 0);
  blobs.assign(n, Blob{});
  for (int64_t i = 0; i < n; ++i) {
    if (i % 2 == 0) continue;
    Blob b;
    b.r = rng.uniform(4.f, 6.f);
    b.cy = rng.uniform(b.r, kSize - b.r);
    b.cx = rng.uniform(b.r, kSize - b.r);
    const float amp = rng.uniform(0.5f, 0.8f);
    for (int64_t r = 0; r < kSize; ++r)
      for (int64_t c = 0; c < kSize; ++c) {
        float d = std::sqrt((r + 0.5f - b.cy) * (r + 0.5f - b.cy) + (c + 0.5f - b.cx) * (c + 0.5f - b.cx));
        float w = std::clamp(b.r + 0.5f - d, 0.f, 1.f);  // 1 inside, a one-pixel soft edge
        for (int64_t ch = 0; ch < 3; ++ch) x.at({i, ch, r, c}) += amp * w;
      }
    y[i] = 1;
    blobs[i] = b;
  }
}

// Fraction of blob images whose map (class 1) peaks inside the blob.
double pointing(const Tensor& map, const std::vector<Blob>& blobs) {
  int hits = 0, total = 0;
  for (size_t i = 0; i < blobs.size(); ++i) {
    if (blobs[i].r == 0) continue;
    const float* m = map.data() + i * kSize * kSize;
    int64_t best = std::max_element(m, m + kSize * kSize) - m;
    hits += blobs[i].contains(best / kSize, best % kSize);
    ++total;
  }
  return static_cast<double>(hits) / total;
}

}  // namespace

TEST(AttributionLocalization, CamPeakInsideTheBlob) {
  Rng rng(2024);
  TinyGapNet model(rng);
  Adam opt(model.parameters(), AdamOptions{5e-3f});
  model.train();
  Tensor xb;
  std::vector<int64_t> yb;
  std::vector<Blob> bb;
  for (int step = 0; step < 80; ++step) {
    make_batch(rng, 32, xb, yb, bb);
    opt.zero_grad();
    cross_entropy(model(xb), yb).backward();
    opt.step();
  }
  model.eval();

  Tensor x;
  std::vector<int64_t> y;
  std::vector<Blob> blobs;
  make_batch(rng, 200, x, y, blobs);  // 100 with a blob
  Tensor logits;
  {
    NoGradGuard ng;
    logits = model(x);
  }
  std::vector<int64_t> pred = argmax_rows(logits);
  int correct = 0;
  for (size_t i = 0; i < y.size(); ++i) correct += pred[i] == y[i];
  const double accuracy = correct / static_cast<double>(y.size());

  attr::Options o;
  o.targets.assign(y.size(), 1);  // "where is the blob?"
  attr::AttributionMap c = attr::cam(model, x, o);
  ASSERT_EQ(c.layer, "features.7");
  ASSERT_EQ(c.map.shape(), (Shape{200, kSize, kSize}));
  const double cam_hits = pointing(c.map, blobs);
  const double gradcam_hits = pointing(attr::gradcam(model, x, o).map, blobs);
  std::printf("  test accuracy %.3f; CAM peak inside the blob on %.1f%% of blob images, Grad-CAM %.1f%%\n", accuracy,
              100 * cam_hits, 100 * gradcam_hits);
  EXPECT_GE(accuracy, 0.95) << "the detector did not learn; the localization check would mean nothing";
  EXPECT_GE(cam_hits, 0.95);
  EXPECT_GE(gradcam_hits, 0.95);
}
