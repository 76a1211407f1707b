// batch_norm: train and eval forward against direct double-precision loops, running statistics
// (momentum, unbiased variance), gradients by gradcheck in both modes, shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/error.h"
#include "tests/support.h"

namespace glimpse {
using glimpse::testing::error_of;
using glimpse::testing::expect_abs_close;

namespace {

// Per-channel statistics of x [N, C, *] in double: mean, biased and unbiased variance.
struct Stats {
  std::vector<double> mean, var, var_unbiased;
};
Stats channel_stats(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / (N * C);
  auto v = x.to_vector();
  Stats s{std::vector<double>(C), std::vector<double>(C), std::vector<double>(C)};
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < L; ++i) sum += v[(n * C + c) * L + i];
    const double m = sum / (N * L);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < L; ++i) sq += (v[(n * C + c) * L + i] - m) * (v[(n * C + c) * L + i] - m);
    s.mean[c] = m;
    s.var[c] = sq / (N * L);
    s.var_unbiased[c] = sq / (N * L - 1);
  }
  return s;
}

// y = (x - mean) / sqrt(var + eps) * gamma + beta with the given per-channel mean and var.
Tensor bn_reference(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& var,
                    const Tensor& gamma, const Tensor& beta, double eps) {
  const int64_t N = x.size(0), C = x.size(1), L = x.numel() / (N * C);
  auto v = x.to_vector();
  std::vector<float> out(v.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < L; ++i) {
        const int64_t k = (n * C + c) * L + i;
        double y = (v[k] - mean[c]) / std::sqrt(var[c] + eps);
        if (gamma.defined()) y *= gamma.at({c});
        if (beta.defined()) y += beta.at({c});
        out[k] = static_cast<float>(y);
      }
  return Tensor::from_vector(x.shape(), out);
}

TEST(BatchNorm, TrainForwardAndRunningStatistics) {
  Rng rng(1);
  Tensor x = Tensor::randn({3, 4, 5, 3}, rng, 2.f, 3.f);
  Tensor gamma = Tensor::randn({4}, rng), beta = Tensor::randn({4}, rng);
  Tensor rm = Tensor::randn({4}, rng), rv = Tensor::uniform({4}, rng, 0.5f, 2.f);
  const auto rm0 = rm.to_vector(), rv0 = rv.to_vector();
  const float momentum = 0.3f;
  Tensor y = batch_norm(x, gamma, beta, rm, rv, true, momentum, 1e-5f);

  Stats s = channel_stats(x);
  expect_abs_close(y, bn_reference(x, s.mean, s.var, gamma, beta, 1e-5), 1e-4f);
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_NEAR(rm.at({c}), (1 - momentum) * rm0[c] + momentum * s.mean[c], 1e-5);
    EXPECT_NEAR(rv.at({c}), (1 - momentum) * rv0[c] + momentum * s.var_unbiased[c], 1e-4);
  }
}

TEST(BatchNorm, EvalUsesRunningStatisticsAndLeavesThemAlone) {
  Rng rng(2);
  Tensor x = Tensor::randn({2, 3, 4, 4}, rng);
  Tensor gamma = Tensor::randn({3}, rng), beta = Tensor::randn({3}, rng);
  Tensor rm = Tensor::randn({3}, rng), rv = Tensor::uniform({3}, rng, 0.5f, 2.f);
  const auto rm0 = rm.to_vector(), rv0 = rv.to_vector();
  Tensor y = batch_norm(x, gamma, beta, rm, rv, false, 0.1f, 1e-3f);
  std::vector<double> m(rm0.begin(), rm0.end()), v(rv0.begin(), rv0.end());
  expect_abs_close(y, bn_reference(x, m, v, gamma, beta, 1e-3), 1e-5f);
  EXPECT_EQ(rm.to_vector(), rm0);
  EXPECT_EQ(rv.to_vector(), rv0);
}

TEST(BatchNorm, NoAffineAndTwoDimensionalInput) {
  Rng rng(3);
  Tensor x = Tensor::randn({6, 5}, rng);  // [N, C], as BatchNorm1d
  Tensor rm = Tensor::zeros({5}), rv = Tensor::ones({5});
  Tensor y = batch_norm(x, Tensor(), Tensor(), rm, rv, true);
  Stats s = channel_stats(x);
  expect_abs_close(y, bn_reference(x, s.mean, s.var, Tensor(), Tensor(), 1e-5), 1e-4f);
  // Training without running statistics (track_running_stats=False) is allowed.
  Tensor none_m, none_v;
  expect_abs_close(batch_norm(x, Tensor(), Tensor(), none_m, none_v, true), y, 0.f);
}

TEST(BatchNorm, GradcheckTrainMode) {
  Rng rng(4);
  Tensor x = Tensor::randn({3, 2, 3, 4}, rng).set_requires_grad();
  Tensor gamma = Tensor::uniform({2}, rng, 0.5f, 1.5f).set_requires_grad();
  Tensor beta = Tensor::randn({2}, rng).set_requires_grad();
  Tensor rm = Tensor::zeros({2}), rv = Tensor::ones({2});
  GradcheckOptions go;
  go.max_points = 512;
  GradcheckResult r =
      gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, true); },
                {x, gamma, beta}, go);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(r.checked, x.numel() + 4);
}

TEST(BatchNorm, GradcheckTrainModeNoAffine2D) {
  Rng rng(5);
  Tensor x = Tensor::randn({5, 3}, rng).set_requires_grad();
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), rm, rv, true); }, {x});
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(BatchNorm, GradcheckEvalMode) {
  Rng rng(6);
  Tensor x = Tensor::randn({2, 3, 3, 2}, rng).set_requires_grad();
  Tensor gamma = Tensor::randn({3}, rng).set_requires_grad();
  Tensor beta = Tensor::randn({3}, rng).set_requires_grad();
  Tensor rm = Tensor::randn({3}, rng), rv = Tensor::uniform({3}, rng, 0.5f, 2.f);
  GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); }, {x, gamma, beta});
  EXPECT_TRUE(r.ok) << r.report;
}

// Only the input gradient asked for (attribution through a frozen network).
TEST(BatchNorm, InputGradientAloneMatchesFullBackward) {
  Rng rng(7);
  Tensor x = Tensor::randn({2, 3, 4, 4}, rng).set_requires_grad();
  Tensor gamma = Tensor::randn({3}, rng), beta = Tensor::randn({3}, rng);
  Tensor gy = Tensor::randn({2, 3, 4, 4}, rng);
  for (bool training : {true, false}) {
    Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
    Tensor gx = grad({batch_norm(x, gamma, beta, rm, rv, training)}, {gy}, {x})[0];
    Tensor g2 = gamma.clone().set_requires_grad(), b2 = beta.clone().set_requires_grad();
    Tensor rm2 = Tensor::zeros({3}), rv2 = Tensor::ones({3});
    auto all = grad({batch_norm(x, g2, b2, rm2, rv2, training)}, {gy}, {x, g2, b2});
    expect_abs_close(gx, all[0], 1e-5f);
  }
}

TEST(BatchNorm, ShapeErrorsNameTheOpAndShapes) {
  Tensor x = Tensor::zeros({2, 4, 3, 3});
  Tensor rm = Tensor::zeros({4}), rv = Tensor::ones({4});
  std::string m = error_of([&] { batch_norm(x, Tensor::ones({3}), Tensor(), rm, rv, true); });
  EXPECT_NE(m.find("batch_norm: gamma has shape [3] but input [2, 4, 3, 3] has 4 channels"), std::string::npos) << m;

  Tensor bad = Tensor::zeros({5});
  m = error_of([&] { batch_norm(x, Tensor(), Tensor(), bad, rv, true); });
  EXPECT_NE(m.find("running_mean has shape [5]"), std::string::npos) << m;

  Tensor none_m, none_v;
  m = error_of([&] { batch_norm(x, Tensor(), Tensor(), none_m, none_v, false); });
  EXPECT_NE(m.find("eval mode needs running_mean"), std::string::npos) << m;

  Tensor one = Tensor::zeros({1, 4});
  m = error_of([&] { batch_norm(one, Tensor(), Tensor(), rm, rv, true); });
  EXPECT_NE(m.find("more than one value per channel"), std::string::npos) << m;
  EXPECT_NE(m.find("[1, 4]"), std::string::npos) << m;

  m = error_of([&] { batch_norm(Tensor::zeros({4}), Tensor(), Tensor(), rm, rv, true); });
  EXPECT_NE(m.find("batch_norm: input must be [N, C, ...], got shape [4]"), std::string::npos) << m;
}

}  // namespace
}  // namespace glimpse
