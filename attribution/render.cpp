// Colormaps, blending and drawing; see render.h.
#include "attribution/render.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace glimpse::attr {

namespace {

// 11 anchors at t = 0, 0.1, ..., 1 (matplotlib's viridis and inferno at those points).
constexpr std::array<Rgb, 11> kViridis{{{68, 1, 84},
                                        {72, 36, 117},
                                        {65, 68, 135},
                                        {53, 95, 141},
                                        {42, 120, 142},
                                        {33, 145, 140},
                                        {34, 168, 132},
                                        {68, 191, 112},
                                        {122, 209, 81},
                                        {189, 223, 38},
                                        {253, 231, 37}}};
constexpr std::array<Rgb, 11> kInferno{{{0, 0, 4},
                                        {22, 11, 57},
                                        {66, 10, 104},
                                        {106, 23, 110},
                                        {147, 38, 103},
                                        {188, 55, 84},
                                        {221, 81, 58},
                                        {243, 120, 25},
                                        {252, 165, 10},
                                        {246, 215, 70},
                                        {252, 255, 164}}};

Rgb from_table(const std::array<Rgb, 11>& table, float t) {
  const float f = t * 10.f;
  const int i = std::min(9, static_cast<int>(f));
  const float u = f - i;
  Rgb c;
  for (int k = 0; k < 3; ++k) c[k] = static_cast<uint8_t>(std::lround((1.f - u) * table[i][k] + u * table[i + 1][k]));
  return c;
}

uint8_t unit_to_byte(float v) { return static_cast<uint8_t>(std::lround(std::clamp(v, 0.f, 1.f) * 255.f)); }

void check_rgb(const io::Image& img, const char* what) {
  GLIMPSE_CHECK(!img.empty() && img.channels >= 3, what, ": needs an RGB(A) image, got ", img.width, "x", img.height,
                "x", img.channels);
}

void put(io::Image& img, int64_t x, int64_t y, Rgb c) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  uint8_t* p = img.at(x, y);
  if (img.channels >= 3) {
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  } else {
    p[0] = static_cast<uint8_t>((c[0] + c[1] + c[2]) / 3);
  }
}

// Resized map values (bilinear, align_corners = false) at the image size.
std::vector<float> map_at_size(const Tensor& map, int64_t width, int64_t height, const char* what) {
  int64_t h = 0, w = 0;
  std::vector<float> v = io::map_values(map, h, w, what);
  if (h == height && w == width) return v;
  NoGradGuard ng;
  Tensor t = Tensor::from_vector({1, 1, h, w}, v);
  return upsample_bilinear(t, height, width, false).to_vector();
}

}  // namespace

const std::vector<std::string>& colormap_names() {
  static const std::vector<std::string> names{"jet", "viridis", "inferno", "grey"};
  return names;
}

Colormap colormap_from_name(const std::string& name) {
  if (name == "jet") return Colormap::Jet;
  if (name == "viridis") return Colormap::Viridis;
  if (name == "inferno") return Colormap::Inferno;
  if (name == "grey" || name == "gray") return Colormap::Grey;
  GLIMPSE_FAIL("unknown colormap '", name, "'; known: jet, viridis, inferno, grey");
}

std::string colormap_name(Colormap cmap) {
  switch (cmap) {
    case Colormap::Jet:
      return "jet";
    case Colormap::Viridis:
      return "viridis";
    case Colormap::Inferno:
      return "inferno";
    case Colormap::Grey:
      return "grey";
  }
  return "?";
}

Rgb colormap(Colormap cmap, float t) {
  if (!(t == t)) t = 0.f;  // NaN
  t = std::clamp(t, 0.f, 1.f);
  switch (cmap) {
    case Colormap::Jet:
      return {unit_to_byte(1.5f - std::fabs(4.f * t - 3.f)), unit_to_byte(1.5f - std::fabs(4.f * t - 2.f)),
              unit_to_byte(1.5f - std::fabs(4.f * t - 1.f))};
    case Colormap::Viridis:
      return from_table(kViridis, t);
    case Colormap::Inferno:
      return from_table(kInferno, t);
    case Colormap::Grey: {
      const uint8_t v = unit_to_byte(t);
      return {v, v, v};
    }
  }
  return {0, 0, 0};
}

io::Image colorize(const Tensor& map, Colormap cmap) {
  int64_t h = 0, w = 0;
  std::vector<float> v = io::map_values(map, h, w, "colorize");
  io::Image img(w, h, 3);
  for (int64_t i = 0; i < h * w; ++i) {
    const Rgb c = colormap(cmap, v[i]);
    std::copy(c.begin(), c.end(), img.pixels.begin() + i * 3);
  }
  return img;
}

io::Image blend(const io::Image& photo, const io::Image& overlay, float alpha) {
  check_rgb(photo, "blend");
  check_rgb(overlay, "blend");
  GLIMPSE_CHECK(photo.width == overlay.width && photo.height == overlay.height, "blend: photo ", photo.width, "x",
                photo.height, " and overlay ", overlay.width, "x", overlay.height, " differ in size");
  GLIMPSE_CHECK(alpha >= 0.f && alpha <= 1.f, "blend: alpha = ", alpha, " is not in [0, 1]");
  io::Image out(photo.width, photo.height, 3);
  for (int64_t i = 0; i < photo.width * photo.height; ++i)
    for (int k = 0; k < 3; ++k) {
      const float v =
          (1.f - alpha) * photo.pixels[i * photo.channels + k] + alpha * overlay.pixels[i * overlay.channels + k];
      out.pixels[i * 3 + k] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  return out;
}

io::Image blend_weighted(const io::Image& photo, const io::Image& overlay, const Tensor& weights, float alpha) {
  check_rgb(photo, "blend_weighted");
  check_rgb(overlay, "blend_weighted");
  GLIMPSE_CHECK(photo.width == overlay.width && photo.height == overlay.height, "blend_weighted: photo ", photo.width,
                "x", photo.height, " and overlay ", overlay.width, "x", overlay.height, " differ in size");
  int64_t h = 0, w = 0;
  std::vector<float> wv = io::map_values(weights, h, w, "blend_weighted");
  GLIMPSE_CHECK(h == photo.height && w == photo.width, "blend_weighted: weights ", w, "x", h, " but photo ",
                photo.width, "x", photo.height);
  io::Image out(photo.width, photo.height, 3);
  for (int64_t i = 0; i < h * w; ++i) {
    const float a = alpha * std::clamp(wv[i] == wv[i] ? wv[i] : 0.f, 0.f, 1.f);
    for (int k = 0; k < 3; ++k) {
      const float v = (1.f - a) * photo.pixels[i * photo.channels + k] + a * overlay.pixels[i * overlay.channels + k];
      out.pixels[i * 3 + k] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  }
  return out;
}

io::Image overlay_heatmap(const io::Image& photo, const Tensor& map, Colormap cmap, float alpha) {
  check_rgb(photo, "overlay_heatmap");
  std::vector<float> v = map_at_size(map, photo.width, photo.height, "overlay_heatmap");
  Tensor m = Tensor::from_vector({photo.height, photo.width}, v);
  return blend(photo, colorize(m, cmap), alpha);
}

void draw_point(io::Image& img, double x, double y, Rgb colour, int thickness) {
  GLIMPSE_CHECK(thickness >= 1, "draw: thickness = ", thickness, " (must be >= 1)");
  if (thickness == 1) {
    put(img, std::lround(x), std::lround(y), colour);
    return;
  }
  const double r = thickness / 2.0;
  const int64_t r0 = static_cast<int64_t>(std::ceil(r));
  const int64_t cx = std::lround(x), cy = std::lround(y);
  for (int64_t dy = -r0; dy <= r0; ++dy)
    for (int64_t dx = -r0; dx <= r0; ++dx)
      if (dx * dx + dy * dy <= r * r) put(img, cx + dx, cy + dy, colour);
}

void draw_line(io::Image& img, double x0, double y0, double x1, double y1, Rgb colour, int thickness) {
  // Sampled at unit steps along the longer axis (a DDA), each sample stamped with the brush.
  const double dx = x1 - x0, dy = y1 - y0;
  const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::max(std::fabs(dx), std::fabs(dy)))));
  for (int64_t i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n;
    draw_point(img, x0 + t * dx, y0 + t * dy, colour, thickness);
  }
}

void draw_box(io::Image& img, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb colour, int thickness) {
  draw_line(img, x0, y0, x1, y0, colour, thickness);
  draw_line(img, x1, y0, x1, y1, colour, thickness);
  draw_line(img, x1, y1, x0, y1, colour, thickness);
  draw_line(img, x0, y1, x0, y0, colour, thickness);
}

void draw_circle(io::Image& img, double cx, double cy, double r, Rgb colour, int thickness) {
  draw_ellipse(img, cx, cy, r, r, 0.0, colour, thickness);
}

void draw_ellipse(io::Image& img, double cx, double cy, double a, double b, double angle, Rgb colour, int thickness) {
  GLIMPSE_CHECK(a >= 0 && b >= 0, "draw_ellipse: negative semi-axis (", a, ", ", b, ")");
  // A polygon with about one vertex per pixel of circumference.
  const int64_t n = std::max<int64_t>(16, static_cast<int64_t>(std::ceil(2 * std::numbers::pi * std::max(a, b))));
  const double ca = std::cos(angle), sa = std::sin(angle);
  double px = cx + a * ca, py = cy + a * sa;
  for (int64_t i = 1; i <= n; ++i) {
    const double t = 2 * std::numbers::pi * i / n;
    const double ex = a * std::cos(t), ey = b * std::sin(t);
    const double x = cx + ex * ca - ey * sa, y = cy + ex * sa + ey * ca;
    draw_line(img, px, py, x, y, colour, thickness);
    px = x, py = y;
  }
}

void draw_polygon(io::Image& img, const std::vector<std::array<int64_t, 2>>& points, Rgb colour, int thickness) {
  if (points.empty()) return;
  if (points.size() == 1) {
    draw_point(img, points[0][0], points[0][1], colour, thickness);
    return;
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const auto& q = points[(i + 1) % points.size()];
    draw_line(img, p[0], p[1], q[0], q[1], colour, thickness);
  }
}

void draw_mask_outline(io::Image& img, const io::Mask& mask, Rgb colour, int thickness) {
  GLIMPSE_CHECK(mask.width == img.width && mask.height == img.height, "draw_mask_outline: mask ", mask.width, "x",
                mask.height, " but image ", img.width, "x", img.height);
  for (int64_t y = 0; y < mask.height; ++y)
    for (int64_t x = 0; x < mask.width; ++x) {
      if (!mask.at(x, y)) continue;
      const bool edge = x == 0 || y == 0 || x == mask.width - 1 || y == mask.height - 1 || !mask.at(x - 1, y) ||
                        !mask.at(x + 1, y) || !mask.at(x, y - 1) || !mask.at(x, y + 1);
      if (edge) draw_point(img, x, y, colour, thickness);
    }
}

}  // namespace glimpse::attr
