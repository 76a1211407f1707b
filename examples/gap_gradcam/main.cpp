// Trains a 2-class GAP network on synthetic images (class 1: a bright square somewhere on noise;
// class 0: noise alone), then writes a Grad-CAM overlay of a new class-1 image to the PNG given.
// Exits non-zero unless the network learnt the task (>= 90% on fresh images) and the Grad-CAM
// peak falls on the square -- so building and running it tests the installed glimpse package.
#include <algorithm>
#include <cstdio>
#include <vector>

#include <glimpse/attribution/attribution.h>
#include <glimpse/attribution/render.h>
#include <glimpse/autograd/functions.h>
#include <glimpse/core/grad_mode.h>
#include <glimpse/core/io/image.h>
#include <glimpse/layers/models.h>
#include <glimpse/layers/optim.h>

using namespace glimpse;

constexpr int64_t kSide = 32, kSquare = 10;

struct Batch {
  Tensor images;                // [N, 3, kSide, kSide]
  std::vector<int64_t> labels;  // 0 or 1
  std::vector<int64_t> x0, y0;  // the square's corner (class 1)
};

Batch make_batch(int64_t n, Rng& rng) {
  Batch b;
  b.images = Tensor::randn({n, 3, kSide, kSide}, rng, 0.f, 0.3f);
  float* p = b.images.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = static_cast<int64_t>(rng.below(2));
    const int64_t x0 = static_cast<int64_t>(rng.below(kSide - kSquare));
    const int64_t y0 = static_cast<int64_t>(rng.below(kSide - kSquare));
    if (label == 1)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = y0; y < y0 + kSquare; ++y)
          for (int64_t x = x0; x < x0 + kSquare; ++x) p[((i * 3 + c) * kSide + y) * kSide + x] += 1.5f;
    b.labels.push_back(label);
    b.x0.push_back(x0);
    b.y0.push_back(y0);
  }
  return b;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OVERLAY.png\n", argv[0]);
    return 2;
  }
  Rng rng(42);
  auto model = small_gap_net(/*num_classes=*/2, kSide, rng);
  Adam opt(model->parameters(), AdamOptions{.lr = 3e-3f});
  for (int step = 0; step < 150; ++step) {
    Batch b = make_batch(16, rng);
    Tensor loss = cross_entropy((*model)(b.images), b.labels);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }

  model->eval();
  Batch test = make_batch(64, rng);
  std::vector<int64_t> pred;
  {
    NoGradGuard no_grad;
    pred = argmax_rows((*model)(test.images));
  }
  int correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == test.labels[i];
  const double accuracy = correct / double(pred.size());
  std::printf("accuracy on 64 fresh images: %.1f%%\n", 100 * accuracy);

  // Grad-CAM of class 1 on the first class-1 test image, upsampled and normalised to [0, 1].
  size_t i = 0;
  while (test.labels[i] != 1) ++i;
  Tensor x = test.images.slice(i, i + 1).contiguous();
  attr::Options aopt;
  aopt.targets = {1};
  const attr::AttributionMap m = attr::gradcam(*model, x, aopt);
  const float* map = m.map.data();
  int64_t best = 0;
  for (int64_t j = 1; j < kSide * kSide; ++j)
    if (map[j] > map[best]) best = j;
  const int64_t px = best % kSide, py = best / kSide;
  const bool on_square =
      px >= test.x0[i] - 2 && px < test.x0[i] + kSquare + 2 && py >= test.y0[i] - 2 && py < test.y0[i] + kSquare + 2;
  std::printf("Grad-CAM peak at (%lld, %lld); square at (%lld, %lld) + %lld: %s\n", (long long)px, (long long)py,
              (long long)test.x0[i], (long long)test.y0[i], (long long)kSquare, on_square ? "on it" : "off it");

  // The photo: the input's first channel mapped to grey, the heatmap blended over it.
  io::Image photo(kSide, kSide, 3);
  for (int64_t j = 0; j < kSide * kSide; ++j) {
    const float v = std::min(1.f, std::max(0.f, (x.data()[j] + 1.f) / 3.f));
    for (int c = 0; c < 3; ++c) photo.pixels[j * 3 + c] = static_cast<uint8_t>(v * 255.f);
  }
  io::save_png(argv[1], attr::overlay_heatmap(photo, m.map));
  std::printf("wrote %s\n", argv[1]);
  return accuracy >= 0.9 && on_square ? 0 : 1;
}
