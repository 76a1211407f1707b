// DullRazor-style hair removal (Lee, Ng, Gallagher, Coldman, McLean: "DullRazor: A software approach
// to hair removal from images", Computers in Biology and Medicine 27(6), 1997):
//   1. grey = 0.299 R + 0.587 G + 0.114 B;
//   2. for each line structuring element L_theta (length line_length, theta = 0, 45, 90, 135 deg):
//        closing_theta = erode_theta(dilate_theta(grey));
//      black-hat = max_theta (closing_theta - grey): large where a dark structure is thinner than the
//      line across some direction (a hair), near zero inside wide dark regions (a lesion);
//   3. hair = black-hat > threshold, minus 8-connected blobs smaller than min_component, dilated by
//      `dilate` 3x3 steps;
//   4. inpaint: hair pixels are filled from the outside in -- each pass gives every hair pixel with
//      a known 8-neighbour the mean of its known neighbours (the nearest non-hair pixels first);
//   5. a median filter (median x median window) over the inpainted pixels only.
// Parameters and their defaults are documented at HairOptions in data.h.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "data/data.h"

namespace glimpse::data {

using io::Image;
using io::Mask;

namespace {

// Grey-level dilation (max) or erosion (min) along a line of half-length r in direction (dx, dy).
std::vector<uint8_t> line_filter(const std::vector<uint8_t>& g, int64_t w, int64_t h, int dx, int dy, int r, bool max) {
  std::vector<uint8_t> out(g.size());
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      uint8_t v = g[y * w + x];
      for (int t = -r; t <= r; ++t) {
        const int64_t xx = x + t * dx, yy = y + t * dy;
        if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;  // the border does not take part
        const uint8_t u = g[yy * w + xx];
        v = max ? std::max(v, u) : std::min(v, u);
      }
      out[y * w + x] = v;
    }
  return out;
}

// Drops 8-connected components with fewer than `min_size` pixels.
void drop_small(Mask& m, int64_t min_size) {
  if (min_size <= 1) return;
  const int64_t w = m.width, h = m.height;
  std::vector<uint8_t> seen(m.data.size(), 0);
  std::vector<int64_t> stack, comp;
  for (int64_t start = 0; start < w * h; ++start) {
    if (!m.data[start] || seen[start]) continue;
    comp.clear();
    stack.assign(1, start);
    seen[start] = 1;
    while (!stack.empty()) {
      const int64_t i = stack.back();
      stack.pop_back();
      comp.push_back(i);
      const int64_t x = i % w, y = i / w;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int64_t xx = x + dx, yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
          const int64_t j = yy * w + xx;
          if (m.data[j] && !seen[j]) {
            seen[j] = 1;
            stack.push_back(j);
          }
        }
    }
    if (static_cast<int64_t>(comp.size()) < min_size)
      for (int64_t i : comp) m.data[i] = 0;
  }
}

void dilate3(Mask& m) {
  Mask out = m;
  for (int64_t y = 0; y < m.height; ++y)
    for (int64_t x = 0; x < m.width; ++x) {
      if (m.at(x, y)) continue;
      for (int dy = -1; dy <= 1 && !out.at(x, y); ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int64_t xx = x + dx, yy = y + dy;
          if (xx >= 0 && yy >= 0 && xx < m.width && yy < m.height && m.at(xx, yy)) {
            out.at(x, y) = 1;
            break;
          }
        }
    }
  m = std::move(out);
}

}  // namespace

Image remove_hair(const Image& image, Mask* hair_mask) { return remove_hair(image, HairOptions{}, hair_mask); }

Image remove_hair(const Image& image, const HairOptions& opt, Mask* hair_mask) {
  GLIMPSE_CHECK(!image.empty(), "remove_hair: empty image");
  GLIMPSE_CHECK(opt.median >= 1 && opt.median % 2 == 1, "remove_hair: median window ", opt.median,
                " must be odd and >= 1");
  const int64_t w = image.width, h = image.height, C = image.channels;
  int len = opt.line_length;
  if (len <= 0) {
    len = static_cast<int>(std::lround(11.0 * std::min(w, h) / 256.0));
    len = std::max(5, len | 1);
  }
  const int r = len / 2;

  // 1. grey
  std::vector<uint8_t> grey(static_cast<size_t>(w * h));
  for (int64_t i = 0; i < w * h; ++i) {
    const uint8_t* p = image.pixels.data() + i * C;
    grey[i] = C >= 3 ? static_cast<uint8_t>(std::lround(0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2])) : p[0];
  }

  // 2. black-hat with four line elements
  std::vector<uint8_t> hat(grey.size(), 0);
  const std::array<std::array<int, 2>, 4> dirs = {{{1, 0}, {1, 1}, {0, 1}, {-1, 1}}};
  for (const auto& d : dirs) {
    // a diagonal step is sqrt(2) long: fewer steps keep the element's length about `len`
    const int rr = (d[0] != 0 && d[1] != 0) ? std::max(1, static_cast<int>(std::lround(r / std::sqrt(2.0)))) : r;
    const std::vector<uint8_t> closed =
        line_filter(line_filter(grey, w, h, d[0], d[1], rr, true), w, h, d[0], d[1], rr, false);
    for (size_t i = 0; i < grey.size(); ++i)
      hat[i] = std::max<uint8_t>(hat[i], static_cast<uint8_t>(std::max(0, closed[i] - grey[i])));
  }

  // 3. threshold, clean, dilate
  Mask hair(w, h);
  for (size_t i = 0; i < hat.size(); ++i) hair.data[i] = hat[i] > opt.threshold ? 1 : 0;
  drop_small(hair, opt.min_component > 0 ? opt.min_component : len);
  for (int i = 0; i < opt.dilate; ++i) dilate3(hair);

  // 4. inpaint from the outside in
  Image out = image;
  std::vector<uint8_t> known(hair.data.size());
  for (size_t i = 0; i < known.size(); ++i) known[i] = !hair.data[i];
  std::vector<int64_t> todo;
  for (int64_t i = 0; i < w * h; ++i)
    if (!known[i]) todo.push_back(i);
  std::vector<int64_t> filled;
  std::vector<float> values;
  while (!todo.empty()) {
    filled.clear();
    values.clear();
    std::vector<int64_t> rest;
    for (int64_t i : todo) {
      const int64_t x = i % w, y = i / w;
      float acc[4] = {0, 0, 0, 0};
      int n = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int64_t xx = x + dx, yy = y + dy;
          if ((dx == 0 && dy == 0) || xx < 0 || yy < 0 || xx >= w || yy >= h || !known[yy * w + xx]) continue;
          const uint8_t* p = out.at(xx, yy);
          for (int64_t c = 0; c < C; ++c) acc[c] += p[c];
          ++n;
        }
      if (n == 0) {
        rest.push_back(i);
        continue;
      }
      filled.push_back(i);
      for (int64_t c = 0; c < C; ++c) values.push_back(acc[c] / n);
    }
    if (filled.empty()) break;  // the whole image is "hair": nothing to fill from
    // Write after the pass, so a pass reads only pixels known before it (order-independent).
    for (size_t k = 0; k < filled.size(); ++k) {
      uint8_t* p = out.pixels.data() + filled[k] * C;
      for (int64_t c = 0; c < C; ++c) p[c] = static_cast<uint8_t>(std::lround(values[k * C + c]));
      known[filled[k]] = 1;
    }
    todo = std::move(rest);
  }

  // 5. median over the inpainted pixels
  if (opt.median > 1) {
    const int m = opt.median / 2;
    const Image src = out;
    std::vector<uint8_t> win;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        if (!hair.at(x, y)) continue;
        for (int64_t c = 0; c < C; ++c) {
          win.clear();
          for (int64_t yy = std::max<int64_t>(0, y - m); yy <= std::min(h - 1, y + m); ++yy)
            for (int64_t xx = std::max<int64_t>(0, x - m); xx <= std::min(w - 1, x + m); ++xx)
              win.push_back(src.at(xx, yy)[c]);
          std::nth_element(win.begin(), win.begin() + win.size() / 2, win.end());
          out.at(x, y)[c] = win[win.size() / 2];
        }
      }
  }
  if (hair_mask) *hair_mask = std::move(hair);
  return out;
}

}  // namespace glimpse::data
