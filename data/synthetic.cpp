// Synthetic dermoscopy-like images with ground-truth masks, for demos and tests that need no data.
//
// One image (synth_image), drawn in this order, every random choice from one Rng seeded per image:
//   skin     : a skin tone (light to tan) modulated by smooth fractal value noise (brightness,
//              redness) and fine grain;
//   cloth    : (p = 0.3, or always with force_cloth) the corner farthest from the lesion is covered
//              by a woven fabric whose print is dark irregular variegated blobs (dark rims, brown or
//              blue-grey centres) -- lesion-like spots, the "tablecloth" of the seed question;
//   lesion   : a blob whose border is r(theta) = R (1 + sum_k a_k cos(k theta + phi_k)) on a rotated
//              ellipse, with per-class size, border irregularity, edge sharpness and colours:
//                nevus (0)      small (R 0.11-0.19 N), round (a_k ~ 0.03), soft edge, one uniform brown;
//                melanoma (1)   large (R 0.20-0.31 N), irregular (a_k up to ~0.2, k <= 11), patches of
//                               black/dark brown, blue-grey veil, tan and reddish, dark dots;
//                seb. ker. (2)  medium (R 0.15-0.26 N), mildly irregular, sharp "stuck-on" edge, waxy
//                               light-to-mid brown with dark fissures ("cracks") and pale milia-like dots;
//              the mask is the blob's inside (alpha >= 1/2);
//   hairs    : (p = 0.45) 1-6 dark thin quadratic Bezier curves, over everything;
//   ruler    : (p = 0.25) a pale band with dark ticks (long every 5th) along one edge;
//   sticker  : (p = 0.2) a saturated disc with a white ring near a free corner;
//   vignette : (p = 0.3) the dark circular rim of a dermoscope.
// Ruler and sticker hide the lesion under them, so the mask is cleared there. Distractors are drawn
// independently of the class, so they carry no label information (a model that uses them is wrong,
// which is what attribution should reveal).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/progress.h"
#include "data/data.h"
#include "data/internal.h"

namespace fs = std::filesystem;

namespace glimpse::data {

using io::Image;
using io::Mask;

namespace {

constexpr float kPi = 3.14159265358979f;

struct Rgb {
  float r, g, b;
};
Rgb lerp(const Rgb& a, const Rgb& b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}
Rgb scale(const Rgb& a, float s) { return {a.r * s, a.g * s, a.b * s}; }
float smooth(float e0, float e1, float x) {
  const float t = std::clamp((x - e0) / (e1 - e0), 0.f, 1.f);
  return t * t * (3 - 2 * t);
}
Rgb jittered(const Rgb& c, Rng& rng, float amount) {
  return {c.r + rng.uniform(-amount, amount), c.g + rng.uniform(-amount, amount), c.b + rng.uniform(-amount, amount)};
}

// Value noise on a g x g lattice over [0, 1]^2 (smoothstep interpolation), values in [0, 1].
class ValueNoise {
 public:
  ValueNoise(Rng& rng, int grid) : g_(grid), v_(static_cast<size_t>((grid + 1) * (grid + 1))) {
    for (float& x : v_) x = rng.uniform();
  }
  float at(float u, float v) const {
    const float x = std::clamp(u, 0.f, 1.f) * g_, y = std::clamp(v, 0.f, 1.f) * g_;
    const int x0 = std::min(static_cast<int>(x), g_ - 1), y0 = std::min(static_cast<int>(y), g_ - 1);
    float tx = x - x0, ty = y - y0;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    auto V = [&](int i, int j) { return v_[static_cast<size_t>(j * (g_ + 1) + i)]; };
    return (1 - ty) * ((1 - tx) * V(x0, y0) + tx * V(x0 + 1, y0)) +
           ty * ((1 - tx) * V(x0, y0 + 1) + tx * V(x0 + 1, y0 + 1));
  }

 private:
  int g_;
  std::vector<float> v_;
};

// Octaves of value noise (grid doubling, amplitude halving), normalized to [0, 1].
class Fractal {
 public:
  Fractal(Rng& rng, int grid, int octaves) {
    for (int o = 0; o < octaves; ++o) oct_.emplace_back(rng, grid << o);
  }
  float at(float u, float v) const {
    float s = 0, a = 1, total = 0;
    for (const ValueNoise& n : oct_) {
      s += a * n.at(u, v);
      total += a;
      a *= 0.5f;
    }
    return s / total;
  }

 private:
  std::vector<ValueNoise> oct_;
};

// A closed blob: r(theta) = R (1 + sum_k a_k cos(k theta + phi_k)) on an ellipse of aspect `aspect`
// rotated by `angle`.
struct Blob {
  float cx = 0, cy = 0, R = 1, aspect = 1, angle = 0;
  std::vector<std::array<float, 3>> harmonics;  // k, a_k, phi_k

  static Blob make(Rng& rng, float cx, float cy, float R, float irregularity, int kmax) {
    Blob b;
    b.cx = cx, b.cy = cy, b.R = R;
    b.aspect = rng.uniform(0.75f, 1.f);
    b.angle = rng.uniform(0.f, kPi);
    float total = 0;
    for (int k = 2; k <= kmax; ++k) {
      const float a = irregularity * rng.uniform(0.3f, 1.f) / std::pow(static_cast<float>(k) - 1, 0.7f);
      b.harmonics.push_back({static_cast<float>(k), a, rng.uniform(0.f, 2 * kPi)});
      total += a;
    }
    if (total > 0.55f)  // keep r >= 0.45 R everywhere
      for (auto& h : b.harmonics) h[1] *= 0.55f / total;
    return b;
  }
  // Normalized radius: < 1 inside; `radius` gets the border's radius (pixels) in that direction.
  float rel(float x, float y, float* radius = nullptr, float* theta_out = nullptr) const {
    const float dx = x - cx, dy = y - cy, c = std::cos(angle), s = std::sin(angle);
    const float ex = c * dx + s * dy, ey = (-s * dx + c * dy) / aspect;
    const float rho = std::sqrt(ex * ex + ey * ey), theta = std::atan2(ey, ex);
    float f = 1;
    for (const auto& h : harmonics) f += h[1] * std::cos(h[0] * theta + h[2]);
    const float r = R * f;
    if (radius) *radius = r;
    if (theta_out) *theta_out = theta;
    return rho / r;
  }
};

struct Canvas {
  int64_t n;
  std::vector<Rgb> px;
  explicit Canvas(int64_t side) : n(side), px(static_cast<size_t>(side * side)) {}
  Rgb& at(int64_t x, int64_t y) { return px[static_cast<size_t>(y * n + x)]; }
  void blend(int64_t x, int64_t y, const Rgb& c, float a) {
    if (x < 0 || y < 0 || x >= n || y >= n || a <= 0) return;
    Rgb& p = at(x, y);
    p = lerp(p, c, std::min(a, 1.f));
  }
};

// ---- skin -----------------------------------------------------------------------------------------
void draw_skin(Canvas& cv, Rng& rng) {
  const int64_t N = cv.n;
  const Rgb light{238, 200, 182}, tan{196, 142, 112};
  Rgb base = lerp(light, tan, rng.uniform(0.f, 0.85f));
  base = jittered(base, rng, 8);
  const Fractal bright(rng, 3, 4), red(rng, 2, 3), fine(rng, 24, 2);
  const float redness = rng.uniform(4.f, 16.f);
  for (int64_t y = 0; y < N; ++y)
    for (int64_t x = 0; x < N; ++x) {
      const float u = (x + 0.5f) / N, v = (y + 0.5f) / N;
      const float b = 0.9f + 0.16f * bright.at(u, v) + 0.05f * (fine.at(u, v) - 0.5f);
      const float rd = (red.at(u, v) - 0.45f) * redness;
      cv.at(x, y) = {base.r * b + rd, base.g * b - 0.6f * rd, base.b * b - 0.3f * rd};
    }
}

// ---- the patterned cloth (lesion-like print) ---------------------------------------------------------
void draw_cloth(Canvas& cv, Rng& rng, int corner) {
  const int64_t N = cv.n;
  const float fx = (corner & 1) ? N : 0.f, fy = (corner & 2) ? N : 0.f;  // the corner's position
  float ux = N / 2.f - fx, uy = N / 2.f - fy;
  const float ul = std::sqrt(ux * ux + uy * uy);
  ux /= ul, uy /= ul;
  const float depth = rng.uniform(0.38f, 0.55f) * N;  // how far the cloth reaches towards the centre
  const float wob_a = rng.uniform(0.02f, 0.05f) * N, wob_f = rng.uniform(2.f, 5.f), wob_p = rng.uniform(0.f, 2 * kPi);
  static const Rgb fabrics[] = {{226, 216, 190}, {184, 198, 218}, {204, 218, 192}, {236, 234, 228}, {222, 196, 200}};
  const Rgb fabric = jittered(fabrics[rng.below(5)], rng, 6);
  const float period = rng.uniform(2.5f, 4.f) * N / 128.f;

  // The print: dark irregular variegated blobs on a jittered grid.
  std::vector<Blob> spots;
  std::vector<Rgb> spot_dark, spot_mid;
  const float cell = rng.uniform(0.13f, 0.18f) * N;
  for (float gy = cell / 2; gy < N; gy += cell)
    for (float gx = cell / 2; gx < N; gx += cell) {
      const float sx = gx + rng.uniform(-0.3f, 0.3f) * cell, sy = gy + rng.uniform(-0.3f, 0.3f) * cell;
      const float R = rng.uniform(0.24f, 0.4f) * cell;
      spots.push_back(Blob::make(rng, sx, sy, R, 0.35f, 9));
      spot_dark.push_back(jittered({58, 38, 30}, rng, 10));
      // brown centres, some with the blue-grey of a melanoma's veil
      spot_mid.push_back(rng.bernoulli(0.35f) ? jittered({104, 108, 128}, rng, 8) : jittered({128, 86, 62}, rng, 12));
    }
  const Fractal var(rng, 6, 2);

  for (int64_t y = 0; y < N; ++y)
    for (int64_t x = 0; x < N; ++x) {
      const float px = x + 0.5f, py = y + 0.5f;
      const float t = (px - fx) * ux + (py - fy) * uy;
      const float along = (px - fx) * -uy + (py - fy) * ux;
      const float edge = depth + wob_a * std::sin(wob_f * along / N * 2 * kPi + wob_p);
      const float a = std::clamp(edge - t + 0.5f, 0.f, 1.f);
      if (a <= 0) {
        // a soft shadow cast by the hand's edge onto... the skin side stays lit; darken a thin rim
        const float sh = std::clamp(1.f - (t - edge) / (0.03f * N), 0.f, 1.f);
        if (sh > 0) cv.at(x, y) = scale(cv.at(x, y), 1.f - 0.12f * sh);
        continue;
      }
      const float weave = 0.05f * std::sin(2 * kPi * px / period) * std::sin(2 * kPi * py / period);
      Rgb c = scale(fabric, 1.f + weave);
      for (size_t k = 0; k < spots.size(); ++k) {
        const Blob& s = spots[k];
        if (std::abs(px - s.cx) > 2 * s.R || std::abs(py - s.cy) > 2 * s.R) continue;
        float radius;
        const float d = s.rel(px, py, &radius);
        if (d >= 1.15f) continue;
        const float sa = std::clamp((1.f - d) * radius / 1.2f + 0.5f, 0.f, 1.f);
        // leopard-like: dark rim, browner variegated centre
        const Rgb inner = lerp(spot_mid[k], spot_dark[k], smooth(0.3f, 0.7f, var.at(px / N, py / N)));
        c = lerp(c, lerp(inner, spot_dark[k], smooth(0.55f, 0.9f, d)), sa * 0.95f);
      }
      cv.at(x, y) = lerp(cv.at(x, y), c, a);
    }
}

// ---- the lesion ------------------------------------------------------------------------------------
void draw_lesion(Canvas& cv, Mask& mask, Rng& rng, int64_t label, const Blob& blob) {
  const int64_t N = cv.n;
  const float px_scale = N / 128.f;
  const Fractal n1(rng, 3, 3), n2(rng, 4, 3), n3(rng, 5, 2), edge_noise(rng, 6, 2), texture(rng, 10, 2);
  const ValueNoise crack_a(rng, 7), crack_b(rng, 11);
  const float opacity = rng.uniform(0.85f, 1.f);

  // palettes
  Rgb nevus_col = jittered({134, 84, 60}, rng, 12);
  if (rng.bernoulli(0.3f)) nevus_col = scale(nevus_col, 0.8f);
  const Rgb mel_base = jittered({118, 76, 56}, rng, 10), mel_black = jittered({48, 32, 30}, rng, 8),
            mel_blue = jittered({104, 110, 134}, rng, 8), mel_tan = jittered({172, 122, 92}, rng, 10),
            mel_red = jittered({168, 86, 82}, rng, 10);
  const Rgb sk_base = jittered({170, 140, 100}, rng, 10), sk_crack = jittered({96, 70, 52}, rng, 10),
            sk_milia = jittered({236, 226, 204}, rng, 6);
  const float mel_t1 = rng.uniform(0.48f, 0.58f), mel_t2 = rng.uniform(0.5f, 0.62f), mel_t3 = rng.uniform(0.38f, 0.48f);

  // small round features: melanoma dots/globules, keratosis milia-like cysts
  struct Dot {
    float x, y, r;
  };
  std::vector<Dot> dots;
  const int ndots = label == 1   ? static_cast<int>(rng.below(10)) + 5
                    : label == 2 ? static_cast<int>(rng.below(9)) + 4
                                 : 0;
  for (int i = 0; i < ndots; ++i) {
    const float ang = rng.uniform(0.f, 2 * kPi), rad = std::sqrt(rng.uniform(0.f, 0.7f)) * blob.R;
    dots.push_back({blob.cx + rad * std::cos(ang), blob.cy + rad * std::sin(ang), rng.uniform(0.7f, 1.6f) * px_scale});
  }

  const float soft_base = (label == 0 ? 2.5f : label == 2 ? 0.8f : 1.2f) * px_scale;
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(blob.cx - 2.2f * blob.R)),
                x1 = std::min<int64_t>(N - 1, static_cast<int64_t>(blob.cx + 2.2f * blob.R)),
                y0 = std::max<int64_t>(0, static_cast<int64_t>(blob.cy - 2.2f * blob.R)),
                y1 = std::min<int64_t>(N - 1, static_cast<int64_t>(blob.cy + 2.2f * blob.R));
  for (int64_t y = y0; y <= y1; ++y)
    for (int64_t x = x0; x <= x1; ++x) {
      const float px = x + 0.5f, py = y + 0.5f;
      float radius, theta;
      const float d = blob.rel(px, py, &radius, &theta);
      if (d > 1.6f) continue;
      // melanoma: the edge is sharp in places and fades elsewhere
      const float soft =
          label == 1
              ? soft_base * (0.6f + 3.f * edge_noise.at(0.5f + 0.4f * std::cos(theta), 0.5f + 0.4f * std::sin(theta)))
              : soft_base;
      const float alpha = std::clamp((1.f - d) * radius / soft + 0.5f, 0.f, 1.f);
      if (d < 1.f) mask.at(x, y) = 1;
      if (alpha <= 0) continue;
      // lesion-local coordinates in [0, 1] for the colour fields
      const float u = 0.5f + (px - blob.cx) / (4 * blob.R), v = 0.5f + (py - blob.cy) / (4 * blob.R);
      Rgb c;
      if (label == 0) {
        c = scale(nevus_col, 0.92f + 0.08f * d + 0.06f * (n1.at(u, v) - 0.5f));
      } else if (label == 1) {
        c = mel_base;
        c = lerp(c, mel_tan, smooth(mel_t3, mel_t3 - 0.12f, n3.at(u, v)) * 0.9f);
        c = lerp(c, mel_red, smooth(0.6f, 0.75f, n3.at(v, u)) * 0.6f);
        c = lerp(c, mel_blue, smooth(mel_t2, mel_t2 + 0.1f, n2.at(u, v)) * 0.8f);
        c = lerp(c, mel_black, smooth(mel_t1, mel_t1 + 0.1f, n1.at(u, v)));
        c = scale(c, 0.9f + 0.2f * texture.at(u, v));
      } else {
        c = scale(sk_base, 0.88f + 0.24f * n1.at(u, v) + 0.1f * (texture.at(u, v) - 0.5f));
        // fissures: where a ridged noise crosses its mid level
        const float ridge = std::min(std::abs(crack_a.at(u, v) - 0.5f), std::abs(crack_b.at(v, u) - 0.5f) * 1.3f);
        c = lerp(c, sk_crack, (1.f - smooth(0.02f, 0.05f, ridge)) * 0.85f);
        // waxy sheen towards the upper left
        c = scale(c, 1.f + 0.06f * std::clamp(1.f - std::hypot(u - 0.4f, v - 0.4f) * 3.f, 0.f, 1.f));
      }
      for (const Dot& dt : dots) {
        const float dd = std::hypot(px - dt.x, py - dt.y);
        const float da = std::clamp(dt.r - dd + 0.5f, 0.f, 1.f) * std::clamp((1.f - d) * 4.f, 0.f, 1.f);
        if (da > 0) c = lerp(c, label == 1 ? mel_black : sk_milia, da * 0.9f);
      }
      cv.blend(x, y, c, alpha * opacity);
    }
}

// ---- hairs -------------------------------------------------------------------------------------------
void draw_hairs(Canvas& cv, Rng& rng) {
  const int64_t N = cv.n;
  const int count = 1 + static_cast<int>(rng.below(6));
  std::vector<float> alpha(static_cast<size_t>(N * N));
  for (int h = 0; h < count; ++h) {
    std::fill(alpha.begin(), alpha.end(), 0.f);
    const float len = rng.uniform(0.4f, 1.2f) * N;
    const float ax = rng.uniform(-0.1f, 1.1f) * N, ay = rng.uniform(-0.1f, 1.1f) * N, ang = rng.uniform(0.f, 2 * kPi);
    const float bx = ax + len * std::cos(ang), by = ay + len * std::sin(ang);
    const float bend = rng.uniform(-0.3f, 0.3f) * len;
    const float mx = (ax + bx) / 2 - bend * std::sin(ang), my = (ay + by) / 2 + bend * std::cos(ang);
    const float half = rng.uniform(0.35f, 0.8f) * N / 128.f;  // half width in pixels
    const Rgb col = jittered({38, 28, 22}, rng, 12);
    const int steps = static_cast<int>(len * 2) + 2;
    for (int s = 0; s <= steps; ++s) {
      const float t = static_cast<float>(s) / steps, it = 1 - t;
      const float x = it * it * ax + 2 * it * t * mx + t * t * bx, y = it * it * ay + 2 * it * t * my + t * t * by;
      const float w = half * (1.f - 0.5f * t);  // hairs taper
      for (int64_t yy = static_cast<int64_t>(y - w - 1); yy <= static_cast<int64_t>(y + w + 1); ++yy)
        for (int64_t xx = static_cast<int64_t>(x - w - 1); xx <= static_cast<int64_t>(x + w + 1); ++xx) {
          if (xx < 0 || yy < 0 || xx >= N || yy >= N) continue;
          const float a = std::clamp(w - std::hypot(xx + 0.5f - x, yy + 0.5f - y) + 0.5f, 0.f, 1.f);
          float& dst = alpha[static_cast<size_t>(yy * N + xx)];
          dst = std::max(dst, a);
        }
    }
    for (int64_t i = 0; i < N * N; ++i)
      if (alpha[i] > 0) cv.blend(i % N, i / N, col, alpha[i] * 0.92f);
  }
}

// ---- ruler -------------------------------------------------------------------------------------------
void draw_ruler(Canvas& cv, Mask& mask, Rng& rng) {
  const int64_t N = cv.n;
  const int side = static_cast<int>(rng.below(4));  // 0 top, 1 bottom, 2 left, 3 right
  const float bw = rng.uniform(0.07f, 0.1f) * N, inset = rng.uniform(0.f, 0.04f) * N;
  const float step = rng.uniform(N / 28.f, N / 20.f), offset = rng.uniform(0.f, step);
  const Rgb band = jittered({242, 238, 216}, rng, 6), tick = {34, 34, 38};
  const float tw = std::max(0.8f, 0.7f * N / 128.f);
  for (int64_t y = 0; y < N; ++y)
    for (int64_t x = 0; x < N; ++x) {
      // a: distance from the ruler's outer edge (the image border) inward; b: position along it
      float a, b;
      switch (side) {
        case 0:
          a = y + 0.5f, b = x + 0.5f;
          break;
        case 1:
          a = N - y - 0.5f, b = x + 0.5f;
          break;
        case 2:
          a = x + 0.5f, b = y + 0.5f;
          break;
        default:
          a = N - x - 0.5f, b = y + 0.5f;
          break;
      }
      a -= inset;
      if (a < 0 || a > bw) continue;
      Rgb c = band;
      const float k = (b - offset) / step, nearest = std::round(k);
      const bool major = static_cast<int64_t>(nearest) % 5 == 0;
      const float tick_len = (major ? 0.7f : 0.4f) * bw;
      if (a < tick_len) {
        const float ta = std::clamp(tw / 2 - std::abs(k - nearest) * step + 0.5f, 0.f, 1.f);
        c = lerp(c, tick, ta);
      }
      cv.blend(x, y, c, 0.9f);
      mask.at(x, y) = 0;
    }
}

// ---- sticker -----------------------------------------------------------------------------------------
void draw_sticker(Canvas& cv, Mask& mask, Rng& rng, int corner) {
  const int64_t N = cv.n;
  const float r = rng.uniform(0.05f, 0.08f) * N;
  const float margin = r + rng.uniform(0.02f, 0.08f) * N;
  const float cx = (corner & 1) ? N - margin : margin, cy = (corner & 2) ? N - margin : margin;
  static const Rgb colours[] = {{40, 110, 220}, {226, 58, 58}, {56, 176, 80}, {248, 200, 40}, {150, 70, 200}};
  const Rgb col = jittered(colours[rng.below(5)], rng, 10), ring = {246, 246, 246};
  for (int64_t y = static_cast<int64_t>(cy - r - 2); y <= static_cast<int64_t>(cy + r + 2); ++y)
    for (int64_t x = static_cast<int64_t>(cx - r - 2); x <= static_cast<int64_t>(cx + r + 2); ++x) {
      if (x < 0 || y < 0 || x >= N || y >= N) continue;
      const float d = std::hypot(x + 0.5f - cx, y + 0.5f - cy);
      const float a = std::clamp(r - d + 0.5f, 0.f, 1.f);
      if (a <= 0) continue;
      Rgb c = lerp(col, ring, smooth(r * 0.72f, r * 0.8f, d));
      c = scale(c, 1.f + 0.12f * std::clamp(1.f - std::hypot(x + 0.5f - (cx - r / 3), y + 0.5f - (cy - r / 3)) / r * 2,
                                            0.f, 1.f));
      cv.blend(x, y, c, a);
      if (a >= 0.5f) mask.at(x, y) = 0;
    }
}

void draw_vignette(Canvas& cv, Rng& rng) {
  const int64_t N = cv.n;
  const float rad = rng.uniform(0.5f, 0.62f) * N, width = rng.uniform(0.03f, 0.08f) * N;
  for (int64_t y = 0; y < N; ++y)
    for (int64_t x = 0; x < N; ++x) {
      const float d = std::hypot(x + 0.5f - N / 2.f, y + 0.5f - N / 2.f);
      const float a = smooth(rad - width, rad + width, d);
      if (a > 0) cv.at(x, y) = scale(cv.at(x, y), 1.f - 0.9f * a);
    }
}

}  // namespace

SynthImage synth_image(uint64_t seed, int64_t label, int64_t size, bool distractors, bool force_cloth) {
  GLIMPSE_CHECK(label >= 0 && label <= 2, "synth_image: label ", label,
                " (0 nevus, 1 melanoma, 2 seborrheic keratosis)");
  GLIMPSE_CHECK(size >= 16 && size <= 4096, "synth_image: size ", size, " (16..4096)");
  Rng rng(detail::mix_seed(seed, 0x5e7a11ULL));
  const int64_t N = size;
  SynthImage out;
  out.label = label;
  out.mask = Mask(N, N);
  Canvas cv(N);

  // Decide everything first, so each choice draws from the Rng in a fixed order.
  const float R = N * (label == 0   ? rng.uniform(0.11f, 0.19f)
                       : label == 1 ? rng.uniform(0.2f, 0.31f)
                                    : rng.uniform(0.15f, 0.26f));
  const float cx = N * (0.5f + std::clamp(rng.normal(0.f, 0.07f), -0.14f, 0.14f));
  const float cy = N * (0.5f + std::clamp(rng.normal(0.f, 0.07f), -0.14f, 0.14f));
  const float irregular = label == 0 ? 0.05f : label == 1 ? 0.32f : 0.12f;
  const Blob blob = Blob::make(rng, cx, cy, R, irregular, label == 1 ? 11 : label == 2 ? 7 : 4);
  out.cloth = force_cloth || (distractors && rng.bernoulli(0.3f));
  out.hairs = distractors && rng.bernoulli(0.45f);
  out.ruler = distractors && rng.bernoulli(0.25f);
  out.sticker = distractors && rng.bernoulli(0.2f);
  const bool vignette = distractors && rng.bernoulli(0.3f);
  // Corners by distance from the lesion, farthest first: cloth takes the farthest, the sticker the next.
  std::array<int, 4> corners = {0, 1, 2, 3};
  auto corner_dist = [&](int c) { return std::hypot(((c & 1) ? N : 0) - cx, ((c & 2) ? N : 0) - cy); };
  std::stable_sort(corners.begin(), corners.end(), [&](int a, int b) { return corner_dist(a) > corner_dist(b); });

  draw_skin(cv, rng);
  if (out.cloth) draw_cloth(cv, rng, corners[0]);
  draw_lesion(cv, out.mask, rng, label, blob);
  if (out.hairs) draw_hairs(cv, rng);
  if (out.ruler) draw_ruler(cv, out.mask, rng);
  if (out.sticker) draw_sticker(cv, out.mask, rng, out.cloth ? corners[1] : corners[0]);
  if (vignette) draw_vignette(cv, rng);

  // fine sensor grain, then 8 bits
  out.image = Image(N, N, 3);
  for (int64_t i = 0; i < N * N; ++i) {
    const Rgb& c = cv.px[static_cast<size_t>(i)];
    const float g = rng.normal(0.f, 1.8f);
    uint8_t* p = out.image.pixels.data() + i * 3;
    p[0] = static_cast<uint8_t>(std::clamp(std::lround(c.r + g), 0L, 255L));
    p[1] = static_cast<uint8_t>(std::clamp(std::lround(c.g + g), 0L, 255L));
    p[2] = static_cast<uint8_t>(std::clamp(std::lround(c.b + g), 0L, 255L));
  }
  return out;
}

void write_synthetic(const std::string& out_dir, const SynthOptions& opt) {
  GLIMPSE_CHECK(opt.count > 0, "write_synthetic: count ", opt.count, " must be positive");
  GLIMPSE_CHECK(opt.melanoma_fraction >= 0 && opt.keratosis_fraction >= 0 &&
                    opt.melanoma_fraction + opt.keratosis_fraction <= 1.0 + 1e-9,
                "write_synthetic: class fractions melanoma ", opt.melanoma_fraction, " + keratosis ",
                opt.keratosis_fraction, " must be >= 0 and sum to at most 1");
  GLIMPSE_CHECK(opt.val_fraction >= 0 && opt.val_fraction < 1, "write_synthetic: val_fraction ", opt.val_fraction,
                " must be in [0, 1)");
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "images", ec);
  GLIMPSE_CHECK(!ec, "write_synthetic: cannot create '", (fs::path(out_dir) / "images").string(), "': ", ec.message());
  fs::create_directories(fs::path(out_dir) / "masks", ec);
  GLIMPSE_CHECK(!ec, "write_synthetic: cannot create '", (fs::path(out_dir) / "masks").string(), "': ", ec.message());

  // Labels: exact class counts, shuffled; the split is stratified (the first val_fraction of each
  // class, in the shuffled order, is val).
  const int64_t n = opt.count;
  const int64_t n_mel = std::llround(n * opt.melanoma_fraction);
  const int64_t n_sk = std::min<int64_t>(n - n_mel, std::llround(n * opt.keratosis_fraction));
  std::vector<int64_t> labels(static_cast<size_t>(n), 0);
  std::fill(labels.begin(), labels.begin() + n_mel, 1);
  std::fill(labels.begin() + n_mel, labels.begin() + n_mel + n_sk, 2);
  Rng order_rng(detail::mix_seed(opt.seed, 0x1abe15ULL));
  for (int64_t i = n - 1; i > 0; --i) std::swap(labels[i], labels[order_rng.below(static_cast<uint64_t>(i + 1))]);
  std::vector<bool> is_val(static_cast<size_t>(n), false);
  for (int64_t c = 0; c < 3; ++c) {
    int64_t total = 0, taken = 0;
    for (int64_t l : labels) total += l == c;
    const int64_t want = std::llround(total * opt.val_fraction);
    for (int64_t i = 0; i < n && taken < want; ++i)
      if (labels[i] == c) is_val[i] = true, ++taken;
  }

  std::vector<double> fraction(static_cast<size_t>(n), 0.0);
  auto id_of = [](int64_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "SYN_%07lld", static_cast<long long>(i));
    return std::string(buf);
  };
  std::atomic<int64_t> next{0}, done{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto do_one = [&](int64_t i) {
    try {
      const SynthImage s =
          synth_image(detail::mix_seed(opt.seed, static_cast<uint64_t>(i)), labels[i], opt.size, opt.distractors);
      const std::string id = id_of(i);
      io::save_png((fs::path(out_dir) / "images" / (id + ".png")).string(), s.image);
      io::save_png((fs::path(out_dir) / "masks" / (id + "_segmentation.png")).string(), s.mask);
      fraction[i] = static_cast<double>(s.mask.count()) / (opt.size * opt.size);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      next = n;  // the others stop at their next claim
    }
    ++done;
  };
  auto work = [&] {
    for (int64_t i = next++; i < n; i = next++) do_one(i);
  };
  const int nthreads = std::max(1, std::min<int>(opt.threads, static_cast<int>(n)));
  std::vector<std::thread> helpers;
  for (int t = 1; t < nthreads; ++t) helpers.emplace_back(work);
  {
    ProgressBar bar("synth", n, "img", opt.progress ? ProgressBar::Mode::Auto : ProgressBar::Mode::Silent);
    int64_t shown = 0;
    // The calling thread works too, and moves the bar for everyone.
    for (int64_t i = next++; i < n; i = next++) {
      do_one(i);
      const int64_t d = done.load();
      for (; shown < d; ++shown) bar.step(1);  // one step per image
    }
    for (std::thread& t : helpers) t.join();
    for (; shown < done.load(); ++shown) bar.step(1);
    if (!error) bar.finish(out_dir);
  }
  if (error) std::rethrow_exception(error);

  // labels.csv, atomic and checked (core/io/atomic_file.h): a reader never sees half a file, and a
  // full disk is an error, not a truncated CSV.
  std::string text = "split,image_id,diagnosis,melanoma,seborrheic_keratosis,mask_fraction\n";
  static const char* names[] = {"nevus", "melanoma", "seborrheic_keratosis"};
  for (int64_t i = 0; i < n; ++i) {
    char frac[32];
    std::snprintf(frac, sizeof frac, "%.4f", fraction[i]);
    text += std::string(is_val[i] ? "val" : "train") + ',' + id_of(i) + ',' + names[labels[i]] + ',' +
            (labels[i] == 1 ? '1' : '0') + ',' + (labels[i] == 2 ? '1' : '0') + ',' + frac + '\n';
  }
  io::write_file_atomic((fs::path(out_dir) / "labels.csv").string(), text);
}

}  // namespace glimpse::data
