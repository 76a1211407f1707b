// Images in and out: JPEG/PNG/BMP in through stb_image, PNG out through stb_image_write.
//
// Two containers live here, both row-major with the origin at the top-left pixel:
//   Image: interleaved 8-bit pixels (RGB, or any 1..4 channels), what the renderer draws on;
//   Mask : one byte per pixel, 0 or 1, what thresholds, regions and metrics work with.
// Tensors are float NCHW in [0, 1]. Every I/O error is a glimpse::Error that names the path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glimpse::attr {

struct Image {
  int64_t width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;  // height * width * channels, interleaved

  Image() = default;
  Image(int64_t width, int64_t height, int64_t channels = 3, uint8_t value = 0);
  bool empty() const { return pixels.empty(); }
  uint8_t* at(int64_t x, int64_t y) { return pixels.data() + (y * width + x) * channels; }
  const uint8_t* at(int64_t x, int64_t y) const { return pixels.data() + (y * width + x) * channels; }
};

struct Mask {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> data;  // height * width, each 0 or 1

  Mask() = default;
  Mask(int64_t width, int64_t height, uint8_t value = 0);
  uint8_t& at(int64_t x, int64_t y) { return data[y * width + x]; }
  uint8_t at(int64_t x, int64_t y) const { return data[y * width + x]; }
  int64_t count() const;  // number of pixels set
};

// ---- files ----
// Any image stb_image reads (JPEG, PNG, BMP, ...), converted to RGB (grey is replicated).
Image load_image(const std::string& path);
// The same as a tensor [1, 3, H, W] in [0, 1].
Tensor load_image_tensor(const std::string& path);
// A ground-truth mask (ISIC's *_segmentation.png): pixel set where its grey value (first channel)
// is >= threshold.
Mask load_mask(const std::string& path, int threshold = 128);
// PNG through stb_image_write; 1..4 channels.
void save_png(const std::string& path, const Image& image);
void save_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height, int64_t channels);
// A tensor in [0, 1] (clamped): [1, C, H, W], [C, H, W] with C in {1, 3, 4}, or [H, W] (grey).
void save_png(const std::string& path, const Tensor& image);
void save_png(const std::string& path, const Mask& mask);  // 0 -> black, 1 -> white

// ---- conversions ----
// [1, C, H, W], [C, H, W] (C in 1..4) or [H, W] in [0, 1] -> 8-bit (round(255 * clamp(v, 0, 1))).
Image tensor_to_image(const Tensor& t);
// -> [1, C, H, W] in [0, 1].
Tensor image_to_tensor(const Image& image);
// A map [H, W], [1, H, W] or [1, 1, H, W] -> its values, row-major, on the CPU; throws naming
// `what` for any other shape.
std::vector<float> map_values(const Tensor& map, int64_t& height, int64_t& width, const char* what);
// Nearest-neighbour resize (masks keep 0/1).
Mask resize_mask(const Mask& mask, int64_t width, int64_t height);
// Bilinear resize of an image (align_corners = false), e.g. to lay a photo under a map.
Image resize_image(const Image& image, int64_t width, int64_t height);

}  // namespace glimpse::attr
