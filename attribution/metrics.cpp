// Localisation and faithfulness metrics; see metrics.h.
#include "attribution/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "attribution/internal.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/rng.h"

namespace glimpse::attr {

namespace {

void check_same_size(int64_t w, int64_t h, const io::Mask& m, const char* what) {
  GLIMPSE_CHECK(m.width == w && m.height == h, what, ": the map is ", w, "x", h, " but the mask is ", m.width, "x",
                m.height, "; resize one to the other (resize_mask)");
}

// Pixel order by map value, largest first, ties by raster order.
std::vector<int64_t> order_by_map(const std::vector<float>& v) {
  std::vector<int64_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
    const float va = v[a] == v[a] ? v[a] : -std::numeric_limits<float>::infinity();
    const float vb = v[b] == v[b] ? v[b] : -std::numeric_limits<float>::infinity();
    return va > vb;
  });
  return idx;
}

}  // namespace

double dice(const io::Mask& pred, const io::Mask& truth) {
  check_same_size(pred.width, pred.height, truth, "dice");
  int64_t inter = 0, a = 0, b = 0;
  for (size_t i = 0; i < pred.data.size(); ++i) {
    a += pred.data[i] != 0, b += truth.data[i] != 0;
    inter += pred.data[i] && truth.data[i];
  }
  return a + b == 0 ? 1.0 : 2.0 * inter / static_cast<double>(a + b);
}

double iou(const io::Mask& pred, const io::Mask& truth) {
  check_same_size(pred.width, pred.height, truth, "iou");
  int64_t inter = 0, uni = 0;
  for (size_t i = 0; i < pred.data.size(); ++i) {
    inter += pred.data[i] && truth.data[i];
    uni += pred.data[i] || truth.data[i];
  }
  return uni == 0 ? 1.0 : static_cast<double>(inter) / uni;
}

double energy_inside(const Tensor& map, const io::Mask& truth) {
  int64_t h = 0, w = 0;
  std::vector<float> v = io::map_values(map, h, w, "energy_inside");
  check_same_size(w, h, truth, "energy_inside");
  double in = 0, all = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double e = v[i] > 0 ? v[i] : 0.0;  // also drops NaN
    all += e;
    if (truth.data[i]) in += e;
  }
  return all > 0 ? in / all : 0.0;
}

double peak_distance(const Tensor& map, const io::Mask& truth) {
  int64_t h = 0, w = 0;
  std::vector<float> v = io::map_values(map, h, w, "pointing_game");
  check_same_size(w, h, truth, "pointing_game");
  int64_t peak = 0;
  for (int64_t i = 1; i < static_cast<int64_t>(v.size()); ++i)
    if (v[i] > v[peak]) peak = i;
  const int64_t px = peak % w, py = peak / w;
  double best = std::numeric_limits<double>::infinity();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      if (truth.at(x, y)) best = std::min(best, std::hypot(double(x - px), double(y - py)));
  return best;
}

bool pointing_game(const Tensor& map, const io::Mask& truth, double tolerance) {
  GLIMPSE_CHECK(tolerance >= 0, "pointing_game: tolerance = ", tolerance, " (must be >= 0)");
  return peak_distance(map, truth) <= tolerance;
}

LocalizationScores localization_scores(const Tensor& map, const io::Mask& truth, const Threshold& threshold,
                                       double tolerance) {
  LocalizationScores s;
  const io::Mask pred = threshold_map(map, threshold);
  s.dice = dice(pred, truth);
  s.iou = iou(pred, truth);
  s.energy = energy_inside(map, truth);
  s.peak_distance = peak_distance(map, truth);
  s.hit = s.peak_distance <= tolerance;
  return s;
}

// ---------------------------------------------------------------------------------------------
// RISE deletion / insertion

Baseline baseline_from_name(const std::string& name) {
  if (name == "default") return Baseline::Default;
  if (name == "zero") return Baseline::Zero;
  if (name == "blur") return Baseline::Blur;
  if (name == "mean") return Baseline::Mean;
  GLIMPSE_FAIL("unknown baseline '", name, "'; known: default, zero, blur, mean");
}

Tensor gaussian_blur(const Tensor& images, float sigma) {
  GLIMPSE_CHECK(images.defined() && images.dim() == 4, "gaussian_blur: expected [N, C, H, W], got ",
                images.defined() ? shape_str(images.shape()) : std::string("an undefined tensor"));
  Tensor src = detail::cpu(images);
  Tensor out = src.clone();
  if (!(sigma > 0)) return out;
  const int64_t R = static_cast<int64_t>(std::ceil(3 * sigma));
  std::vector<float> k(2 * R + 1);
  float ks = 0;
  for (int64_t i = -R; i <= R; ++i) ks += k[i + R] = std::exp(-0.5f * (i * i) / (sigma * sigma));
  for (float& x : k) x /= ks;
  const int64_t planes = src.size(0) * src.size(1), H = src.size(2), W = src.size(3);
  std::vector<float> tmp(H * W);
  for (int64_t p = 0; p < planes; ++p) {
    float* o = out.data() + p * H * W;
    const float* s = src.data() + p * H * W;
    for (int64_t y = 0; y < H; ++y)  // along x, borders replicated
      for (int64_t x = 0; x < W; ++x) {
        float acc = 0;
        for (int64_t i = -R; i <= R; ++i) acc += k[i + R] * s[y * W + std::clamp<int64_t>(x + i, 0, W - 1)];
        tmp[y * W + x] = acc;
      }
    for (int64_t y = 0; y < H; ++y)  // along y
      for (int64_t x = 0; x < W; ++x) {
        float acc = 0;
        for (int64_t i = -R; i <= R; ++i) acc += k[i + R] * tmp[std::clamp<int64_t>(y + i, 0, H - 1) * W + x];
        o[y * W + x] = acc;
      }
  }
  return out;
}

double trapezoid_auc(const std::vector<double>& p) {
  GLIMPSE_CHECK(p.size() >= 2, "trapezoid_auc: needs at least 2 points, got ", p.size());
  double a = 0;
  for (size_t k = 0; k + 1 < p.size(); ++k) a += (p[k] + p[k + 1]) / 2;
  return a / static_cast<double>(p.size() - 1);
}

namespace {

Curve rise_curve(Module& model, const Tensor& image, const Tensor& map, int64_t target, const CurveOptions& opt,
                 bool deletion) {
  const char* what = deletion ? "deletion_curve" : "insertion_curve";
  detail::check_input(model, image, what);
  GLIMPSE_CHECK(image.size(0) == 1, what, ": one image [1, C, H, W] at a time, got ", shape_str(image.shape()));
  GLIMPSE_CHECK(opt.steps >= 1, what, ": steps = ", opt.steps, " (must be >= 1)");
  GLIMPSE_CHECK(opt.batch >= 1, what, ": batch = ", opt.batch, " (must be >= 1)");
  const int64_t C = image.size(1), H = image.size(2), W = image.size(3), HW = H * W;
  int64_t mh = 0, mw = 0;
  const std::vector<float> v = io::map_values(map, mh, mw, what);
  GLIMPSE_CHECK(mh == H && mw == W, what, ": the map is ", mw, "x", mh, " but the image is ", W, "x", H);
  const std::vector<int64_t> order = order_by_map(v);

  Tensor img = detail::cpu(image);
  Baseline b = opt.baseline == Baseline::Default ? (deletion ? Baseline::Zero : Baseline::Blur) : opt.baseline;
  Tensor base;
  if (b == Baseline::Zero) {
    base = Tensor::zeros(img.shape());
  } else if (b == Baseline::Blur) {
    base = gaussian_blur(img, opt.blur_sigma);
  } else {
    base = Tensor::empty(img.shape());
    for (int64_t c = 0; c < C; ++c) {
      double m = 0;
      for (int64_t i = 0; i < HW; ++i) m += img.data()[c * HW + i];
      std::fill_n(base.data() + c * HW, HW, static_cast<float>(m / HW));
    }
  }
  // deletion starts from the image and writes the baseline; insertion the other way round.
  const Tensor& start = deletion ? img : base;
  const Tensor& source = deletion ? base : img;

  detail::EvalModeGuard eval(model);
  NoGradGuard no_grad;
  Curve curve;
  const int S = opt.steps;
  for (int k = 0; k <= S; ++k) curve.fraction.push_back(static_cast<double>(k) / S);
  curve.probability.resize(S + 1);
  for (int k0 = 0; k0 <= S; k0 += static_cast<int>(opt.batch)) {
    const int k1 = std::min<int>(S + 1, k0 + static_cast<int>(opt.batch));
    Tensor batch = Tensor::empty({k1 - k0, C, H, W});
    for (int k = k0; k < k1; ++k) {
      float* dst = batch.data() + (k - k0) * C * HW;
      std::copy_n(start.data(), C * HW, dst);
      const int64_t n = std::llround(static_cast<double>(k) / S * HW);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < C; ++c) dst[c * HW + order[j]] = source.data()[c * HW + order[j]];
    }
    Tensor logits = model(batch.to(image.device()));
    GLIMPSE_CHECK(logits.dim() == 2, what, ": the model's output must be logits [N, classes]; got ",
                  shape_str(logits.shape()));
    GLIMPSE_CHECK(target >= 0 && target < logits.size(1), what, ": target class ", target,
                  " is out of range; the model has ", logits.size(1), " classes");
    Tensor p = detail::cpu(softmax(logits, 1));
    for (int k = k0; k < k1; ++k) curve.probability[k] = p.data()[(k - k0) * p.size(1) + target];
  }
  curve.auc = trapezoid_auc(curve.probability);
  return curve;
}

}  // namespace

Curve deletion_curve(Module& model, const Tensor& image, const Tensor& map, int64_t target, const CurveOptions& opt) {
  return rise_curve(model, image, map, target, opt, true);
}

Curve insertion_curve(Module& model, const Tensor& image, const Tensor& map, int64_t target, const CurveOptions& opt) {
  return rise_curve(model, image, map, target, opt, false);
}

// ---------------------------------------------------------------------------------------------
// remove and retrain

Tensor mask_top_fraction(const Tensor& images, const Tensor& maps, float fraction) {
  return mask_top_fraction(images, maps, fraction, false);
}

Tensor mask_top_fraction(const Tensor& images, const Tensor& maps, float fraction, bool keep) {
  GLIMPSE_CHECK(images.defined() && images.dim() == 4, "mask_top_fraction: images must be [N, C, H, W], got ",
                images.defined() ? shape_str(images.shape()) : std::string("an undefined tensor"));
  GLIMPSE_CHECK(fraction >= 0.f && fraction <= 1.f, "mask_top_fraction: fraction = ", fraction, " is outside [0, 1]");
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3), HW = H * W;
  GLIMPSE_CHECK(maps.defined() && maps.numel() == N * HW && maps.size(0) == N && maps.size(-1) == W &&
                    maps.size(-2) == H && (maps.dim() == 3 || (maps.dim() == 4 && maps.size(1) == 1)),
                "mask_top_fraction: maps must be [N, H, W] or [N, 1, H, W] = [", N, ", ", H, ", ", W, "], got ",
                maps.defined() ? shape_str(maps.shape()) : std::string("an undefined tensor"));
  Tensor out = detail::cpu(images).clone();
  Tensor m = detail::cpu(maps);
  const int64_t top = static_cast<int64_t>(std::ceil(static_cast<double>(fraction) * HW - 1e-9));
  std::vector<uint8_t> hit(HW);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<float> v(m.data() + n * HW, m.data() + (n + 1) * HW);
    const std::vector<int64_t> order = order_by_map(v);
    std::fill(hit.begin(), hit.end(), keep ? 1 : 0);
    for (int64_t j = 0; j < top; ++j) hit[order[j]] = keep ? 0 : 1;
    for (int64_t c = 0; c < C; ++c) {
      float* p = out.data() + (n * C + c) * HW;
      double mean = 0;
      for (int64_t i = 0; i < HW; ++i) mean += p[i];
      const float fill = static_cast<float>(mean / HW);
      for (int64_t i = 0; i < HW; ++i)
        if (hit[i]) p[i] = fill;
    }
  }
  return images.device().is_cpu() ? out : out.to(images.device());
}

Tensor random_maps(int64_t n, int64_t height, int64_t width, uint64_t seed) {
  GLIMPSE_CHECK(n >= 1 && height >= 1 && width >= 1, "random_maps: bad shape [", n, ", ", height, ", ", width, "]");
  Rng rng(seed);
  return Tensor::uniform({n, height, width}, rng, 0.f, 1.f);
}

}  // namespace glimpse::attr
