// Regions (attribution/regions.cpp): thresholds, connected components, contours, enclosing circles,
// ellipses, JSON and drawing.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "attribution/regions.h"
#include "core/error.h"

using namespace glimpse;
using namespace glimpse::attr;
using namespace glimpse::io;

TEST(Regions, ThresholdByFractionAndPercentile) {
  // values 0, 1, ..., 99 on a 10x10 grid
  std::vector<float> v(100);
  for (int i = 0; i < 100; ++i) v[i] = static_cast<float>(i);
  Tensor map = Tensor::from_vector({10, 10}, v);
  // fraction 0.5 of the max (99): threshold 49.5 -> values 50..99: 50 pixels
  EXPECT_FLOAT_EQ(threshold_value(map, {ThresholdMethod::Fraction, 0.5f}), 49.5f);
  EXPECT_EQ(threshold_map(map, {ThresholdMethod::Fraction, 0.5f}).count(), 50);
  // percentile 90: the value at rank floor(0.9 * 99) = 89 -> values 89..99: 11 pixels
  EXPECT_FLOAT_EQ(threshold_value(map, {ThresholdMethod::Percentile, 90.f}), 89.f);
  EXPECT_EQ(threshold_map(map, {ThresholdMethod::Percentile, 90.f}).count(), 11);
  EXPECT_EQ(threshold_map(map, {ThresholdMethod::Value, 95.f}).count(), 5);
  // a constant map has nothing to find
  EXPECT_EQ(threshold_map(Tensor::full({5, 5}, 0.7f), {ThresholdMethod::Fraction, 0.5f}).count(), 0);
  EXPECT_EQ(threshold_map(Tensor::full({5, 5}, 0.7f), {ThresholdMethod::Otsu, 0.f}).count(), 0);
  EXPECT_EQ(threshold_map(Tensor::zeros({5, 5}), {ThresholdMethod::Percentile, 50.f}).count(), 0);
  // parsing
  EXPECT_EQ(parse_threshold("otsu").method, ThresholdMethod::Otsu);
  EXPECT_FLOAT_EQ(parse_threshold("percentile:95").param, 95.f);
  EXPECT_FLOAT_EQ(parse_threshold("fraction:0.3").param, 0.3f);
  EXPECT_THROW(parse_threshold("fraction:3"), Error);
  EXPECT_THROW(parse_threshold("fraction:abc"), Error);
  EXPECT_THROW(parse_threshold("median"), Error);
  EXPECT_EQ(threshold_str(parse_threshold("percentile:95")), "percentile:95");
}

// Bimodal: 60 values spread over [0.10, 0.25] and 40 over [0.70, 0.90]. Otsu's threshold must fall
// in the gap, splitting exactly into the two groups.
TEST(Regions, OtsuSplitsABimodalHistogram) {
  std::vector<float> v;
  for (int i = 0; i < 60; ++i) v.push_back(0.10f + 0.15f * i / 59);
  for (int i = 0; i < 40; ++i) v.push_back(0.70f + 0.20f * i / 39);
  const float t = otsu_threshold(v);
  EXPECT_GT(t, 0.25f);
  EXPECT_LE(t, 0.70f);
  // the middle of the empty gap, give or take a bin
  EXPECT_NEAR(t, 0.475f, 0.02f);
  Tensor map = Tensor::from_vector({10, 10}, v);
  EXPECT_EQ(threshold_map(map, {ThresholdMethod::Otsu, 0.f}).count(), 40);
}

// Three components under 8-connectivity: a 2x2 square at (0..1, 0..1), a diagonal of three pixels
// (5,0) (6,1) (7,2) (three separate pixels under 4-connectivity), and the single pixel (9, 9).
TEST(Regions, ConnectedComponentsCountsAreasBoxes) {
  Mask m(10, 10);
  for (auto [x, y] : std::vector<std::pair<int, int>>{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {5, 0}, {6, 1}, {7, 2}, {9, 9}})
    m.at(x, y) = 1;
  Components cc = connected_components(m);
  EXPECT_EQ(cc.count, 3);
  EXPECT_EQ(cc.labels[0], 1);
  EXPECT_EQ(cc.labels[5], 2);
  EXPECT_EQ(cc.labels[1 * 10 + 6], 2);
  EXPECT_EQ(cc.labels[2 * 10 + 7], 2);
  EXPECT_EQ(cc.labels[99], 3);

  // as regions of a map (value 1 on the mask, 0 elsewhere; threshold value 0.5)
  Tensor map = Tensor::zeros({10, 10});
  for (int i = 0; i < 100; ++i) map.data()[i] = m.data[i];
  map.at({9, 9}) = 0.6f;  // the single pixel has a weaker score
  RegionOptions opt;
  opt.threshold = {ThresholdMethod::Value, 0.5f};
  std::vector<Region> r = find_regions(map, opt);
  ASSERT_EQ(r.size(), 3u);
  // sorted by score (sum of the map): square 4, diagonal 3, pixel 0.6
  EXPECT_EQ(r[0].area, 4);
  EXPECT_FLOAT_EQ(r[0].score, 4.f);
  EXPECT_EQ(r[0].bbox.x0, 0);
  EXPECT_EQ(r[0].bbox.y0, 0);
  EXPECT_EQ(r[0].bbox.x1, 1);
  EXPECT_EQ(r[0].bbox.y1, 1);
  EXPECT_EQ(r[1].area, 3);
  EXPECT_EQ(r[1].bbox.x0, 5);
  EXPECT_EQ(r[1].bbox.x1, 7);
  EXPECT_EQ(r[1].bbox.y1, 2);
  EXPECT_EQ(r[2].area, 1);
  EXPECT_FLOAT_EQ(r[2].peak, 0.6f);
  EXPECT_FLOAT_EQ(r[2].mean, 0.6f);
  EXPECT_EQ(r[2].peak_at, (Point{9, 9}));
  EXPECT_EQ(r[0].id, 1);
  EXPECT_EQ(r[2].id, 3);
  // the diagonal's enclosing circle: from (5,0) to (7,2), centre (6,1), r = sqrt(2)
  EXPECT_NEAR(r[1].circle.cx, 6.0, 1e-9);
  EXPECT_NEAR(r[1].circle.cy, 1.0, 1e-9);
  EXPECT_NEAR(r[1].circle.r, std::sqrt(2.0), 1e-9);
  // min_area and max_regions
  opt.min_area = 2;
  EXPECT_EQ(find_regions(map, opt).size(), 2u);
  opt.min_area = 1;
  opt.max_regions = 1;
  EXPECT_EQ(find_regions(map, opt).size(), 1u);
}

// The contour of a 3x3 square at (2..4, 3..5), clockwise from its top-left pixel.
TEST(Regions, ContourOfASquareInOrder) {
  Mask m(8, 8);
  for (int y = 3; y <= 5; ++y)
    for (int x = 2; x <= 4; ++x) m.at(x, y) = 1;
  Components cc = connected_components(m);
  std::vector<Point> c = trace_contour(cc, 1);
  std::vector<Point> want = {{2, 3}, {3, 3}, {4, 3}, {4, 4}, {4, 5}, {3, 5}, {2, 5}, {2, 4}};
  EXPECT_EQ(c, want);
  // a single pixel
  Mask one(3, 3);
  one.at(1, 1) = 1;
  EXPECT_EQ(trace_contour(connected_components(one), 1), (std::vector<Point>{{1, 1}}));
  // an L shape: every boundary pixel appears, consecutive points are 8-neighbours
  Mask l(6, 6);
  for (int y = 0; y < 5; ++y) l.at(1, y) = 1;
  for (int x = 1; x < 5; ++x) l.at(x, 4) = 1;
  std::vector<Point> lc = trace_contour(connected_components(l), 1);
  for (size_t i = 0; i < lc.size(); ++i) {
    const Point& a = lc[i];
    const Point& b = lc[(i + 1) % lc.size()];
    EXPECT_LE(std::max(std::abs(a[0] - b[0]), std::abs(a[1] - b[1])), 1) << i;
    EXPECT_EQ(l.at(a[0], a[1]), 1);
  }
  // 8 pixels; the one-pixel-wide arms are walked out and back (ends once each), and the outward
  // walk cuts the inner corner (1,3) -> (2,4) diagonally: (1,0) (1,1) (1,2) (1,3) (2,4) (3,4) (4,4)
  // (3,4) (2,4) (1,4) (1,3) (1,2) (1,1) = 13 points, covering every pixel.
  EXPECT_EQ(lc.size(), 13u);
  std::set<Point> seen(lc.begin(), lc.end());
  EXPECT_EQ(seen.size(), 8u);
}

// A disc of radius 10 around (20, 20): the enclosing circle contains every pixel centre and is
// near-minimal (the pixels (30, 20), (10, 20), (20, 30), (20, 10) are exactly 10 away, so r = 10).
// Its second-moment ellipse is a circle of radius ~10.
TEST(Regions, EnclosingCircleAndEllipseOfADisc) {
  Tensor map = Tensor::zeros({41, 41});
  for (int y = 0; y < 41; ++y)
    for (int x = 0; x < 41; ++x)
      if ((x - 20) * (x - 20) + (y - 20) * (y - 20) <= 100) map.at({y, x}) = 1.f;
  RegionOptions opt;
  opt.threshold = {ThresholdMethod::Fraction, 0.5f};
  std::vector<Region> r = find_regions(map, opt);
  ASSERT_EQ(r.size(), 1u);
  const Circle& c = r[0].circle;
  EXPECT_NEAR(c.cx, 20.0, 1e-6);
  EXPECT_NEAR(c.cy, 20.0, 1e-6);
  EXPECT_NEAR(c.r, 10.0, 1e-6);
  for (int y = 0; y < 41; ++y)
    for (int x = 0; x < 41; ++x)
      if (map.at({y, x}) > 0) {
        EXPECT_LE(std::hypot(x - c.cx, y - c.cy), c.r + 1e-6);
      }
  EXPECT_NEAR(r[0].ellipse.a, 10.0, 0.3);
  EXPECT_NEAR(r[0].ellipse.b, 10.0, 0.3);
  EXPECT_NEAR(r[0].ellipse.cx, 20.0, 1e-9);

  // an elongated blob: the ellipse's major axis follows it (horizontal bar: angle 0, a > b)
  Tensor bar = Tensor::zeros({20, 40});
  for (int y = 8; y < 12; ++y)
    for (int x = 5; x < 35; ++x) bar.at({y, x}) = 1.f;
  Region b = find_regions(bar, opt).at(0);
  EXPECT_GT(b.ellipse.a, 3 * b.ellipse.b);
  EXPECT_NEAR(std::fmod(std::fabs(b.ellipse.angle), 3.14159265), 0.0, 1e-6);
  EXPECT_NEAR(b.ellipse.a, 2 * std::sqrt((30.0 * 30.0) / 12), 1e-6);  // uniform bar of length 30: var = 30^2/12
}

TEST(Regions, MinEnclosingCircleOfRandomPoints) {
  Rng rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::array<double, 2>> p;
    for (int i = 0; i < 50; ++i) p.push_back({rng.uniform(0, 100), rng.uniform(0, 50)});
    Circle c = min_enclosing_circle(p);
    int on_boundary = 0;
    for (auto& q : p) {
      const double d = std::hypot(q[0] - c.cx, q[1] - c.cy);
      EXPECT_LE(d, c.r * (1 + 1e-9) + 1e-9);
      on_boundary += std::fabs(d - c.r) < 1e-6;
    }
    EXPECT_GE(on_boundary, 2);  // a minimal circle touches at least two points
  }
}

TEST(Regions, JsonHasTheFieldsAndIsWritten) {
  Tensor map = Tensor::zeros({20, 20});
  for (int y = 2; y < 6; ++y)
    for (int x = 2; x < 6; ++x) map.at({y, x}) = 1.f;
  for (int y = 12; y < 15; ++y)
    for (int x = 12; x < 15; ++x) map.at({y, x}) = 0.8f;
  RegionOptions opt;
  std::vector<Region> r = find_regions(map, opt);
  ASSERT_EQ(r.size(), 2u);
  nlohmann::json j = regions_to_json(r);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  for (const char* key : {"id", "area", "score", "peak", "mean", "peak_at", "bbox", "circle", "ellipse", "contour"})
    EXPECT_TRUE(j[0].contains(key)) << key;
  EXPECT_EQ(j[0]["area"], 16);
  EXPECT_EQ(j[0]["bbox"]["x0"], 2);
  EXPECT_EQ(j[0]["bbox"]["y1"], 5);
  EXPECT_TRUE(j[0]["circle"].contains("r"));
  EXPECT_TRUE(j[0]["ellipse"].contains("angle_deg"));
  EXPECT_EQ(j[1]["area"], 9);
  EXPECT_GT(j[0]["score"].get<double>(), j[1]["score"].get<double>());

  const auto path =
      std::filesystem::temp_directory_path() / ("glimpse_regions_" + std::to_string(::getpid()) + ".json");
  write_regions_json(path.string(), r, 20, 20, opt, {{"method", "cam"}});
  std::ifstream f(path);
  nlohmann::json back = nlohmann::json::parse(f);
  EXPECT_EQ(back["width"], 20);
  EXPECT_EQ(back["method"], "cam");
  EXPECT_EQ(back["threshold"], "fraction:0.5");
  EXPECT_EQ(back["regions"].size(), 2u);
  std::filesystem::remove(path);
  try {
    write_regions_json("/nonexistent_dir_glimpse/regions.json", r, 20, 20, opt);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent_dir_glimpse/regions.json"), std::string::npos);
  }
}

TEST(Regions, DrawnCirclesSurroundTheRegion) {
  Tensor map = Tensor::zeros({20, 20});
  for (int y = 8; y < 12; ++y)
    for (int x = 8; x < 12; ++x) map.at({y, x}) = 1.f;
  std::vector<Region> r = find_regions(map);
  ASSERT_EQ(r.size(), 1u);
  // a photo twice the map's size: the circle is drawn at twice the scale, around the blob
  Image photo(40, 40, 3, 0);
  RegionStyle style;
  style.thickness = 1;
  draw_regions(photo, r, 20, 20, style);
  int drawn = 0, inside_blob = 0;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 40; ++x)
      if (photo.at(x, y)[1] == 255) {
        ++drawn;
        if (x >= 16 && x < 24 && y >= 16 && y < 24) ++inside_blob;
      }
  EXPECT_GT(drawn, 20);
  EXPECT_EQ(inside_blob, 0);  // the ring does not cut through the region
  for (RegionShape s : {RegionShape::Box, RegionShape::Ellipse, RegionShape::Contour}) {
    Image p2(40, 40, 3, 0);
    style.shape = s;
    draw_regions(p2, r, 20, 20, style);
    int n = 0;
    for (int i = 0; i < 40 * 40; ++i) n += p2.pixels[i * 3 + 1] == 255;
    EXPECT_GT(n, 8);
  }
  EXPECT_EQ(region_shape_from_name("ellipse"), RegionShape::Ellipse);
  EXPECT_THROW(region_shape_from_name("star"), Error);
}
