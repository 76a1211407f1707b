// Thresholds, connected components and region geometry; see regions.h.
#include "attribution/regions.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace glimpse::attr {

// ---------------------------------------------------------------------------------------------
// thresholds

Threshold parse_threshold(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto number = [&](float lo, float hi) {
    float v = 0;
    try {
      size_t used = 0;
      v = std::stof(arg, &used);
      GLIMPSE_CHECK(used == arg.size(), "threshold '", spec, "': '", arg, "' is not a number");
    } catch (const std::logic_error&) {
      GLIMPSE_FAIL("threshold '", spec, "': '", arg, "' is not a number");
    }
    GLIMPSE_CHECK(v >= lo && v <= hi, "threshold '", spec, "': ", v, " is outside [", lo, ", ", hi, "]");
    return v;
  };
  if (kind == "fraction") return {ThresholdMethod::Fraction, number(0.f, 1.f)};
  if (kind == "percentile") return {ThresholdMethod::Percentile, number(0.f, 100.f)};
  if (kind == "value")
    return {ThresholdMethod::Value, number(-std::numeric_limits<float>::max(), std::numeric_limits<float>::max())};
  if (kind == "otsu" && arg.empty()) return {ThresholdMethod::Otsu, 0.f};
  GLIMPSE_FAIL("unknown threshold '", spec, "'; use fraction:F (F of the maximum, F in [0, 1]), percentile:P ",
               "(P in [0, 100]), otsu, or value:V");
}

std::string threshold_str(const Threshold& t) {
  switch (t.method) {
    case ThresholdMethod::Fraction:
      return detail::concat("fraction:", t.param);
    case ThresholdMethod::Percentile:
      return detail::concat("percentile:", t.param);
    case ThresholdMethod::Otsu:
      return "otsu";
    case ThresholdMethod::Value:
      return detail::concat("value:", t.param);
  }
  return "?";
}

float otsu_threshold(const std::vector<float>& values, int bins) {
  GLIMPSE_CHECK(!values.empty(), "otsu_threshold: no values");
  GLIMPSE_CHECK(bins >= 2, "otsu_threshold: bins = ", bins, " (>= 2)");
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const double lo = *lo_it, hi = *hi_it;
  if (!(hi > lo)) return static_cast<float>(hi);
  const double width = (hi - lo) / bins;
  // Per bin: count and sum of the actual values (class means from the values, not bin centres).
  std::vector<double> count(bins, 0.0), total(bins, 0.0);
  for (float v : values) {
    const int b = std::clamp(static_cast<int>((v - lo) / width), 0, bins - 1);
    count[b] += 1;
    total[b] += v;
  }
  const double n = static_cast<double>(values.size());
  const double all = std::accumulate(total.begin(), total.end(), 0.0);
  // Split after bin k: class 0 = bins 0..k, class 1 = bins k+1..; between-class variance
  //   sigma_b^2(k) = w0 w1 (mu0 - mu1)^2  (w = class weights, mu = class means).
  double w0 = 0, s0 = 0, best = -1;
  int k_first = 0, k_last = 0;
  for (int k = 0; k + 1 < bins; ++k) {
    w0 += count[k];
    s0 += total[k];
    const double w1 = n - w0;
    if (w0 == 0 || w1 == 0) continue;
    const double mu0 = s0 / w0, mu1 = (all - s0) / w1;
    const double sb = (w0 / n) * (w1 / n) * (mu0 - mu1) * (mu0 - mu1);
    if (sb > best * (1 + 1e-12) + 1e-300) {
      best = sb;
      k_first = k_last = k;
    } else if (std::fabs(sb - best) <= 1e-12 * best && k == k_last + 1) {
      k_last = k;  // a plateau (empty bins between the modes): take its middle below
    }
  }
  // Upper edge of the chosen bin; on a plateau, the middle of its edges.
  return static_cast<float>(lo + ((k_first + k_last) / 2.0 + 1.0) * width);
}

float threshold_value(const std::vector<float>& v, const Threshold& t) {
  GLIMPSE_CHECK(!v.empty(), "threshold: empty map");
  switch (t.method) {
    case ThresholdMethod::Fraction: {
      GLIMPSE_CHECK(t.param >= 0.f && t.param <= 1.f, "threshold fraction ", t.param, " is outside [0, 1]");
      return t.param * *std::max_element(v.begin(), v.end());
    }
    case ThresholdMethod::Percentile: {
      GLIMPSE_CHECK(t.param >= 0.f && t.param <= 100.f, "threshold percentile ", t.param, " is outside [0, 100]");
      std::vector<float> s = v;
      const size_t idx = static_cast<size_t>(std::floor(t.param / 100.0 * (s.size() - 1)));
      std::nth_element(s.begin(), s.begin() + idx, s.end());
      return s[idx];
    }
    case ThresholdMethod::Otsu:
      return otsu_threshold(v);
    case ThresholdMethod::Value:
      return t.param;
  }
  return 0.f;
}

float threshold_value(const Tensor& map, const Threshold& t) {
  int64_t h = 0, w = 0;
  return threshold_value(io::map_values(map, h, w, "threshold"), t);
}

io::Mask threshold_map(const Tensor& map, const Threshold& t) {
  int64_t h = 0, w = 0;
  std::vector<float> v = io::map_values(map, h, w, "threshold_map");
  io::Mask m(w, h);
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  // A constant map has no structure to threshold: an empty mask (never "everything").
  if (t.method != ThresholdMethod::Value && !(*hi > *lo)) return m;
  // Fraction of a maximum <= 0: nothing positive to find.
  if (t.method == ThresholdMethod::Fraction && !(*hi > 0.f)) return m;
  const float thr = threshold_value(v, t);
  for (size_t i = 0; i < v.size(); ++i) m.data[i] = v[i] >= thr ? 1 : 0;
  return m;
}

// ---------------------------------------------------------------------------------------------
// connected components (8-connectivity): a flood fill from each unlabeled set pixel, in raster order

Components connected_components(const io::Mask& mask) {
  Components cc;
  cc.width = mask.width;
  cc.height = mask.height;
  cc.labels.assign(mask.data.size(), 0);
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < static_cast<int64_t>(mask.data.size()); ++start) {
    if (!mask.data[start] || cc.labels[start]) continue;
    const int label = ++cc.count;
    cc.labels[start] = label;
    stack.assign(1, start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t px = p % mask.width, py = p / mask.width;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t x = px + dx, y = py + dy;
          if ((dx == 0 && dy == 0) || x < 0 || y < 0 || x >= mask.width || y >= mask.height) continue;
          const int64_t q = y * mask.width + x;
          if (mask.data[q] && !cc.labels[q]) {
            cc.labels[q] = label;
            stack.push_back(q);
          }
        }
    }
  }
  return cc;
}

// ---------------------------------------------------------------------------------------------
// contour: Moore-neighbour tracing

std::vector<Point> trace_contour(const Components& cc, int label) {
  // The 8 neighbours, clockwise on screen (y down) starting from the west.
  static constexpr int kDx[8] = {-1, -1, 0, 1, 1, 1, 0, -1};
  static constexpr int kDy[8] = {0, -1, -1, -1, 0, 1, 1, 1};
  auto inside = [&](int64_t x, int64_t y) {
    return x >= 0 && y >= 0 && x < cc.width && y < cc.height && cc.labels[y * cc.width + x] == label;
  };
  auto dir_of = [](int64_t dx, int64_t dy) {
    for (int d = 0; d < 8; ++d)
      if (kDx[d] == dx && kDy[d] == dy) return d;
    return -1;
  };
  std::vector<Point> contour;
  int64_t start = -1, area = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(cc.labels.size()); ++i)
    if (cc.labels[i] == label) {
      if (start < 0) start = i;
      ++area;
    }
  if (start < 0) return contour;
  // The first pixel in raster order: its west neighbour is background, the backtrack to start from.
  const Point s{start % cc.width, start / cc.width};
  contour.push_back(s);
  Point cur = s;
  int back = 0;  // direction from cur to its backtrack pixel
  Point first_move{-1, -1};
  for (int64_t iter = 0; iter < 8 * area + 16; ++iter) {
    // Walk clockwise around cur from the backtrack; the first pixel of the region is the next one.
    int found = -1;
    for (int i = 1; i <= 8; ++i) {
      const int d = (back + i) % 8;
      if (inside(cur[0] + kDx[d], cur[1] + kDy[d])) {
        found = d;
        break;
      }
    }
    if (found < 0) break;  // an isolated pixel
    const Point next{cur[0] + kDx[found], cur[1] + kDy[found]};
    // Stop when the first move repeats (the walk is deterministic from there on).
    if (cur == s && first_move[0] >= 0 && next == first_move) break;
    if (cur == s && first_move[0] < 0) first_move = next;
    // The cell examined just before `next` is background and 4-adjacent to next: the new backtrack.
    const int prev = (found + 7) % 8;
    back = dir_of(cur[0] + kDx[prev] - next[0], cur[1] + kDy[prev] - next[1]);
    cur = next;
    if (cur == s) continue;  // back at the start: the stop test above decides
    contour.push_back(cur);
  }
  return contour;
}

// ---------------------------------------------------------------------------------------------
// minimum enclosing circle (Welzl 1991, iterative form)

namespace {

using P2 = std::array<double, 2>;

bool in_circle(const Circle& c, const P2& p) { return std::hypot(p[0] - c.cx, p[1] - c.cy) <= c.r * (1 + 1e-9) + 1e-9; }
Circle circle2(const P2& a, const P2& b) {
  return {(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, std::hypot(a[0] - b[0], a[1] - b[1]) / 2};
}
Circle circle3(const P2& a, const P2& b, const P2& c) {
  // Circumcircle; for (nearly) collinear points the widest two-point circle encloses all three.
  const double bx = b[0] - a[0], by = b[1] - a[1], cx = c[0] - a[0], cy = c[1] - a[1];
  const double d = 2 * (bx * cy - by * cx);
  if (std::fabs(d) < 1e-12) {
    Circle best = circle2(a, b);
    for (const Circle& k : {circle2(a, c), circle2(b, c)})
      if (k.r > best.r) best = k;
    return best;
  }
  const double b2 = bx * bx + by * by, c2 = cx * cx + cy * cy;
  const double ux = (cy * b2 - by * c2) / d, uy = (bx * c2 - cx * b2) / d;
  return {a[0] + ux, a[1] + uy, std::hypot(ux, uy)};
}

}  // namespace

Circle min_enclosing_circle(const std::vector<P2>& points) {
  if (points.empty()) return {};
  std::vector<P2> p = points;
  // A fixed shuffle: expected linear time, same answer every run.
  Rng rng(0x5eedc1c1e);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  Circle c{p[0][0], p[0][1], 0};
  for (size_t i = 1; i < p.size(); ++i) {
    if (in_circle(c, p[i])) continue;
    c = {p[i][0], p[i][1], 0};  // p[i] is on the boundary of the circle of p[0..i]
    for (size_t j = 0; j < i; ++j) {
      if (in_circle(c, p[j])) continue;
      c = circle2(p[i], p[j]);  // p[i] and p[j] on the boundary
      for (size_t k = 0; k < j; ++k)
        if (!in_circle(c, p[k])) c = circle3(p[i], p[j], p[k]);
    }
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// regions

std::vector<Region> find_regions(const Tensor& map, const RegionOptions& opt) {
  int64_t h = 0, w = 0;
  std::vector<float> v = io::map_values(map, h, w, "find_regions");
  const io::Mask mask = threshold_map(map, opt.threshold);
  const Components cc = connected_components(mask);
  struct Acc {
    int64_t area = 0;
    double sum = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    float peak = -std::numeric_limits<float>::infinity();
    Point peak_at{0, 0};
    Box box{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max(), -1, -1};
    std::vector<P2> boundary;
  };
  std::vector<Acc> acc(cc.count + 1);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int l = cc.labels[y * w + x];
      if (!l) continue;
      Acc& a = acc[l];
      const float val = v[y * w + x];
      ++a.area;
      a.sum += val;
      a.sx += x, a.sy += y;
      a.sxx += double(x) * x, a.syy += double(y) * y, a.sxy += double(x) * y;
      if (val > a.peak) a.peak = val, a.peak_at = {x, y};
      a.box.x0 = std::min(a.box.x0, x), a.box.y0 = std::min(a.box.y0, y);
      a.box.x1 = std::max(a.box.x1, x), a.box.y1 = std::max(a.box.y1, y);
      auto other = [&](int64_t xx, int64_t yy) {
        return xx < 0 || yy < 0 || xx >= w || yy >= h || cc.labels[yy * w + xx] != l;
      };
      if (other(x - 1, y) || other(x + 1, y) || other(x, y - 1) || other(x, y + 1))
        a.boundary.push_back({double(x), double(y)});
    }
  std::vector<Region> regions;
  for (int l = 1; l <= cc.count; ++l) {
    const Acc& a = acc[l];
    if (a.area < opt.min_area) continue;
    Region r;
    r.area = a.area;
    r.score = static_cast<float>(a.sum);
    r.mean = static_cast<float>(a.sum / a.area);
    r.peak = a.peak;
    r.peak_at = a.peak_at;
    r.bbox = a.box;
    r.circle = min_enclosing_circle(a.boundary);
    // Second moments; each pixel a unit square adds 1/12 to the variance along x and y.
    const double n = static_cast<double>(a.area), mx = a.sx / n, my = a.sy / n;
    const double cxx = a.sxx / n - mx * mx + 1.0 / 12, cyy = a.syy / n - my * my + 1.0 / 12, cxy = a.sxy / n - mx * my;
    const double half_tr = (cxx + cyy) / 2, disc = std::sqrt(std::max(0.0, (cxx - cyy) * (cxx - cyy) / 4 + cxy * cxy));
    r.ellipse = {mx, my, 2 * std::sqrt(std::max(0.0, half_tr + disc)), 2 * std::sqrt(std::max(0.0, half_tr - disc)),
                 0.5 * std::atan2(2 * cxy, cxx - cyy)};
    r.contour = trace_contour(cc, l);
    regions.push_back(std::move(r));
  }
  std::stable_sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) { return a.score > b.score; });
  if (opt.max_regions > 0 && static_cast<int>(regions.size()) > opt.max_regions) regions.resize(opt.max_regions);
  for (size_t i = 0; i < regions.size(); ++i) regions[i].id = static_cast<int>(i + 1);
  return regions;
}

RegionShape region_shape_from_name(const std::string& name) {
  if (name == "circle") return RegionShape::Circle;
  if (name == "ellipse") return RegionShape::Ellipse;
  if (name == "box") return RegionShape::Box;
  if (name == "contour") return RegionShape::Contour;
  GLIMPSE_FAIL("unknown region shape '", name, "'; known: circle, ellipse, box, contour");
}

void draw_regions(io::Image& photo, const std::vector<Region>& regions, int64_t map_width, int64_t map_height,
                  const RegionStyle& style) {
  GLIMPSE_CHECK(map_width > 0 && map_height > 0, "draw_regions: map size ", map_width, "x", map_height);
  // Map pixel centre x -> photo coordinate (x + 0.5) * sx - 0.5.
  const double sx = static_cast<double>(photo.width) / map_width, sy = static_cast<double>(photo.height) / map_height;
  auto X = [&](double x) { return (x + 0.5) * sx - 0.5; };
  auto Y = [&](double y) { return (y + 0.5) * sy - 0.5; };
  for (const Region& r : regions) {
    switch (style.shape) {
      case RegionShape::Circle: {
        const double rad = (r.circle.r + style.margin) * std::max(sx, sy);
        draw_circle(photo, X(r.circle.cx), Y(r.circle.cy), rad, style.colour, style.thickness);
        break;
      }
      case RegionShape::Ellipse: {
        const double c = std::cos(r.ellipse.angle), s = std::sin(r.ellipse.angle);
        const double a = (r.ellipse.a + style.margin) * std::hypot(sx * c, sy * s);
        const double b = (r.ellipse.b + style.margin) * std::hypot(sx * s, sy * c);
        const double angle = std::atan2(sy * s, sx * c);
        draw_ellipse(photo, X(r.ellipse.cx), Y(r.ellipse.cy), a, b, angle, style.colour, style.thickness);
        break;
      }
      case RegionShape::Box:
        draw_box(photo, std::lround(r.bbox.x0 * sx), std::lround(r.bbox.y0 * sy), std::lround((r.bbox.x1 + 1) * sx) - 1,
                 std::lround((r.bbox.y1 + 1) * sy) - 1, style.colour, style.thickness);
        break;
      case RegionShape::Contour: {
        std::vector<std::array<int64_t, 2>> pts;
        pts.reserve(r.contour.size());
        for (const Point& p : r.contour) pts.push_back({std::lround(X(p[0])), std::lround(Y(p[1]))});
        draw_polygon(photo, pts, style.colour, style.thickness);
        break;
      }
    }
  }
}

nlohmann::json regions_to_json(const std::vector<Region>& regions, bool with_contours) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Region& r : regions) {
    nlohmann::json j;
    j["id"] = r.id;
    j["area"] = r.area;
    j["score"] = r.score;
    j["peak"] = r.peak;
    j["mean"] = r.mean;
    j["peak_at"] = {r.peak_at[0], r.peak_at[1]};
    j["bbox"] = {{"x0", r.bbox.x0}, {"y0", r.bbox.y0}, {"x1", r.bbox.x1}, {"y1", r.bbox.y1}};
    j["circle"] = {{"cx", r.circle.cx}, {"cy", r.circle.cy}, {"r", r.circle.r}};
    j["ellipse"] = {{"cx", r.ellipse.cx},
                    {"cy", r.ellipse.cy},
                    {"a", r.ellipse.a},
                    {"b", r.ellipse.b},
                    {"angle_deg", r.ellipse.angle * 180.0 / 3.14159265358979323846}};
    if (with_contours) {
      nlohmann::json c = nlohmann::json::array();
      for (const Point& p : r.contour) c.push_back({p[0], p[1]});
      j["contour"] = std::move(c);
    }
    arr.push_back(std::move(j));
  }
  return arr;
}

void write_regions_json(const std::string& path, const std::vector<Region>& regions, int64_t map_width,
                        int64_t map_height, const RegionOptions& opt, const nlohmann::json& extra) {
  nlohmann::json j;
  j["width"] = map_width;
  j["height"] = map_height;
  j["threshold"] = threshold_str(opt.threshold);
  j["min_area"] = opt.min_area;
  j["regions"] = regions_to_json(regions);
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  std::ofstream f(path);
  GLIMPSE_CHECK(f.good(), "cannot open '", path, "' for writing (does the directory exist?)");
  f << j.dump(2) << "\n";
  f.close();
  GLIMPSE_CHECK(!f.fail(), "error writing '", path, "'");
}

}  // namespace glimpse::attr
