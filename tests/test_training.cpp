// End to end: small GAP conv nets learn small synthetic, separable problems to 100% training
// accuracy within a bounded number of full-batch steps (forward, cross-entropy, backward, update).
#include <gtest/gtest.h>

#include <chrono>

#include "autograd/functions.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/lr_schedule.h"
#include "layers/models.h"
#include "layers/optim.h"

using namespace glimpse;

namespace {

struct Dataset {
  Tensor images;  // [N, C, S, S]
  std::vector<int64_t> labels;
};

// Noise U(-0.2, 0.2) with one 5x5 patch at a random place; the class says what the patch is.
//   colour_blobs: 3 channels, the patch is +1 in channel `label` (3 classes).
//   otherwise   : 1 channel, the patch is bright (+1, class 0) or dark (-1, class 1).
Dataset make_dataset(int64_t n, int64_t side, bool colour_blobs, uint64_t seed) {
  Rng rng(seed);
  const int64_t C = colour_blobs ? 3 : 1, K = colour_blobs ? 3 : 2, patch = 5;
  Dataset d{Tensor::uniform({n, C, side, side}, rng, -0.2f, 0.2f), {}};
  float* p = d.images.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i % K;  // balanced
    d.labels.push_back(label);
    const int64_t y0 = static_cast<int64_t>(rng.below(side - patch + 1));
    const int64_t x0 = static_cast<int64_t>(rng.below(side - patch + 1));
    const int64_t c = colour_blobs ? label : 0;
    const float v = colour_blobs || label == 0 ? 1.f : -1.f;
    for (int64_t y = y0; y < y0 + patch; ++y)
      for (int64_t x = x0; x < x0 + patch; ++x) p[((i * C + c) * side + y) * side + x] = v;
  }
  return d;
}

double accuracy(Module& model, const Dataset& d) {
  NoGradGuard ng;
  const bool was_training = model.training();
  model.eval();
  auto pred = argmax_rows(model(d.images));
  model.train(was_training);
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == d.labels[i];
  return static_cast<double>(correct) / static_cast<double>(pred.size());
}

// Full-batch training until 100% accuracy; returns the step at which it got there (or -1).
int64_t train_until_perfect(Module& model, Optimizer& opt, const Dataset& d, int64_t max_steps,
                            const LrSchedule* schedule = nullptr) {
  model.train();
  for (int64_t step = 0; step < max_steps; ++step) {
    if (schedule) schedule->apply(opt, step);
    opt.zero_grad();
    Tensor loss = cross_entropy(model(d.images), d.labels);
    EXPECT_TRUE(std::isfinite(loss.item())) << "step " << step;
    loss.backward();
    opt.step();
    if (step % 5 == 4 && accuracy(model, d) == 1.0) return step + 1;
  }
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// The W1 network itself (at 16x16), W1's optimizer (SGD with momentum 0.9).
TEST(Training, SmallGapNetLearnsColourBlobs) {
  const auto t0 = std::chrono::steady_clock::now();
  Dataset d = make_dataset(64, 16, true, 1);
  Rng rng(2);
  auto model = small_gap_net(3, 16, rng);
  const double before = accuracy(*model, d);
  SGD opt(model->parameters(), {.lr = 0.05f, .momentum = 0.9f});
  const int64_t steps = train_until_perfect(*model, opt, d, 300);
  EXPECT_GT(steps, 0) << "not 100% after 300 steps (accuracy " << accuracy(*model, d) << ", at start " << before << ")";
  std::cout << "small-gap: 100% training accuracy after " << steps << " steps, " << seconds_since(t0) << " s\n";
}

// A hand-built Sequential with BatchNorm (train-mode batch statistics, eval-mode running ones),
// Adam and a cosine schedule.
TEST(Training, TinyBatchNormNetLearnsBrightVsDark) {
  const auto t0 = std::chrono::steady_clock::now();
  Dataset d = make_dataset(64, 12, false, 3);
  Rng rng(4);
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Conv2d>(1, 8, 3, Conv2dOptions().padding(1), false, rng));
  net->add(std::make_shared<BatchNorm2d>(8));
  net->add(std::make_shared<ReLU>());
  net->add(std::make_shared<MaxPool2d>(2));
  net->add(std::make_shared<Conv2d>(8, 16, 3, Conv2dOptions().padding(1), true, rng));
  net->add(std::make_shared<ReLU>());
  net->add("gap", std::make_shared<GlobalAvgPool>());
  net->add("fc", std::make_shared<Linear>(16, 2, true, rng));
  Adam opt(net->parameters(), {.lr = 0.02f});
  CosineLR schedule(300, 1e-3f, 10);
  const int64_t steps = train_until_perfect(*net, opt, d, 300, &schedule);
  EXPECT_GT(steps, 0) << "not 100% after 300 steps (accuracy " << accuracy(*net, d) << ")";
  std::cout << "bn-net: 100% training accuracy after " << steps << " steps, " << seconds_since(t0) << " s\n";
}
