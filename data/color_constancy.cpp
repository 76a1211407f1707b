// Shades of Gray colour constancy and the Preprocess pipeline (data.h has the math).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/data.h"

namespace glimpse::data {

io::Image shades_of_gray(const io::Image& image, float p) {
  GLIMPSE_CHECK(image.channels == 3, "shades_of_gray: expected an RGB image, got ", image.channels, " channels");
  GLIMPSE_CHECK(p >= 1.f && std::isfinite(p), "shades_of_gray: the norm p must be finite and >= 1, got ", p);
  const int64_t n = image.width * image.height;
  if (n == 0) return image;
  // Powers of v / 255 in double: 255^6 sums over a 1024^2 photo would lose the dark pixels' share.
  double pow_table[256];
  for (int v = 0; v < 256; ++v) pow_table[v] = std::pow(v / 255.0, static_cast<double>(p));
  double acc[3] = {0, 0, 0};
  const uint8_t* src = image.pixels.data();
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) acc[c] += pow_table[src[i * 3 + c]];
  double e[3], norm = 0;
  for (int c = 0; c < 3; ++c) {
    e[c] = std::pow(acc[c] / static_cast<double>(n), 1.0 / p);
    norm += e[c] * e[c];
  }
  norm = std::sqrt(norm);
  io::Image out = image;
  if (norm <= 0) return out;  // an all-black photo has no illuminant to correct
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    // A channel with no light at all (e_c = 0) stays as it is rather than blowing up.
    const double gain = e[c] > 0 ? norm / (std::sqrt(3.0) * e[c]) : 1.0;
    for (int v = 0; v < 256; ++v) lut[c][v] = static_cast<float>(std::min(255.0, std::round(v * gain)));
  }
  uint8_t* dst = out.pixels.data();
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) dst[i * 3 + c] = static_cast<uint8_t>(lut[c][src[i * 3 + c]]);
  return out;
}

io::Image preprocess(const io::Image& image, const Preprocess& p) {
  if (!p.any()) return image;
  io::Image out = p.hair_removal ? remove_hair(image) : image;
  if (p.color_constancy) out = shades_of_gray(out);
  return out;
}

}  // namespace glimpse::data
