// How alike are two maps? The two measures of the sanity checks of Adebayo et al., "Sanity Checks
// for Saliency Maps" (NeurIPS 2018), used by `melanoma sanity` to compare a trained network's maps
// with those of the same network with re-initialized layers.
//
//   Spearman rank correlation: the Pearson correlation of the two maps' mid-ranks (tied values
//     share the mean of their ranks), over all cells. 1: the same ordering of the cells; 0: none.
//     NaN when either map is constant (no ordering to compare).
//   SSIM (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004), as scikit-image's structural_similarity
//     computes it by default: 7x7 uniform windows, sample (N - 1) variances and covariance,
//     K1 = 0.01, K2 = 0.03, data range L = 1 (maps normalized to [0, 1]), C1 = (K1 L)^2,
//     C2 = (K2 L)^2, per window
//       SSIM = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)),
//     averaged over every window that fits inside the map (the border (7 - 1) / 2 cells dropped).
//     Maps smaller than 7x7 are an error.
#pragma once
#include "core/tensor.h"

namespace glimpse::attr {

// a, b: one map each ([H, W], [1, H, W] or [1, 1, H, W]), the same number of cells.
double spearman_correlation(const Tensor& a, const Tensor& b);
// a, b: [H, W] (or with leading 1s), the same shape, values in about [0, 1].
double ssim(const Tensor& a, const Tensor& b);

}  // namespace glimpse::attr
