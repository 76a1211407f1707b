// Regions of a heatmap: "what did the network take for melanoma? Circle it on the photo."
//
// A map (one image, [H, W] / [1, H, W] / [1, 1, H, W]) is thresholded into a mask, the mask is split
// into connected components (8-connectivity), and each component becomes a Region with:
//   contour  : its outer boundary, traced in order (Moore-neighbour tracing, clockwise on screen,
//              starting at the top-most, then left-most pixel; each boundary pixel once per visit,
//              so a one-pixel-wide arm is walked out and back). Holes are not traced.
//   bbox     : the inclusive pixel box [x0, x1] x [y0, y1];
//   circle   : the minimum enclosing circle of its pixel centres (Welzl's algorithm, exact up to
//              floating point, run on the boundary pixels -- interior pixels cannot lie outside);
//   ellipse  : from second moments: centre = centroid, semi-axes a >= b = 2 sqrt(eigenvalues of the
//              covariance), each pixel counted as a unit square (+1/12 on the diagonal), angle of
//              the major axis in radians from +x towards +y (a uniform elliptic disc gives back its
//              own axes);
//   area (pixels), peak (max map value) and its position, mean, and score = sum of the map over
//              the region (its attribution mass). Regions are sorted by score, largest first.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attribution/render.h"
#include "core/io/image.h"
#include "core/tensor.h"

namespace glimpse::attr {

// How to turn a map into a mask: pixel set where value >= threshold.
//   Fraction  : threshold = param * max(map)               (param in [0, 1], e.g. 0.5)
//   Percentile: threshold = the param-th percentile         (param in [0, 100]; the value at rank
//               floor(param/100 * (n-1)) of the sorted values, so ~(100 - param)% of pixels are set)
//   Otsu      : the threshold maximizing the between-class variance of a 256-bin histogram over
//               [min, max] (param unused); the threshold is the upper edge of the last "low" bin.
//   Value     : threshold = param.
enum class ThresholdMethod { Fraction, Percentile, Otsu, Value };
struct Threshold {
  ThresholdMethod method = ThresholdMethod::Fraction;
  float param = 0.5f;
};
// "fraction:0.5", "percentile:90", "otsu", "value:0.3" (the apps' --threshold); errors list the forms.
Threshold parse_threshold(const std::string& spec);
std::string threshold_str(const Threshold& t);

float threshold_value(const std::vector<float>& values, const Threshold& t);
float threshold_value(const Tensor& map, const Threshold& t);
float otsu_threshold(const std::vector<float>& values, int bins = 256);
io::Mask threshold_map(const Tensor& map, const Threshold& t);

// Connected components of a mask with 8-connectivity: labels[y * w + x] = 0 for background, else
// 1..count in raster order of each component's first pixel.
struct Components {
  int64_t width = 0, height = 0;
  int count = 0;
  std::vector<int> labels;
};
Components connected_components(const io::Mask& mask);

using Point = std::array<int64_t, 2>;  // (x, y)

struct Box {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // inclusive
  int64_t width() const { return x1 - x0 + 1; }
  int64_t height() const { return y1 - y0 + 1; }
};
struct Circle {
  double cx = 0, cy = 0, r = 0;
};
struct Ellipse {
  double cx = 0, cy = 0, a = 0, b = 0, angle = 0;  // semi-axes a >= b, angle in radians
};

struct Region {
  int id = 0;  // 1-based rank after sorting
  int64_t area = 0;
  float peak = 0, mean = 0, score = 0;
  Point peak_at{0, 0};
  Box bbox;
  Circle circle;
  Ellipse ellipse;
  std::vector<Point> contour;
};

// Minimum enclosing circle of points (Welzl, iterative move-to-front form with a fixed shuffle, so
// the result is deterministic). Empty input -> r = 0 at the origin.
Circle min_enclosing_circle(const std::vector<std::array<double, 2>>& points);
// The outer boundary of the component `label` traced in order (see above).
std::vector<Point> trace_contour(const Components& cc, int label);

struct RegionOptions {
  Threshold threshold{};
  int64_t min_area = 1;  // smaller components are dropped
  int max_regions = 0;   // keep the best k (0 = all)
};
// Threshold, components, per-region geometry and scores, sorted by score.
std::vector<Region> find_regions(const Tensor& map, const RegionOptions& opt = {});

// Drawing regions on the photo (the map's coordinates are scaled to the photo's when sizes differ:
// pass the map's size).
enum class RegionShape { Circle, Ellipse, Box, Contour };
RegionShape region_shape_from_name(const std::string& name);  // "circle", "ellipse", "box", "contour"
struct RegionStyle {
  RegionShape shape = RegionShape::Circle;
  Rgb colour = kGreen;
  int thickness = 2;
  double margin = 1.0;  // circles/ellipses grown by this many (map) pixels so the ring does not cut the region
};
void draw_regions(io::Image& photo, const std::vector<Region>& regions, int64_t map_width, int64_t map_height,
                  const RegionStyle& style = {});

// [{"id", "area", "score", "peak", "mean", "peak_at": [x, y], "bbox": {"x0","y0","x1","y1"},
//   "circle": {"cx","cy","r"}, "ellipse": {"cx","cy","a","b","angle_deg"}, "contour": [[x, y], ...]}]
nlohmann::json regions_to_json(const std::vector<Region>& regions, bool with_contours = true);
// {"width", "height", "threshold", "regions": [...]} with the keys of `extra` (an object) merged in;
// errors name the path.
void write_regions_json(const std::string& path, const std::vector<Region>& regions, int64_t map_width,
                        int64_t map_height, const RegionOptions& opt, const nlohmann::json& extra = {});

}  // namespace glimpse::attr
