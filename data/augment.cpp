// Augmentation (random resized crop, flips, rot90, colour jitter) and antialiased resizing; see
// data.h for the order and the distributions. Everything random is drawn from the Rng passed in,
// in a fixed order, so a seeded Rng reproduces the transform exactly.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/data.h"

namespace glimpse::data {

using io::Image;
using io::Mask;

namespace {

// Bilinear sample at continuous pixel coordinates (pixel centres at integer + 0.5 -> we take
// coordinates already shifted so that integer = centre), clamped at the borders.
inline void bilinear(const Image& im, float fx, float fy, float* out) {
  fx = std::clamp(fx, 0.f, static_cast<float>(im.width - 1));
  fy = std::clamp(fy, 0.f, static_cast<float>(im.height - 1));
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  const int64_t x1 = std::min(x0 + 1, im.width - 1), y1 = std::min(y0 + 1, im.height - 1);
  const float lx = fx - x0, ly = fy - y0;
  const uint8_t *a = im.at(x0, y0), *b = im.at(x1, y0), *c = im.at(x0, y1), *d = im.at(x1, y1);
  for (int64_t ch = 0; ch < im.channels; ++ch)
    out[ch] = (1 - ly) * ((1 - lx) * a[ch] + lx * b[ch]) + ly * ((1 - lx) * c[ch] + lx * d[ch]);
}

// The rectangle [x0, x0 + w) x [y0, y0 + h) of `im` (in pixels, fractional allowed) resampled to
// ow x oh. Shrinking by s >= 1.5 averages a ceil(s) x ceil(s) grid of bilinear samples per output
// pixel (a box filter), so thin structures do not alias away.
Image crop_resample(const Image& im, float x0, float y0, float w, float h, int64_t ow, int64_t oh) {
  Image out(ow, oh, im.channels);
  const float sx = w / ow, sy = h / oh;
  const int kx = sx >= 1.5f ? std::min(8, static_cast<int>(std::ceil(sx))) : 1;
  const int ky = sy >= 1.5f ? std::min(8, static_cast<int>(std::ceil(sy))) : 1;
  float acc[4], px[4];
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t x = 0; x < ow; ++x) {
      std::fill(acc, acc + 4, 0.f);
      for (int j = 0; j < ky; ++j)
        for (int i = 0; i < kx; ++i) {
          const float fx = x0 + (x + (i + 0.5f) / kx) * sx - 0.5f;
          const float fy = y0 + (y + (j + 0.5f) / ky) * sy - 0.5f;
          bilinear(im, fx, fy, px);
          for (int64_t c = 0; c < im.channels; ++c) acc[c] += px[c];
        }
      uint8_t* o = out.at(x, y);
      const float inv = 1.f / (kx * ky);
      for (int64_t c = 0; c < im.channels; ++c)
        o[c] = static_cast<uint8_t>(std::clamp(std::lround(acc[c] * inv), 0L, 255L));
    }
  return out;
}

Mask crop_nearest(const Mask& m, float x0, float y0, float w, float h, int64_t ow, int64_t oh) {
  Mask out(ow, oh);
  for (int64_t y = 0; y < oh; ++y) {
    const int64_t sy = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y0 + (y + 0.5f) * h / oh)), 0, m.height - 1);
    for (int64_t x = 0; x < ow; ++x) {
      const int64_t sx =
          std::clamp<int64_t>(static_cast<int64_t>(std::floor(x0 + (x + 0.5f) * w / ow)), 0, m.width - 1);
      out.at(x, y) = m.at(sx, sy);
    }
  }
  return out;
}

// Geometric remaps on a generic pixel grid: element size `elem` bytes per pixel.
void flip_h(std::vector<uint8_t>& p, int64_t w, int64_t h, int64_t elem) {
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w / 2; ++x)
      std::swap_ranges(p.begin() + (y * w + x) * elem, p.begin() + (y * w + x + 1) * elem,
                       p.begin() + (y * w + (w - 1 - x)) * elem);
}
void flip_v(std::vector<uint8_t>& p, int64_t w, int64_t h, int64_t elem) {
  for (int64_t y = 0; y < h / 2; ++y)
    std::swap_ranges(p.begin() + y * w * elem, p.begin() + (y + 1) * w * elem, p.begin() + (h - 1 - y) * w * elem);
}
// Rotation by 90 degrees counter-clockwise (as seen on screen, y down): out(x, y) = in(w-1-y, x);
// the output is h wide and w high.
std::vector<uint8_t> rot90_ccw(const std::vector<uint8_t>& p, int64_t w, int64_t h, int64_t elem) {
  std::vector<uint8_t> out(p.size());
  const int64_t ow = h;
  for (int64_t y = 0; y < w; ++y)
    for (int64_t x = 0; x < ow; ++x)
      std::copy_n(p.begin() + ((x)*w + (w - 1 - y)) * elem, elem, out.begin() + (y * ow + x) * elem);
  return out;
}

void jitter_colours(Image& im, float b, float c, float s) {
  if (im.channels < 3) {
    for (uint8_t& v : im.pixels) v = static_cast<uint8_t>(std::clamp(std::lround(v * b), 0L, 255L));
    return;
  }
  const int64_t n = im.width * im.height;
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = im.pixels.data() + i * im.channels;
    mean += 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  }
  const float m = static_cast<float>(mean / n) * b;
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* p = im.pixels.data() + i * im.channels;
    float v[3];
    for (int k = 0; k < 3; ++k) v[k] = m + (p[k] * b - m) * c;  // brightness, then contrast about the mean
    const float g = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
    for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::clamp(std::lround(g + (v[k] - g) * s), 0L, 255L));
  }
}

void draw_sticker(Image& im, Rng& rng) {
  // Colours of the real dots (blue, cyan, green, yellow, orange, pink), each jittered a little.
  static const float palette[][3] = {{40, 120, 215}, {60, 190, 210}, {60, 170, 90},
                                     {240, 205, 50}, {245, 140, 40}, {230, 90, 150}};
  const float* base = palette[rng.below(6)];
  float col[3];
  for (int k = 0; k < 3; ++k) col[k] = std::clamp(base[k] + rng.uniform(-20.f, 20.f), 0.f, 255.f);
  const float w = static_cast<float>(im.width), h = static_cast<float>(im.height), side = std::min(w, h);
  const float r = rng.uniform(0.12f, 0.38f) * side;
  // A point on the border (perimeter position uniform), pushed outwards by up to half the radius.
  const float t = rng.uniform(0.f, 2 * (w + h)), out_by = rng.uniform(0.f, 0.5f) * r;
  float cx, cy;
  if (t < w) {
    cx = t, cy = -out_by;
  } else if (t < w + h) {
    cx = w + out_by, cy = t - w;
  } else if (t < 2 * w + h) {
    cx = t - w - h, cy = h + out_by;
  } else {
    cx = -out_by, cy = t - 2 * w - h;
  }
  const float soft = std::max(1.f, 0.015f * side), speckle = rng.uniform(4.f, 14.f);
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(cx - r - soft)),
                x1 = std::min<int64_t>(im.width, static_cast<int64_t>(cx + r + soft) + 1);
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(cy - r - soft)),
                y1 = std::min<int64_t>(im.height, static_cast<int64_t>(cy + r + soft) + 1);
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) {
      const float d = std::hypot(static_cast<float>(x) + 0.5f - cx, static_cast<float>(y) + 0.5f - cy);
      const float a = std::clamp((r - d) / soft, 0.f, 1.f);
      if (a <= 0.f) continue;
      const float n = rng.uniform(-speckle, speckle);
      uint8_t* px = im.at(x, y);
      for (int64_t c = 0; c < std::min<int64_t>(im.channels, 3); ++c)
        px[c] = static_cast<uint8_t>(std::clamp(std::lround(px[c] * (1 - a) + (col[c] + n) * a), 0L, 255L));
    }
}

}  // namespace

Image resize_area(const Image& image, int64_t width, int64_t height) {
  GLIMPSE_CHECK(!image.empty() && width > 0 && height > 0, "resize_area: empty image or bad size ", width, "x", height);
  if (width == image.width && height == image.height) return image;
  const float sx = static_cast<float>(image.width) / width, sy = static_cast<float>(image.height) / height;
  if (sx < 1.5f && sy < 1.5f) return io::resize_image(image, width, height);
  return crop_resample(image, 0.f, 0.f, static_cast<float>(image.width), static_cast<float>(image.height), width,
                       height);
}

Image augment_resized(const Image& image, Mask* mask, const AugmentOptions& opt, Rng& rng, int64_t ow, int64_t oh) {
  GLIMPSE_CHECK(!image.empty(), "augment: empty image");
  GLIMPSE_CHECK(ow > 0 && oh > 0, "augment: bad output size ", ow, "x", oh);
  GLIMPSE_CHECK(mask == nullptr || mask->data.empty() || (mask->width == image.width && mask->height == image.height),
                "augment: the mask is ", mask ? mask->width : 0, "x", mask ? mask->height : 0, " but the image is ",
                image.width, "x", image.height, " (they must match to stay aligned)");
  const bool with_mask = mask != nullptr && !mask->data.empty();
  const float W = static_cast<float>(image.width), H = static_cast<float>(image.height);

  // 1. random resized crop
  float cx = 0, cy = 0, cw = W, ch = H;
  if (opt.crop_min_scale < 1.f) {
    const float lo = std::clamp(opt.crop_min_scale, 0.05f, 1.f);
    const float area = rng.uniform(lo, 1.f) * W * H;
    const float ratio = std::exp(rng.uniform(std::log(3.f / 4.f), std::log(4.f / 3.f)));
    cw = std::min(W, std::sqrt(area * ratio));
    ch = std::min(H, std::sqrt(area / ratio));
    cx = rng.uniform(0.f, 1.f) * (W - cw);
    cy = rng.uniform(0.f, 1.f) * (H - ch);
  }
  Image out = crop_resample(image, cx, cy, cw, ch, ow, oh);
  Mask mout;
  if (with_mask) mout = crop_nearest(*mask, cx, cy, cw, ch, ow, oh);

  // 2. flips, 3. rotation
  const bool fh = opt.flips && rng.bernoulli(0.5f);
  const bool fv = opt.flips && rng.bernoulli(0.5f);
  int k = opt.rot90 ? static_cast<int>(rng.below(4)) : 0;
  if (ow != oh && (k & 1)) k ^= 1;  // keep the size: 90 -> 0, 270 -> 180... (k ^ 1 maps 1->0, 3->2)
  auto geom = [&](std::vector<uint8_t>& p, int64_t elem) {
    int64_t w = ow, h = oh;
    if (fh) flip_h(p, w, h, elem);
    if (fv) flip_v(p, w, h, elem);
    for (int r = 0; r < k; ++r) {
      p = rot90_ccw(p, w, h, elem);
      std::swap(w, h);
    }
  };
  geom(out.pixels, out.channels);
  if (with_mask) geom(mout.data, 1);

  // 4. colour jitter
  if (opt.jitter > 0.f) {
    const float j = std::min(opt.jitter, 0.95f);
    const float b = rng.uniform(1 - j, 1 + j), c = rng.uniform(1 - j, 1 + j), s = rng.uniform(1 - j, 1 + j);
    jitter_colours(out, b, c, s);
  }
  // 5. coloured sticker: the children's-nevi photos of ISIC 2017 (ids 1000-10999 of the archive,
  // every one a nevus) carry round coloured dots beside the lesion, so a network learns "dot means
  // benign" and its CAM lights up the dot (the README's localization section shows it).
  // Pasting dots onto photos of every class makes them useless as evidence. The dot is a disc of
  // radius 0.12-0.38 of the side, centred on or just outside a random point of the border (so it
  // cuts in from an edge, as the real ones do, and rarely reaches the centred lesion), in a
  // saturated colour with a faint printed speckle and a soft edge; masks are not changed.
  if (opt.stickers > 0.f && rng.bernoulli(std::min(opt.stickers, 1.f))) draw_sticker(out, rng);
  // 6. dermoscope vignette: black outside a random circle with a soft edge. Many dermoscopy photos
  // show the round field of the lens, and in ISIC 2017 how much of it shows depends on the clinic,
  // and so on the class mix; drawing the circle onto any photo makes it useless as evidence.
  if (opt.vignette > 0.f && rng.bernoulli(std::min(opt.vignette, 1.f))) {
    const float side = static_cast<float>(std::min(ow, oh));
    // 0.5 side: the inscribed circle; 0.707 side: through the corners (nothing hidden)
    const float radius = rng.uniform(0.45f, 0.72f) * side;
    const float vx = 0.5f * static_cast<float>(ow) + rng.uniform(-0.08f, 0.08f) * side;
    const float vy = 0.5f * static_cast<float>(oh) + rng.uniform(-0.08f, 0.08f) * side;
    const float soft = std::max(1.f, 0.04f * side);
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x) {
        const float d = std::hypot(static_cast<float>(x) + 0.5f - vx, static_cast<float>(y) + 0.5f - vy);
        const float keep = std::clamp((radius - d) / soft, 0.f, 1.f);
        if (keep >= 1.f) continue;
        uint8_t* px = out.at(x, y);
        for (int64_t c = 0; c < out.channels; ++c) px[c] = static_cast<uint8_t>(std::lround(px[c] * keep));
      }
  }
  if (with_mask) *mask = std::move(mout);
  return out;
}

Image augment(const Image& image, const AugmentOptions& opt, Rng& rng) {
  return augment_resized(image, nullptr, opt, rng, image.width, image.height);
}

Image augment(const Image& image, Mask& mask, const AugmentOptions& opt, Rng& rng) {
  return augment_resized(image, &mask, opt, rng, image.width, image.height);
}

}  // namespace glimpse::data
