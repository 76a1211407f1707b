// Rendering and image I/O (attribution/render.cpp, core/io/image.cpp).
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "attribution/render.h"
#include "core/error.h"
#include "core/io/image.h"

using namespace glimpse;
using namespace glimpse::attr;
using namespace glimpse::io;

namespace {
std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("glimpse_" + std::to_string(::getpid()) + "_" + name);
}
}  // namespace

TEST(Render, ColormapEndpoints) {
  // jet: r = clamp(1.5 - |4t - 3|), g = clamp(1.5 - |4t - 2|), b = clamp(1.5 - |4t - 1|)
  EXPECT_EQ(colormap(Colormap::Jet, 0.f), (Rgb{0, 0, 128}));       // (0, 0, 0.5)
  EXPECT_EQ(colormap(Colormap::Jet, 1.f), (Rgb{128, 0, 0}));       // (0.5, 0, 0)
  EXPECT_EQ(colormap(Colormap::Jet, 0.5f), (Rgb{128, 255, 128}));  // (0.5, 1, 0.5)
  EXPECT_EQ(colormap(Colormap::Viridis, 0.f), (Rgb{68, 1, 84}));
  EXPECT_EQ(colormap(Colormap::Viridis, 1.f), (Rgb{253, 231, 37}));
  EXPECT_EQ(colormap(Colormap::Inferno, 0.f), (Rgb{0, 0, 4}));
  EXPECT_EQ(colormap(Colormap::Inferno, 1.f), (Rgb{252, 255, 164}));
  EXPECT_EQ(colormap(Colormap::Grey, 0.f), (Rgb{0, 0, 0}));
  EXPECT_EQ(colormap(Colormap::Grey, 1.f), (Rgb{255, 255, 255}));
  EXPECT_EQ(colormap(Colormap::Grey, 0.5f), (Rgb{128, 128, 128}));
  // clamped outside [0, 1]; NaN is drawn as 0
  EXPECT_EQ(colormap(Colormap::Viridis, -3.f), colormap(Colormap::Viridis, 0.f));
  EXPECT_EQ(colormap(Colormap::Inferno, 7.f), colormap(Colormap::Inferno, 1.f));
  EXPECT_EQ(colormap(Colormap::Jet, std::nanf("")), colormap(Colormap::Jet, 0.f));
  // viridis/inferno interpolate between anchors: halfway between t=0 and t=0.1
  EXPECT_EQ(colormap(Colormap::Viridis, 0.05f), (Rgb{70, 19, 101}));  // (68+72)/2, (1+36)/2 -> 18.5 -> 19, (84+117)/2
  // luminance of viridis and inferno increases monotonically
  for (Colormap c : {Colormap::Viridis, Colormap::Inferno}) {
    double prev = -1;
    for (int i = 0; i <= 20; ++i) {
      Rgb v = colormap(c, i / 20.f);
      const double lum = 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
      EXPECT_GT(lum, prev) << colormap_name(c) << " " << i;
      prev = lum;
    }
  }
  EXPECT_EQ(colormap_from_name("viridis"), Colormap::Viridis);
  EXPECT_EQ(colormap_from_name("gray"), Colormap::Grey);
  try {
    colormap_from_name("rainbow");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inferno"), std::string::npos) << e.what();
  }
}

// (1 - a) * photo + a * overlay with a = 0.25: (100, 200, 50) over (200, 0, 250)
//   -> (75 + 50, 150 + 0, 37.5 + 62.5) = (125, 150, 100).
TEST(Render, BlendingArithmetic) {
  Image photo(2, 1, 3), over(2, 1, 3);
  for (int x = 0; x < 2; ++x) {
    photo.at(x, 0)[0] = 100, photo.at(x, 0)[1] = 200, photo.at(x, 0)[2] = 50;
    over.at(x, 0)[0] = 200, over.at(x, 0)[1] = 0, over.at(x, 0)[2] = 250;
  }
  Image b = blend(photo, over, 0.25f);
  EXPECT_EQ(b.at(1, 0)[0], 125);
  EXPECT_EQ(b.at(1, 0)[1], 150);
  EXPECT_EQ(b.at(1, 0)[2], 100);
  EXPECT_EQ(blend(photo, over, 0.f).pixels, photo.pixels);
  EXPECT_EQ(blend(photo, over, 1.f).pixels, over.pixels);
  EXPECT_THROW(blend(photo, over, 1.5f), Error);
  EXPECT_THROW(blend(photo, Image(3, 1, 3), 0.5f), Error);
  // weighted: weight 0 keeps the photo, weight 1 gives blend(alpha)
  Tensor w = Tensor::from_vector({1, 2}, {0.f, 1.f});
  Image bw = blend_weighted(photo, over, w, 0.25f);
  EXPECT_EQ(bw.at(0, 0)[0], 100);
  EXPECT_EQ(bw.at(1, 0)[0], 125);
  // overlay_heatmap: a map at half the photo's size is upsampled; a constant 1 map is jet(1) blended
  Image big(4, 2, 3, 0);
  Image o = overlay_heatmap(big, Tensor::ones({1, 2}), Colormap::Jet, 0.5f);
  EXPECT_EQ(o.width, 4);
  EXPECT_EQ(o.at(3, 1)[0], 64);  // 0.5 * 128
  // colorize
  Image c = colorize(Tensor::from_vector({1, 1, 1, 2}, {0.f, 1.f}), Colormap::Grey);
  EXPECT_EQ(c.at(0, 0)[0], 0);
  EXPECT_EQ(c.at(1, 0)[2], 255);
  EXPECT_THROW(colorize(Tensor::zeros({2, 3, 3})), Error);  // a batch of maps
}

TEST(Render, Shapes) {
  Image img(21, 21, 3, 0);
  draw_circle(img, 10, 10, 6, kRed, 1);
  EXPECT_EQ(img.at(16, 10)[0], 255);
  EXPECT_EQ(img.at(10, 4)[0], 255);
  EXPECT_EQ(img.at(10, 10)[0], 0);  // not filled
  EXPECT_EQ(img.at(0, 0)[0], 0);
  Image box(10, 10, 3, 0);
  draw_box(box, 2, 3, 7, 8, kBlue, 1);
  EXPECT_EQ(box.at(2, 3)[2], 255);
  EXPECT_EQ(box.at(7, 8)[2], 255);
  EXPECT_EQ(box.at(5, 3)[2], 255);
  EXPECT_EQ(box.at(5, 5)[2], 0);
  // thickness widens the line; drawing outside the image is clipped
  Image thick(10, 10, 3, 0);
  draw_line(thick, -5, 5, 20, 5, kGreen, 3);
  EXPECT_EQ(thick.at(0, 4)[1], 255);
  EXPECT_EQ(thick.at(9, 6)[1], 255);
  EXPECT_EQ(thick.at(5, 2)[1], 0);
  Image el(30, 30, 3, 0);
  draw_ellipse(el, 15, 15, 10, 4, 0.0, kWhite, 1);
  EXPECT_EQ(el.at(25, 15)[0], 255);
  EXPECT_EQ(el.at(15, 11)[0], 255);
  EXPECT_EQ(el.at(15, 5)[0], 0);
  // mask outline: a filled 4x4 square's 12 boundary pixels
  Mask m(8, 8);
  for (int y = 2; y < 6; ++y)
    for (int x = 2; x < 6; ++x) m.at(x, y) = 1;
  Image out(8, 8, 3, 0);
  draw_mask_outline(out, m, kYellow, 1);
  int n = 0;
  for (int i = 0; i < 64; ++i) n += out.pixels[i * 3] == 255;
  EXPECT_EQ(n, 12);
  EXPECT_EQ(out.at(3, 3)[0], 0);
  EXPECT_THROW(draw_mask_outline(out, Mask(4, 4), kYellow), Error);
}

TEST(ImageIO, PngRoundTrip) {
  Image img(7, 5, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>((i * 37) % 256);
  const auto path = temp_path("roundtrip.png");
  save_png(path.string(), img);
  Image back = load_image(path.string());
  EXPECT_EQ(back.width, 7);
  EXPECT_EQ(back.height, 5);
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(back.pixels, img.pixels);
  // as a tensor [1, 3, H, W] in [0, 1]: values k / 255 exactly
  Tensor t = load_image_tensor(path.string());
  EXPECT_EQ(t.shape(), (Shape{1, 3, 5, 7}));
  EXPECT_FLOAT_EQ(t.at({0, 1, 2, 3}), img.at(3, 2)[1] / 255.f);
  save_png(path.string(), t);
  EXPECT_EQ(load_image(path.string()).pixels, img.pixels);
  // a grey image loads as RGB; a mask round trip
  Mask m(4, 3);
  m.at(1, 1) = 1, m.at(3, 2) = 1;
  save_png(path.string(), m);
  Mask mb = load_mask(path.string());
  EXPECT_EQ(mb.data, m.data);
  Image g = load_image(path.string());
  EXPECT_EQ(g.channels, 3);
  EXPECT_EQ(g.at(1, 1)[2], 255);
  std::filesystem::remove(path);
}

TEST(ImageIO, ErrorsNameThePath) {
  const std::string missing = (std::filesystem::temp_directory_path() / "glimpse_no_such_image_xyz.png").string();
  try {
    load_image(missing);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_mask(missing), Error);
  const std::string bad_dir = "/nonexistent_glimpse_dir/out.png";
  try {
    save_png(bad_dir, Image(2, 2, 3));
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad_dir), std::string::npos) << e.what();
  }
  // not an image
  const auto txt = temp_path("not_an_image.png");
  { std::ofstream(txt) << "hello"; }
  try {
    load_image(txt.string());
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(txt.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(txt);
  EXPECT_THROW(tensor_to_image(Tensor::zeros({2, 3, 4, 4})), Error);
}

TEST(ImageIO, Resize) {
  Mask m(2, 2);
  m.at(1, 0) = 1;
  Mask r = resize_mask(m, 4, 4);
  EXPECT_EQ(r.count(), 4);
  EXPECT_EQ(r.at(3, 0), 1);
  EXPECT_EQ(r.at(2, 1), 1);
  EXPECT_EQ(r.at(1, 1), 0);
  Image img(2, 2, 3, 100);
  Image big = resize_image(img, 5, 3);
  EXPECT_EQ(big.width, 5);
  for (uint8_t v : big.pixels) EXPECT_EQ(v, 100);
}
