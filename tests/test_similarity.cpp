// Spearman rank correlation and SSIM of two maps (attribution/similarity.h) on cases worked by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "attribution/similarity.h"

using glimpse::Tensor;

namespace {

Tensor map_of(const std::vector<float>& v, int64_t h, int64_t w) {
  Tensor t = Tensor::empty({h, w});
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

TEST(Spearman, OrderNotValues) {
  const Tensor a = map_of({1, 2, 3, 4}, 2, 2);
  EXPECT_DOUBLE_EQ(glimpse::attr::spearman_correlation(a, map_of({10, 20, 30, 400}, 2, 2)), 1.0);  // monotone
  EXPECT_DOUBLE_EQ(glimpse::attr::spearman_correlation(a, map_of({4, 3, 2, 1}, 2, 2)), -1.0);
  // Ties: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5).
  EXPECT_NEAR(glimpse::attr::spearman_correlation(map_of({1, 2, 2, 3}, 2, 2), a), 4.5 / std::sqrt(22.5), 1e-12);
  // [1, H, W] and [H, W] are the same map.
  Tensor b = map_of({1, 2, 3, 4}, 2, 2).view({1, 2, 2});
  EXPECT_DOUBLE_EQ(glimpse::attr::spearman_correlation(a, b), 1.0);
  EXPECT_TRUE(std::isnan(glimpse::attr::spearman_correlation(a, map_of({5, 5, 5, 5}, 2, 2))));  // constant
  EXPECT_THROW(glimpse::attr::spearman_correlation(a, map_of({1, 2, 3}, 1, 3)), std::exception);
}

TEST(Ssim, HandComputedWindows) {
  constexpr double C1 = 1e-4, C2 = 9e-4;
  // Two constant 7x7 maps (one window, no variance): (2 * 0.2 * 0.6 + C1) / (0.04 + 0.36 + C1).
  const Tensor a = map_of(std::vector<float>(49, 0.2f), 7, 7), b = map_of(std::vector<float>(49, 0.6f), 7, 7);
  const double mu_a = static_cast<double>(0.2f), mu_b = static_cast<double>(0.6f);
  EXPECT_NEAR(glimpse::attr::ssim(a, b), (2 * mu_a * mu_b + C1) / (mu_a * mu_a + mu_b * mu_b + C1), 1e-12);
  // One cell at 1 among 49 zeros, against all zeros: mean 1/49, sample variance 1/49, so
  // SSIM = C1 C2 / ((1/49^2 + C1)(1/49 + C2)).
  std::vector<float> spike(49, 0.f);
  spike[24] = 1.f;
  const Tensor s = map_of(spike, 7, 7), z = map_of(std::vector<float>(49, 0.f), 7, 7);
  EXPECT_NEAR(glimpse::attr::ssim(s, z), C1 * C2 / ((1.0 / 2401 + C1) * (1.0 / 49 + C2)), 1e-12);
  EXPECT_NEAR(glimpse::attr::ssim(s, s), 1.0, 1e-12);
  // A 9x8 map has 3 x 2 windows; identical maps give 1 in each.
  std::vector<float> ramp(72);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<float>(i) / 72.f;
  const Tensor r = map_of(ramp, 9, 8);
  EXPECT_NEAR(glimpse::attr::ssim(r, r), 1.0, 1e-12);
  // Its inverse anti-correlates in every window: SSIM < 0.
  std::vector<float> inv(72);
  for (size_t i = 0; i < inv.size(); ++i) inv[i] = 1.f - ramp[i];
  EXPECT_LT(glimpse::attr::ssim(r, map_of(inv, 9, 8)), 0.0);
  EXPECT_THROW(
      glimpse::attr::ssim(map_of(std::vector<float>(36, 0.f), 6, 6), map_of(std::vector<float>(36, 0.f), 6, 6)),
      std::exception);
  EXPECT_THROW(glimpse::attr::ssim(r, s), std::exception);
}

}  // namespace
