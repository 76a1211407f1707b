// The loader's normalization (kNormMean / kNormStd in data.h), single-image loading as the loader
// does it, and the inverse for display.
#include <algorithm>

#include "core/error.h"
#include "data/data.h"
#include "data/internal.h"

namespace glimpse::data {

namespace detail {

void image_to_planar(const io::Image& image, float* dst, bool normalize) {
  GLIMPSE_CHECK(image.channels == 3, "image_to_planar: expected an RGB image, got ", image.channels, " channels");
  const int64_t n = image.width * image.height;
  for (int64_t c = 0; c < 3; ++c) {
    const float scale = normalize ? 1.f / (255.f * kNormStd[c]) : 1.f / 255.f;
    const float shift = normalize ? -kNormMean[c] / kNormStd[c] : 0.f;
    float* out = dst + c * n;
    const uint8_t* p = image.pixels.data() + c;
    for (int64_t i = 0; i < n; ++i) out[i] = p[i * 3] * scale + shift;
  }
}

}  // namespace detail

Tensor load_for_model(const std::string& path, int64_t image_size, const Preprocess& pre, bool normalize) {
  GLIMPSE_CHECK(image_size > 0, "load_for_model: image_size ", image_size, " must be positive");
  return image_for_model(io::load_image(path), image_size, pre, normalize);
}

Tensor image_for_model(const io::Image& image, int64_t image_size, const Preprocess& pre, bool normalize) {
  GLIMPSE_CHECK(image_size > 0, "image_for_model: image_size ", image_size, " must be positive");
  // Shrunk to a working size before preprocessing, as the loader does (working_size.cpp).
  io::Image im = detail::shrink_to_working_size(image, image_size);
  if (pre.any()) im = preprocess(im, pre);
  im = resize_area(im, image_size, image_size);
  Tensor t = Tensor::empty({1, 3, image_size, image_size});
  detail::image_to_planar(im, t.data(), normalize);
  return t;
}

Tensor denormalize(const Tensor& images) {
  GLIMPSE_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 3,
                "denormalize: expected images [N, 3, H, W], got ",
                images.defined() ? shape_str(images.shape()) : std::string("an undefined tensor"));
  Tensor out = images.to(Device::cpu()).contiguous().clone();
  const int64_t N = out.size(0), hw = out.size(2) * out.size(3);
  float* p = out.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < 3; ++c) {
      float* q = p + (n * 3 + c) * hw;
      for (int64_t i = 0; i < hw; ++i) q[i] = std::clamp(q[i] * kNormStd[c] + kNormMean[c], 0.f, 1.f);
    }
  return out;
}

}  // namespace glimpse::data
