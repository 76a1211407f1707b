// Why images are shrunk before preprocessing (see internal.h).
//
// Hair removal (a black-hat with line-shaped elements, then inpainting and a median) and colour
// constancy run per pixel, before the resize to the model's input: at a photo's full resolution.
// A 10000 x 10000 image (a 7 KB crafted JPEG, or a genuine scan) took over 120 s with hair removal.
// The model only ever sees image_size x image_size pixels, so nothing is gained from preprocessing
// far more than that: an image whose longer side exceeds max(512, 2 * image_size) is first
// area-downscaled to that side. 2x the input keeps hair removal's thin-line detection working on
// pixels finer than the model's (the hair parameters scale with the image's shorter side); 512 keeps
// every ISIC 2017 image (256 px after the project's resize) and every synthetic one untouched, so
// results on them do not change. A 40-megapixel photo then costs one area resize (well under a
// second) plus preprocessing at 512 px.
#include <algorithm>
#include <cmath>

#include "data/data.h"
#include "data/internal.h"

namespace glimpse::data::detail {

int64_t working_side(int64_t image_size) { return std::max<int64_t>(512, 2 * image_size); }

io::Image shrink_to_working_size(io::Image image, int64_t image_size, io::Mask* mask) {
  const int64_t side = working_side(image_size);
  const int64_t longer = std::max(image.width, image.height);
  if (image.empty() || longer <= side) return image;
  const double s = static_cast<double>(side) / static_cast<double>(longer);
  const int64_t w = std::clamp<int64_t>(std::llround(static_cast<double>(image.width) * s), 1, side);
  const int64_t h = std::clamp<int64_t>(std::llround(static_cast<double>(image.height) * s), 1, side);
  if (mask && !mask->data.empty()) *mask = io::resize_mask(*mask, w, h);
  return resize_area(image, w, h);
}

}  // namespace glimpse::data::detail
