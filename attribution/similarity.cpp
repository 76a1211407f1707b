// Spearman rank correlation and SSIM of two maps; see similarity.h.
#include "attribution/similarity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace glimpse::attr {
namespace {

// The map's values as doubles, with its height and width ([H, W] after dropping leading 1s).
std::vector<double> cells(const Tensor& t, const char* who, int64_t& h, int64_t& w) {
  GLIMPSE_CHECK(t.defined() && t.dim() >= 2, who, ": expected a map [H, W], got ",
                t.defined() ? shape_str(t.shape()) : std::string("an undefined tensor"));
  for (int64_t d = 0; d + 2 < t.dim(); ++d)
    GLIMPSE_CHECK(t.size(d) == 1, who, ": expected one map ([H, W], [1, H, W] or [1, 1, H, W]), got ",
                  shape_str(t.shape()));
  h = t.size(t.dim() - 2);
  w = t.size(t.dim() - 1);
  const Tensor c = t.to(Device::cpu()).contiguous();
  return std::vector<double>(c.data(), c.data() + c.numel());
}

std::vector<double> mid_ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && v[order[j]] == v[order[i]]) ++j;
    const double mid = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) r[order[k]] = mid;
    i = j;
  }
  return r;
}

}  // namespace

double spearman_correlation(const Tensor& a, const Tensor& b) {
  int64_t ha = 0, wa = 0, hb = 0, wb = 0;
  const std::vector<double> va = cells(a, "spearman_correlation", ha, wa),
                            vb = cells(b, "spearman_correlation", hb, wb);
  GLIMPSE_CHECK(va.size() == vb.size(), "spearman_correlation: the maps have ", va.size(), " and ", vb.size(),
                " cells");
  for (size_t i = 0; i < va.size(); ++i)
    GLIMPSE_CHECK(!std::isnan(va[i]) && !std::isnan(vb[i]), "spearman_correlation: cell ", i, " is NaN");
  const std::vector<double> ra = mid_ranks(va), rb = mid_ranks(vb);
  const double n = static_cast<double>(ra.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (saa == 0 || sbb == 0) return std::numeric_limits<double>::quiet_NaN();
  return sab / std::sqrt(saa * sbb);
}

double ssim(const Tensor& a, const Tensor& b) {
  int64_t h = 0, w = 0, hb = 0, wb = 0;
  const std::vector<double> va = cells(a, "ssim", h, w), vb = cells(b, "ssim", hb, wb);
  GLIMPSE_CHECK(h == hb && w == wb, "ssim: the maps are ", h, "x", w, " and ", hb, "x", wb);
  constexpr int64_t kWin = 7;
  GLIMPSE_CHECK(h >= kWin && w >= kWin, "ssim: the maps (", h, "x", w, ") are smaller than the 7x7 window");
  constexpr double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
  const double np = kWin * kWin, cov_norm = np / (np - 1);
  double total = 0;
  int64_t windows = 0;
  for (int64_t y = 0; y + kWin <= h; ++y)
    for (int64_t x = 0; x + kWin <= w; ++x) {
      double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
      for (int64_t i = y; i < y + kWin; ++i)
        for (int64_t j = x; j < x + kWin; ++j) {
          const double p = va[static_cast<size_t>(i * w + j)], q = vb[static_cast<size_t>(i * w + j)];
          sa += p;
          sb += q;
          saa += p * p;
          sbb += q * q;
          sab += p * q;
        }
      const double ma = sa / np, mb = sb / np;
      const double var_a = cov_norm * (saa / np - ma * ma), var_b = cov_norm * (sbb / np - mb * mb);
      const double cov = cov_norm * (sab / np - ma * mb);
      total += (2 * ma * mb + C1) * (2 * cov + C2) / ((ma * ma + mb * mb + C1) * (var_a + var_b + C2));
      ++windows;
    }
  return total / static_cast<double>(windows);
}

}  // namespace glimpse::attr
