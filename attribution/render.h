// Rendering what the user looks at: a heatmap coloured by a colormap, blended over the photo, with
// shapes (boxes, circles, ellipses, contours, mask outlines) drawn on top.
//
// Colormaps (t in [0, 1], clamped; NaN is drawn as t = 0):
//   jet     : the classic piecewise-linear rainbow, r = clamp(1.5 - |4t - 3|), g = clamp(1.5 - |4t - 2|),
//             b = clamp(1.5 - |4t - 1|): dark blue (0, 0, 0.5) at 0, dark red (0.5, 0, 0) at 1.
//   viridis : perceptually uniform blue-green-yellow; inferno: black-purple-orange-yellow. Both are
//             approximations of matplotlib's maps: 11 anchor colours at t = 0, 0.1, ..., 1 (the
//             familiar hex values of those maps) joined by linear interpolation in sRGB; the error
//             against the 256-entry originals is a few units of 255 between anchors.
//   grey    : v = t for all three channels.
// All drawing clips to the image; colours are RGB bytes; thickness is in pixels (>= 1).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/io/image.h"
#include "core/tensor.h"

namespace glimpse::attr {

using Rgb = std::array<uint8_t, 3>;

enum class Colormap { Jet, Viridis, Inferno, Grey };
// "jet", "viridis", "inferno", "grey" (or "gray"); an unknown name lists the known ones.
Colormap colormap_from_name(const std::string& name);
std::string colormap_name(Colormap cmap);
const std::vector<std::string>& colormap_names();

// The colour of t in [0, 1].
Rgb colormap(Colormap cmap, float t);
// A map ([H, W], [1, H, W] or [1, 1, H, W], values expected in [0, 1]) coloured -> RGB image.
io::Image colorize(const Tensor& map, Colormap cmap = Colormap::Jet);

// out = (1 - alpha) * photo + alpha * overlay per channel, rounded; both RGB and the same size.
io::Image blend(const io::Image& photo, const io::Image& overlay, float alpha);
// Per-pixel alpha: out = (1 - alpha * w) * photo + alpha * w * overlay with w = map value in [0, 1]
// (weak attribution lets the photo through). The map must have the photo's size.
io::Image blend_weighted(const io::Image& photo, const io::Image& overlay, const Tensor& weights, float alpha);
// The usual picture: the map (resized bilinearly to the photo when sizes differ) coloured with cmap
// and blended over the photo with `alpha`.
io::Image overlay_heatmap(const io::Image& photo, const Tensor& map, Colormap cmap = Colormap::Jet, float alpha = 0.5f);

// ---- shapes (coordinates in pixels, x to the right, y down; centres of pixels at integers) ----
// A disc of diameter `thickness` stamped at (x, y).
void draw_point(io::Image& img, double x, double y, Rgb colour, int thickness = 1);
void draw_line(io::Image& img, double x0, double y0, double x1, double y1, Rgb colour, int thickness = 1);
// The outline of the box with corners (x0, y0) and (x1, y1), inclusive.
void draw_box(io::Image& img, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb colour, int thickness = 1);
// The ring of points at distance r (+- thickness/2) from (cx, cy).
void draw_circle(io::Image& img, double cx, double cy, double r, Rgb colour, int thickness = 1);
// Ellipse with semi-axes a (along `angle`, radians from the x axis towards +y) and b.
void draw_ellipse(io::Image& img, double cx, double cy, double a, double b, double angle, Rgb colour,
                  int thickness = 1);
// A closed polyline through the points (x, y), e.g. a region's contour.
void draw_polygon(io::Image& img, const std::vector<std::array<int64_t, 2>>& points, Rgb colour, int thickness = 1);
// The boundary of a mask: every set pixel with a 4-neighbour unset (or on the image border),
// thickened to `thickness`. The mask must have the image's size.
void draw_mask_outline(io::Image& img, const io::Mask& mask, Rgb colour, int thickness = 1);

// A few named colours for the apps.
inline constexpr Rgb kRed{255, 0, 0}, kGreen{0, 255, 0}, kBlue{0, 0, 255}, kWhite{255, 255, 255}, kBlack{0, 0, 0},
    kYellow{255, 255, 0}, kCyan{0, 255, 255}, kMagenta{255, 0, 255};

}  // namespace glimpse::attr
