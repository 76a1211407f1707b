// Internals shared by the data/ translation units (not part of the public API).
#pragma once
#include <cstdint>

#include "core/io/image.h"

namespace glimpse::data::detail {

// Writes an RGB image (H x W x 3, 8-bit) as planar floats [3, H, W] into dst: v / 255, then
// (v - kNormMean[c]) / kNormStd[c] when normalize.
void image_to_planar(const io::Image& image, float* dst, bool normalize);

// Bounds the cost of one image whatever its declared size: an image whose longer side exceeds
// working_side(image_size) is area-downscaled (resize_area, aspect kept) to that longer side before
// hair removal, colour constancy or augmentation run on it; `mask`, when given and non-empty, is
// resized with it (nearest neighbour). Smaller images are returned unchanged. See working_size.cpp.
int64_t working_side(int64_t image_size);
io::Image shrink_to_working_size(io::Image image, int64_t image_size, io::Mask* mask = nullptr);

// splitmix64: a well-mixed 64-bit hash, to derive independent seeds from (seed, epoch, index).
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline uint64_t mix_seed(uint64_t a, uint64_t b) { return mix64(mix64(a) ^ (b + 0x632be59bd9b4e019ULL)); }
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) { return mix_seed(mix_seed(a, b), c); }

}  // namespace glimpse::data::detail
