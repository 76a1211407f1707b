// Localisation and faithfulness metrics; see metrics.h.
#include "attribution/metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "attribution/internal.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/parallel.h"
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

// The baseline image of one [1, C, H, W] CPU image (deletion_curve, insertion_curve, rise_curves).
Tensor baseline_image(const Tensor& img, Baseline b, float blur_sigma) {
  const int64_t C = img.size(1), HW = img.size(2) * img.size(3);
  if (b == Baseline::Zero) return Tensor::zeros(img.shape());
  if (b == Baseline::Blur) return gaussian_blur(img, blur_sigma);
  Tensor base = Tensor::empty(img.shape());
  for (int64_t c = 0; c < C; ++c) {
    double m = 0;
    for (int64_t i = 0; i < HW; ++i) m += img.data()[c * HW + i];
    std::fill_n(base.data() + c * HW, HW, static_cast<float>(m / HW));
  }
  return base;
}

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
  const Tensor base = baseline_image(img, b, opt.blur_sigma);
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

std::vector<CurvePair> rise_curves(Module& model, const Tensor& images, const Tensor& maps,
                                   const std::vector<int64_t>& targets, const CurveOptions& opt,
                                   CurveAnchors* anchors) {
  const char* what = "rise_curves";
  detail::check_input(model, images, what);
  GLIMPSE_CHECK(opt.steps >= 1, what, ": steps = ", opt.steps, " (must be >= 1)");
  GLIMPSE_CHECK(opt.batch >= 1, what, ": batch = ", opt.batch, " (must be >= 1)");
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3), HW = H * W,
                CHW = C * HW;
  GLIMPSE_CHECK(maps.defined() && maps.numel() == N * HW && maps.size(0) == N && maps.size(-1) == W &&
                    maps.size(-2) == H && (maps.dim() == 3 || (maps.dim() == 4 && maps.size(1) == 1)),
                what, ": maps must be [N, H, W] or [N, 1, H, W] = [", N, ", ", H, ", ", W, "], got ",
                maps.defined() ? shape_str(maps.shape()) : std::string("an undefined tensor"));
  GLIMPSE_CHECK(static_cast<int64_t>(targets.size()) == N, what, ": ", targets.size(), " targets for ", N, " images");
  const int S = opt.steps;
  const Baseline bdel = opt.baseline == Baseline::Default ? Baseline::Zero : opt.baseline;
  const Baseline bins = opt.baseline == Baseline::Default ? Baseline::Blur : opt.baseline;

  const Tensor X = detail::cpu(images), M = detail::cpu(maps);
  std::vector<std::vector<int64_t>> order(N);
  std::vector<Tensor> base_del(N), base_ins(N);
  for (int64_t i = 0; i < N; ++i) {
    order[i] = order_by_map(std::vector<float>(M.data() + i * HW, M.data() + (i + 1) * HW));
    const Tensor xi = X.slice(i, i + 1).contiguous();
    base_del[i] = baseline_image(xi, bdel, opt.blur_sigma);
    base_ins[i] = bins == bdel ? base_del[i] : baseline_image(xi, bins, opt.blur_sigma);
  }

  // The distinct perturbed images ("points"). A point is image i with the first n of its pixels
  // (in map order) taken from `source` into `start`. Copies that are the same whatever the step are
  // keyed so that they are forwarded once: the clean image (deletion n = 0, insertion n = HW), a
  // full baseline (deletion n = HW, insertion n = 0), and the all-zero image shared by all images.
  struct Point {
    int64_t image;
    bool deletion;  // start = image, source = baseline (else the other way round)
    int64_t n;
  };
  std::vector<Point> points;
  std::vector<int64_t> clean(N, -1), full_del(N, -1), full_ins(N, -1);
  int64_t zero = -1;
  auto add = [&](int64_t& slot, Point p) {
    if (slot < 0) {
      slot = static_cast<int64_t>(points.size());
      points.push_back(p);
    }
    return slot;
  };
  // index[i][curve][k]: the point of step k of image i's deletion (curve 0) or insertion (curve 1).
  std::vector<std::array<std::vector<int64_t>, 2>> index(N);
  for (int64_t i = 0; i < N; ++i)
    for (int curve = 0; curve < 2; ++curve) {
      const bool del = curve == 0;
      const Baseline b = del ? bdel : bins;
      index[i][curve].resize(S + 1);
      for (int k = 0; k <= S; ++k) {
        const int64_t n = std::llround(static_cast<double>(k) / S * HW);
        // how much of the baseline the copy shows: none, all, or part
        const int64_t shown = del ? n : HW - n;
        int64_t u;
        if (shown == 0) {
          u = add(clean[i], {i, true, 0});
        } else if (shown == HW && b == Baseline::Zero) {
          u = add(zero, {i, true, HW});
        } else if (shown == HW) {
          // one full baseline per image when both curves use the same kind
          u = (del || bins == bdel) ? add(full_del[i], {i, true, HW}) : add(full_ins[i], {i, false, 0});
        } else {
          u = static_cast<int64_t>(points.size());
          points.push_back({i, del, n});
        }
        index[i][curve][k] = u;
      }
    }

  // The map-independent points (anchors): kind 0 clean, 1 full deletion baseline, 2 full insertion
  // baseline (per image), 3 the all-zero image (anchor slot 3 N). Each point's anchor slot, or -1.
  std::vector<int64_t> anchor_of(points.size(), -1);
  for (int64_t i = 0; i < N; ++i) {
    if (clean[i] >= 0) anchor_of[clean[i]] = i;
    if (full_del[i] >= 0) anchor_of[full_del[i]] = N + i;
    if (full_ins[i] >= 0) anchor_of[full_ins[i]] = 2 * N + i;
  }
  if (zero >= 0) anchor_of[zero] = 3 * N;
  if (anchors && anchors->images >= 0)
    GLIMPSE_CHECK(anchors->images == N, what, ": the anchors were kept for ", anchors->images, " images, not ", N);
  const bool reuse = anchors && anchors->images == N;

  detail::EvalModeGuard eval(model);
  NoGradGuard no_grad;
  // The points to forward: all, or those whose anchor was not kept.
  std::vector<int64_t> todo;
  for (int64_t u = 0; u < static_cast<int64_t>(points.size()); ++u)
    if (!reuse || anchor_of[u] < 0 || anchors->slot[anchor_of[u]] < 0) todo.push_back(u);
  const int64_t P = static_cast<int64_t>(todo.size());
  int64_t K = reuse ? anchors->classes : 0;
  std::vector<float> prob(points.size() * static_cast<size_t>(std::max<int64_t>(K, 1)));  // [points, K]
  for (int64_t u0 = 0; u0 < P; u0 += opt.batch) {
    const int64_t u1 = std::min(P, u0 + opt.batch);
    Tensor batch = Tensor::empty({u1 - u0, C, H, W});
    float* bp = batch.data();
    const float* xp = X.data();
    parallel_for(u1 - u0, [&](int64_t j) {
      const Point& p = points[todo[u0 + j]];
      const float* img = xp + p.image * CHW;
      const float* base = (p.deletion ? base_del : base_ins)[p.image].data();
      const float* start = p.deletion ? img : base;
      const float* source = p.deletion ? base : img;
      float* dst = bp + j * CHW;
      std::copy_n(start, CHW, dst);
      const int64_t* ord = order[p.image].data();
      for (int64_t c = 0; c < C; ++c)
        for (int64_t q = 0; q < p.n; ++q) dst[c * HW + ord[q]] = source[c * HW + ord[q]];
    });
    Tensor logits = model(batch.to(images.device()));
    GLIMPSE_CHECK(logits.dim() == 2, what, ": the model's output must be logits [N, classes]; got ",
                  shape_str(logits.shape()));
    Tensor pr = detail::cpu(softmax(logits, 1));
    GLIMPSE_CHECK(K == 0 || pr.size(1) == K, what, ": the model gave ", pr.size(1), " classes, the anchors ", K);
    if (K == 0) {
      K = pr.size(1);
      prob.resize(points.size() * static_cast<size_t>(K));
    }
    for (int64_t j = 0; j < u1 - u0; ++j) std::copy_n(pr.data() + j * K, K, prob.data() + todo[u0 + j] * K);
  }
  if (anchors) {
    if (!reuse) *anchors = {N, K, std::vector<int64_t>(3 * N + 1, -1), {}};
    for (int64_t u = 0; u < static_cast<int64_t>(points.size()); ++u) {
      const int64_t a = anchor_of[u];
      if (a < 0) continue;
      int64_t& row = anchors->slot[a];
      if (row < 0) {  // keep it
        row = static_cast<int64_t>(anchors->rows.size()) / K;
        anchors->rows.insert(anchors->rows.end(), prob.data() + u * K, prob.data() + (u + 1) * K);
      } else if (reuse) {
        std::copy_n(anchors->rows.data() + row * K, K, prob.data() + u * K);
      }
    }
  }
  std::vector<CurvePair> out(N);
  for (int64_t i = 0; i < N; ++i) {
    GLIMPSE_CHECK(targets[i] >= 0 && targets[i] < K, what, ": target class ", targets[i],
                  " is out of range; the model has ", K, " classes");
    for (int curve = 0; curve < 2; ++curve) {
      Curve& c = curve == 0 ? out[i].deletion : out[i].insertion;
      for (int k = 0; k <= S; ++k) {
        c.fraction.push_back(static_cast<double>(k) / S);
        c.probability.push_back(prob[index[i][curve][k] * K + targets[i]]);
      }
      c.auc = trapezoid_auc(c.probability);
    }
  }
  return out;
}

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
