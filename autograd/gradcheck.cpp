#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace glimpse {
namespace {

double weighted_sum(const Tensor& out, const Tensor& r) {
  auto o = out.to_vector();
  auto w = r.to_vector();
  double s = 0;
  for (size_t i = 0; i < o.size(); ++i) s += static_cast<double>(o[i]) * w[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  GradcheckResult res;
  Rng rng(opt.seed);

  // Analytic gradients.
  std::vector<Tensor> wrt;
  std::vector<size_t> which;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) {
      wrt.push_back(inputs[i]);
      which.push_back(i);
    }
  GLIMPSE_CHECK(!wrt.empty(), "gradcheck: no input has requires_grad set");
  Tensor out = f(inputs);
  Tensor r = Tensor::uniform(out.shape(), rng, -1.f, 1.f);
  std::vector<Tensor> analytic = grad({out}, {r}, wrt);

  std::ostringstream report;
  int reported = 0;
  for (size_t k = 0; k < wrt.size(); ++k) {
    Tensor x = wrt[k];
    const int64_t n = x.numel();
    std::vector<int64_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    if (n > opt.max_points) {
      std::shuffle(idx.begin(), idx.end(), rng.engine());
      idx.resize(opt.max_points);
    }
    auto a = analytic[k].to_vector();
    float* px = x.data();
    int64_t checked = 0, skipped = 0;
    for (int64_t i : idx) {
      const float orig = px[i];
      const double h = opt.step;
      double l[3];
      const float offsets[3] = {-1.f, 0.f, 1.f};
      {
        NoGradGuard ng;
        for (int j = 0; j < 3; ++j) {
          px[i] = orig + offsets[j] * static_cast<float>(h);
          l[j] = weighted_sum(f(inputs), r);
        }
      }
      px[i] = orig;
      const double left = (l[1] - l[0]) / h, right = (l[2] - l[1]) / h;
      const double numeric = (l[2] - l[0]) / (2 * h);
      const double scale = std::max({std::abs(left), std::abs(right), 1e-2});
      if (std::abs(left - right) > opt.kink_tolerance * scale + 10 * opt.atol) {
        ++skipped;
        continue;
      }
      ++checked;
      const double an = a[i];
      if (std::abs(an - numeric) > opt.atol + opt.rtol * std::max(std::abs(an), std::abs(numeric))) {
        res.ok = false;
        if (reported++ < 8)
          report << "input " << which[k] << " " << shape_str(x.shape()) << " element " << i << ": analytic " << an
                 << ", numeric " << numeric << "\n";
      }
    }
    res.checked += checked;
    res.skipped_kinks += skipped;
    if (skipped * 100 > (checked + skipped) * opt.max_kink_fraction_pct) {
      res.ok = false;
      report << "input " << which[k] << ": " << skipped << " of " << (checked + skipped)
             << " points skipped as kinks; the check would be vacuous\n";
    }
  }
  res.report = report.str();
  return res;
}

}  // namespace glimpse
