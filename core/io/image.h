// Images in and out: JPEG through libjpeg-turbo, PNG through libpng, BMP through stb_image (see
// image_decode.cpp for why); PNG out through stb_image_write, written atomically.
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

namespace glimpse::io {

struct Image {
  int64_t width = 0, height = 0, channels = 3;
  std::vector<uint8_t> pixels;  // height * width * channels, interleaved

  Image() = default;
  // Sides in 1..kMaxImageSide, channels 1..4; an Error (not a bare bad_alloc) when memory runs out.
  Image(int64_t width, int64_t height, int64_t channels = 3, uint8_t value = 0);
  bool empty() const { return pixels.empty(); }
  uint8_t* at(int64_t x, int64_t y) { return pixels.data() + (y * width + x) * channels; }
  const uint8_t* at(int64_t x, int64_t y) const { return pixels.data() + (y * width + x) * channels; }
};

struct Mask {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> data;  // height * width, each 0 or 1

  Mask() = default;
  // Sides in 1..kMaxImageSide.
  Mask(int64_t width, int64_t height, uint8_t value = 0);
  uint8_t& at(int64_t x, int64_t y) { return data[y * width + x]; }
  uint8_t at(int64_t x, int64_t y) const { return data[y * width + x]; }
  int64_t count() const;  // number of pixels set
};

// ---- limits on decoded images ----
// Photos and masks come from anywhere (an upload, a dataset off the internet): their declared size is
// checked against these before a single pixel is decoded, so a 7 KB file that declares 10000 x 10000
// pixels costs an error, not a gigabyte and minutes.
// The pixel budget, width * height, process-wide (default 40 megapixels; the melanoma app's
// --max-megapixels sets it). Accepts 1 .. kMaxImagePixelsLimit.
void set_max_image_pixels(int64_t pixels);
int64_t max_image_pixels();
inline constexpr int64_t kDefaultMaxImagePixels = 40'000'000;
inline constexpr int64_t kMaxImagePixelsLimit = int64_t(1) << 32;
// The longest side any Image or Mask may have (whatever the budget): with sides <= 2^18 and at most 4
// channels, every size and index computation (w * h * c, even as float bytes) fits in an int64_t.
inline constexpr int64_t kMaxImageSide = int64_t(1) << 18;

// ---- files ----
// An image file's bytes, decoded by their magic bytes (whatever the name says): JPEG, PNG or BMP;
// any other format is refused by name. `channels` is 3 (RGB; grey is replicated, alpha dropped) or 1
// (grey; an RGB image gives (77 r + 150 g + 29 b) >> 8, as stb_image computes it). `name` (a path,
// an upload's name) is only used in errors. Memory-safe on any bytes: a glimpse::Error names `name`
// and the fault -- a truncated or corrupt file, an unsupported format, a size over the budget.
Image decode_image(const uint8_t* data, size_t size, const std::string& name, int channels = 3);
// The largest image file load_image/load_mask read (a 40-megapixel BMP is 120 MB).
inline constexpr uint64_t kMaxImageFileBytes = uint64_t(256) << 20;
// The file at `path` through decode_image, as RGB.
Image load_image(const std::string& path);
// The same as a tensor [1, 3, H, W] in [0, 1].
Tensor load_image_tensor(const std::string& path);
// A ground-truth mask (ISIC's *_segmentation.png): pixel set where its grey value (first channel)
// is >= threshold.
Mask load_mask(const std::string& path, int threshold = 128);
// PNG through stb_image_write into memory, then one atomic, checked write (core/io/atomic_file.h):
// a full disk is an error, never a truncated file. 1..4 channels.
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
// Nearest-neighbour resize (masks keep 0/1). Target sides in 1..kMaxImageSide.
Mask resize_mask(const Mask& mask, int64_t width, int64_t height);
// Bilinear resize of an image (align_corners = false), e.g. to lay a photo under a map. Target sides
// in 1..kMaxImageSide.
Image resize_image(const Image& image, int64_t width, int64_t height);

}  // namespace glimpse::io
