// Image files and conversions; see core/io/image.h. Decoding lives in image_decode.cpp. Debian's libstb
// ships stb_image_write compiled, so its header is included for declarations only.
#include "core/io/image.h"

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <new>

#include "core/error.h"
#include "core/io/atomic_file.h"

namespace glimpse::io {

namespace {

// Sides capped (kMaxImageSide) so that no product below can overflow; a failed allocation becomes an
// Error naming the size instead of a bare std::bad_alloc.
void checked_assign(std::vector<uint8_t>& v, int64_t w, int64_t h, int64_t c, uint8_t value, const char* what) {
  try {
    v.assign(static_cast<size_t>(w * h * c), value);
  } catch (const std::bad_alloc&) {
    GLIMPSE_FAIL(what, ": out of memory for ", w, "x", h, "x", c, " bytes");
  }
}

}  // namespace

Image::Image(int64_t w, int64_t h, int64_t c, uint8_t value) : width(w), height(h), channels(c) {
  GLIMPSE_CHECK(w > 0 && h > 0 && w <= kMaxImageSide && h <= kMaxImageSide && c >= 1 && c <= 4, "Image: bad size ", w,
                "x", h, "x", c, " (width and height must be in 1..", kMaxImageSide, ", channels 1..4)");
  checked_assign(pixels, w, h, c, value, "Image");
}

Mask::Mask(int64_t w, int64_t h, uint8_t value) : width(w), height(h) {
  GLIMPSE_CHECK(w > 0 && h > 0 && w <= kMaxImageSide && h <= kMaxImageSide, "Mask: bad size ", w, "x", h,
                " (width and height must be in 1..", kMaxImageSide, ")");
  checked_assign(data, w, h, 1, value ? 1 : 0, "Mask");
}

int64_t Mask::count() const {
  int64_t n = 0;
  for (uint8_t v : data) n += v != 0;
  return n;
}

namespace {

Image load_with_channels(const std::string& path, int channels) {
  // read_file names the path when the file is missing, unreadable or over the size cap.
  const std::string bytes = io::read_file(path, kMaxImageFileBytes);
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path, channels);
}

void append_bytes(void* context, void* data, int size) {
  if (size <= 0) return;
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

Image load_image(const std::string& path) { return load_with_channels(path, 3); }

Tensor load_image_tensor(const std::string& path) { return image_to_tensor(load_image(path)); }

Mask load_mask(const std::string& path, int threshold) {
  Image g = load_with_channels(path, 1);
  Mask m(g.width, g.height);
  for (size_t i = 0; i < m.data.size(); ++i) m.data[i] = g.pixels[i] >= threshold ? 1 : 0;
  return m;
}

void save_png(const std::string& path, const uint8_t* pixels, int64_t width, int64_t height, int64_t channels) {
  GLIMPSE_CHECK(pixels != nullptr && width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide &&
                    channels >= 1 && channels <= 4,
                "save_png('", path, "'): bad image ", width, "x", height, "x", channels);
  // Encoded in memory first: stb_image_write's file functions ignore fwrite/fclose errors, so a full
  // disk would leave a truncated PNG behind a success. The atomic write checks every step.
  std::string bytes;
  const int ok = stbi_write_png_to_func(append_bytes, &bytes, static_cast<int>(width), static_cast<int>(height),
                                        static_cast<int>(channels), pixels, static_cast<int>(width * channels));
  GLIMPSE_CHECK(ok != 0 && !bytes.empty(), "cannot encode PNG '", path, "' (", width, "x", height, "x", channels,
                "; out of memory?)");
  io::write_file_atomic(path, bytes);
}

void save_png(const std::string& path, const Image& image) {
  GLIMPSE_CHECK(!image.empty(), "save_png('", path, "'): empty image");
  save_png(path, image.pixels.data(), image.width, image.height, image.channels);
}

void save_png(const std::string& path, const Tensor& image) { save_png(path, tensor_to_image(image)); }

void save_png(const std::string& path, const Mask& mask) {
  GLIMPSE_CHECK(!mask.data.empty(), "save_png('", path, "'): empty mask");
  std::vector<uint8_t> g(mask.data.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = mask.data[i] ? 255 : 0;
  save_png(path, g.data(), mask.width, mask.height, 1);
}

Image tensor_to_image(const Tensor& t) {
  GLIMPSE_CHECK(t.defined(), "tensor_to_image: undefined tensor");
  Tensor c = t.to(Device::cpu()).contiguous();
  int64_t C = 1, H = 0, W = 0;
  if (c.dim() == 4) {
    GLIMPSE_CHECK(c.size(0) == 1, "tensor_to_image: a batch of ", c.size(0), " images ", shape_str(c.shape()),
                  "; pass one image [1, C, H, W]");
    C = c.size(1), H = c.size(2), W = c.size(3);
  } else if (c.dim() == 3) {
    C = c.size(0), H = c.size(1), W = c.size(2);
  } else if (c.dim() == 2) {
    H = c.size(0), W = c.size(1);
  } else {
    GLIMPSE_FAIL("tensor_to_image: expected [1, C, H, W], [C, H, W] or [H, W], got ", shape_str(c.shape()));
  }
  GLIMPSE_CHECK(C >= 1 && C <= 4, "tensor_to_image: ", C, " channels in ", shape_str(c.shape()), " (1..4 supported)");
  Image img(W, H, C);
  const float* p = c.data();
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t i = 0; i < H * W; ++i) {
      const float v = std::clamp(p[ch * H * W + i], 0.f, 1.f);
      img.pixels[i * C + ch] = static_cast<uint8_t>(std::lround(v * 255.f));
    }
  return img;
}

Tensor image_to_tensor(const Image& image) {
  GLIMPSE_CHECK(!image.empty(), "image_to_tensor: empty image");
  const int64_t C = image.channels, H = image.height, W = image.width;
  Tensor t = Tensor::empty({1, C, H, W});
  float* p = t.data();
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t i = 0; i < H * W; ++i) p[ch * H * W + i] = image.pixels[i * C + ch] / 255.f;
  return t;
}

std::vector<float> map_values(const Tensor& map, int64_t& height, int64_t& width, const char* what) {
  GLIMPSE_CHECK(map.defined(), what, ": undefined map");
  const Shape& s = map.shape();
  bool ok = s.size() >= 2;
  for (size_t i = 0; ok && i + 2 < s.size(); ++i) ok = s[i] == 1;
  GLIMPSE_CHECK(ok, what, ": expected one map [H, W], [1, H, W] or [1, 1, H, W], got ", shape_str(s));
  height = s[s.size() - 2];
  width = s[s.size() - 1];
  return map.to(Device::cpu()).contiguous().to_vector();
}

Mask resize_mask(const Mask& mask, int64_t width, int64_t height) {
  GLIMPSE_CHECK(!mask.data.empty(), "resize_mask: empty mask");
  GLIMPSE_CHECK(width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide, "resize_mask: target ",
                width, "x", height, " (sides must be in 1..", kMaxImageSide, ")");
  Mask out(width, height);
  for (int64_t y = 0; y < height; ++y) {
    const int64_t sy = std::min(mask.height - 1, (y * mask.height) / height);
    for (int64_t x = 0; x < width; ++x) {
      const int64_t sx = std::min(mask.width - 1, (x * mask.width) / width);
      out.at(x, y) = mask.at(sx, sy);
    }
  }
  return out;
}

Image resize_image(const Image& image, int64_t width, int64_t height) {
  GLIMPSE_CHECK(!image.empty(), "resize_image: empty image");
  GLIMPSE_CHECK(width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide, "resize_image: target ",
                width, "x", height, " (sides must be in 1..", kMaxImageSide, ")");
  if (width == image.width && height == image.height) return image;
  Image out(width, height, image.channels);
  const float sy = static_cast<float>(image.height) / height, sx = static_cast<float>(image.width) / width;
  for (int64_t y = 0; y < height; ++y) {
    const float fy = std::max(0.f, (y + 0.5f) * sy - 0.5f);
    const int64_t y0 = std::min<int64_t>(static_cast<int64_t>(fy), image.height - 1);
    const int64_t y1 = std::min<int64_t>(y0 + 1, image.height - 1);
    const float ly = fy - y0;
    for (int64_t x = 0; x < width; ++x) {
      const float fx = std::max(0.f, (x + 0.5f) * sx - 0.5f);
      const int64_t x0 = std::min<int64_t>(static_cast<int64_t>(fx), image.width - 1);
      const int64_t x1 = std::min<int64_t>(x0 + 1, image.width - 1);
      const float lx = fx - x0;
      for (int64_t c = 0; c < image.channels; ++c) {
        const float v = (1 - ly) * ((1 - lx) * image.at(x0, y0)[c] + lx * image.at(x1, y0)[c]) +
                        ly * ((1 - lx) * image.at(x0, y1)[c] + lx * image.at(x1, y1)[c]);
        out.at(x, y)[c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace glimpse::io
