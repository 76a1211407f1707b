// decode_image / load_image / load_mask on hostile and on ordinary bytes (core/io/image_decode.cpp):
// every malformed file of ../shared/reliability is refused quickly with an error naming the file and
// the fault; valid JPEG, PNG (grey, 16-bit, palette, tRNS, interlaced) and BMP decode to the pixels
// written; the format comes from the magic bytes, never the name; the pixel budget is honoured before
// decoding and can be raised; Image/Mask sizes are checked; save_png is atomic; huge images are shrunk
// to a working size before preprocessing.
#include <gtest/gtest.h>
#include <png.h>
#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/image.h"
#include "data/data.h"
#include "data/internal.h"

namespace fs = std::filesystem;
using namespace glimpse;
using namespace glimpse::io;

namespace {

// Restores the process-wide pixel budget after a test that changes it.
struct BudgetGuard {
  int64_t saved = max_image_pixels();
  ~BudgetGuard() { set_max_image_pixels(saved); }
};

const uint8_t* bytes_of(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void append(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

// A smooth test picture with some texture (JPEG-friendly), w x h x c.
std::vector<uint8_t> picture(int w, int h, int c) {
  std::vector<uint8_t> p(static_cast<size_t>(w * h * c));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        p[static_cast<size_t>((y * w + x) * c + k)] =
            static_cast<uint8_t>((x * 7 + y * 3 + k * 60 + (x * y) % 17) & 0xFF);
  return p;
}

std::string stb_png(const std::vector<uint8_t>& px, int w, int h, int c) {
  std::string out;
  EXPECT_NE(stbi_write_png_to_func(append, &out, w, h, c, px.data(), w * c), 0);
  return out;
}

std::string stb_jpeg(const std::vector<uint8_t>& px, int w, int h, int c, int quality = 95) {
  std::string out;
  EXPECT_NE(stbi_write_jpg_to_func(append, &out, w, h, c, px.data(), quality), 0);
  return out;
}

std::string stb_bmp(const std::vector<uint8_t>& px, int w, int h, int c) {
  std::string out;
  EXPECT_NE(stbi_write_bmp_to_func(append, &out, w, h, c, px.data()), 0);
  return out;
}

void png_append(png_structp png, png_bytep data, size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}
void png_flush(png_structp) {}

// Any PNG through libpng's writer (what stb_image_write cannot make: 16-bit, palette, tRNS,
// interlacing). `rows` holds h rows of packed samples (16-bit samples big-endian, as in the file).
std::string libpng_write(int w, int h, int colour_type, int bit_depth, const std::vector<uint8_t>& rows,
                         bool interlace = false, const std::vector<png_color>& palette = {},
                         const std::vector<uint8_t>& trns = {}) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, png_append, png_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), bit_depth, colour_type,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!trns.empty()) png_set_tRNS(png, info, trns.data(), static_cast<int>(trns.size()), nullptr);
  png_write_info(png, info);
  if (interlace) png_set_interlace_handling(png);
  const size_t stride = rows.size() / static_cast<size_t>(h);
  std::vector<png_bytep> ptrs(static_cast<size_t>(h));
  for (int y = 0; y < h; ++y)
    ptrs[static_cast<size_t>(y)] = const_cast<png_bytep>(rows.data() + stride * static_cast<size_t>(y));
  png_write_image(png, ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// The error decode_image throws, or "" when it decodes.
std::string decode_error(const std::string& bytes, const std::string& name, int channels = 3) {
  try {
    decode_image(bytes_of(bytes), bytes.size(), name, channels);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

fs::path temp_dir(const char* name) {
  const fs::path d = fs::temp_directory_path() / (std::string("glimpse_image_decode_") + name + "_" +
                                                  std::to_string(static_cast<long long>(::getpid())));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

int max_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  int m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(int(a[i]) - int(b[i])));
  return m;
}

}  // namespace

// ---- the reliability files -----------------------------------------------------------------------

TEST(ImageDecode, ReliabilityFilesRefusedQuicklyNamingFileAndFault) {
  const fs::path dir = fs::path(GLIMPSE_SOURCE_DIR) / ".." / "shared" / "reliability";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no " << dir << " (the fuzzing findings live beside the repository)";
  // file -> a piece of the message that names the fault.
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"jpeg_dht_counts_over_256.jpg", {"JPEG", "Huffman"}},
      {"pgm16_convert_16_to_8_overflow.pgm", {"PNM", "JPEG, PNG and BMP"}},
      {"png_empty_idat_null_offset.png", {"PNG"}},
      {"bomb_sof_10000.jpg", {"10000x10000", "40 megapixels", "--max-megapixels"}},
      {"bomb_valid_10000.png", {"10000x10000", "40 megapixels", "--max-megapixels"}},
  };
  for (const auto& [file, needles] : cases) {
    SCOPED_TRACE(file);
    const fs::path p = dir / file;
    ASSERT_TRUE(fs::exists(p)) << p;
    const auto t0 = std::chrono::steady_clock::now();
    std::string what;
    try {
      load_image(p.string());
    } catch (const Error& e) {
      what = e.what();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(what.empty()) << "decoded without an error";
    EXPECT_NE(what.find(file), std::string::npos) << what;
    for (const std::string& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << n << "' not in: " << what;
    EXPECT_LT(s, 1.0) << what;
    EXPECT_THROW(load_mask(p.string()), Error);
  }
}

TEST(ImageDecode, BombDecodesOnlyWhenTheBudgetIsRaised) {
  const fs::path p = fs::path(GLIMPSE_SOURCE_DIR) / ".." / "shared" / "reliability" / "bomb_sof_10000.jpg";
  if (!fs::exists(p)) GTEST_SKIP() << "no " << p;
  BudgetGuard guard;
  set_max_image_pixels(100'000'000);
  // Declared 10000 x 10000 but only 6.8 KB: past the budget it is a truncated JPEG, never grey pixels.
  std::string what;
  try {
    load_image(p.string());
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("bomb_sof_10000.jpg"), std::string::npos) << what;
  EXPECT_EQ(what.find("megapixels"), std::string::npos) << what;
}

// ---- formats by magic bytes ----------------------------------------------------------------------

TEST(ImageDecode, PngRoundTripRgbAndGreyReplicated) {
  const int w = 23, h = 17;
  const auto rgb = picture(w, h, 3);
  const Image a = decode_image(bytes_of(stb_png(rgb, w, h, 3)), stb_png(rgb, w, h, 3).size(), "rgb.png");
  EXPECT_EQ(a.width, w);
  EXPECT_EQ(a.height, h);
  EXPECT_EQ(a.channels, 3);
  EXPECT_EQ(a.pixels, rgb);

  const auto grey = picture(w, h, 1);
  const std::string g = stb_png(grey, w, h, 1);
  const Image b = decode_image(bytes_of(g), g.size(), "grey.png");
  ASSERT_EQ(b.channels, 3);
  for (int i = 0; i < w * h; ++i)
    for (int k = 0; k < 3; ++k) ASSERT_EQ(b.pixels[static_cast<size_t>(3 * i + k)], grey[static_cast<size_t>(i)]);
  const Image b1 = decode_image(bytes_of(g), g.size(), "grey.png", 1);
  EXPECT_EQ(b1.pixels, grey);

  // RGBA: alpha dropped, as stb_image does.
  const auto rgba = picture(w, h, 4);
  const std::string s4 = stb_png(rgba, w, h, 4);
  const Image c = decode_image(bytes_of(s4), s4.size(), "rgba.png");
  for (int i = 0; i < w * h; ++i)
    for (int k = 0; k < 3; ++k)
      ASSERT_EQ(c.pixels[static_cast<size_t>(3 * i + k)], rgba[static_cast<size_t>(4 * i + k)]);
}

TEST(ImageDecode, GreyFromRgbUsesStbLuminance) {
  const int w = 9, h = 5;
  const auto rgb = picture(w, h, 3);
  const std::string s = stb_png(rgb, w, h, 3);
  const Image g = decode_image(bytes_of(s), s.size(), "rgb.png", 1);
  ASSERT_EQ(g.channels, 1);
  int sw = 0, sh = 0, sn = 0;
  unsigned char* ref = stbi_load_from_memory(bytes_of(s), static_cast<int>(s.size()), &sw, &sh, &sn, 1);
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(g.pixels, std::vector<uint8_t>(ref, ref + w * h));
  stbi_image_free(ref);
  for (int i = 0; i < w * h; ++i) {
    const uint8_t* p = rgb.data() + 3 * i;
    ASSERT_EQ(g.pixels[static_cast<size_t>(i)], (p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8);
  }
}

TEST(ImageDecode, Png16BitKeepsTheHighByte) {
  const int w = 7, h = 4;
  std::vector<uint8_t> rows(static_cast<size_t>(w * h * 3 * 2));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<uint8_t>(i * 37 + 11);
  const std::string s = libpng_write(w, h, PNG_COLOR_TYPE_RGB, 16, rows);
  const Image im = decode_image(bytes_of(s), s.size(), "deep.png");
  ASSERT_EQ(im.pixels.size(), static_cast<size_t>(w * h * 3));
  for (size_t i = 0; i < im.pixels.size(); ++i) ASSERT_EQ(im.pixels[i], rows[2 * i]) << i;
  // The same bytes through stb (trusted input here): the same pixels.
  int sw = 0, sh = 0, sn = 0;
  unsigned char* ref = stbi_load_from_memory(bytes_of(s), static_cast<int>(s.size()), &sw, &sh, &sn, 3);
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(im.pixels, std::vector<uint8_t>(ref, ref + w * h * 3));
  stbi_image_free(ref);
}

TEST(ImageDecode, PalettePngWithTransparencyAndLowBitGrey) {
  const int w = 8, h = 3;
  const std::vector<png_color> pal = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
  std::vector<uint8_t> idx(static_cast<size_t>(w * h));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<uint8_t>(i % 4);
  const std::string s = libpng_write(w, h, PNG_COLOR_TYPE_PALETTE, 8, idx, false, pal, {0, 128, 255, 255});
  const Image im = decode_image(bytes_of(s), s.size(), "palette.png");
  for (size_t i = 0; i < idx.size(); ++i) {
    const png_color& c = pal[idx[i]];
    ASSERT_EQ(im.pixels[3 * i], c.red);
    ASSERT_EQ(im.pixels[3 * i + 1], c.green);
    ASSERT_EQ(im.pixels[3 * i + 2], c.blue);
  }
  // 1-bit grey (a typical mask): 0 -> 0, 1 -> 255.
  std::vector<uint8_t> bits(static_cast<size_t>(h), 0);  // w = 8: one byte per row
  bits[0] = 0xF0;
  bits[1] = 0x0F;
  bits[2] = 0xAA;
  const std::string b = libpng_write(w, h, PNG_COLOR_TYPE_GRAY, 1, bits);
  const Image g = decode_image(bytes_of(b), b.size(), "mask.png", 1);
  ASSERT_EQ(g.pixels.size(), static_cast<size_t>(w * h));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      ASSERT_EQ(g.pixels[static_cast<size_t>(y * w + x)], ((bits[static_cast<size_t>(y)] >> (7 - x)) & 1) ? 255 : 0);
}

TEST(ImageDecode, InterlacedPngEqualsPlain) {
  const int w = 19, h = 13;
  const auto rgb = picture(w, h, 3);
  const std::string plain = libpng_write(w, h, PNG_COLOR_TYPE_RGB, 8, rgb);
  const std::string adam7 = libpng_write(w, h, PNG_COLOR_TYPE_RGB, 8, rgb, true);
  EXPECT_EQ(decode_image(bytes_of(plain), plain.size(), "plain.png").pixels, rgb);
  EXPECT_EQ(decode_image(bytes_of(adam7), adam7.size(), "adam7.png").pixels, rgb);
}

TEST(ImageDecode, JpegRoundTripCloseToTheOriginalAndToStb) {
  const int w = 48, h = 40;
  const auto rgb = picture(w, h, 3);
  const std::string s = stb_jpeg(rgb, w, h, 3, 100);
  const Image im = decode_image(bytes_of(s), s.size(), "photo.jpg");
  ASSERT_EQ(im.width, w);
  ASSERT_EQ(im.height, h);
  int sw = 0, sh = 0, sn = 0;
  unsigned char* ref = stbi_load_from_memory(bytes_of(s), static_cast<int>(s.size()), &sw, &sh, &sn, 3);
  ASSERT_NE(ref, nullptr);
  // libjpeg-turbo's IDCT and upsampling against stb's approximation of them: a few levels at most.
  EXPECT_LE(max_abs_diff(im.pixels, std::vector<uint8_t>(ref, ref + w * h * 3)), 4);
  stbi_image_free(ref);
  double err = 0;
  for (size_t i = 0; i < rgb.size(); ++i) err += std::abs(int(rgb[i]) - int(im.pixels[i]));
  EXPECT_LT(err / static_cast<double>(rgb.size()), 8.0);

  // Grey JPEG -> RGB replicated.
  const auto grey = picture(w, h, 1);
  const std::string g = stb_jpeg(grey, w, h, 1, 100);
  const Image gi = decode_image(bytes_of(g), g.size(), "grey.jpg");
  for (int i = 0; i < w * h; ++i) {
    ASSERT_EQ(gi.pixels[static_cast<size_t>(3 * i)], gi.pixels[static_cast<size_t>(3 * i + 1)]);
    ASSERT_EQ(gi.pixels[static_cast<size_t>(3 * i)], gi.pixels[static_cast<size_t>(3 * i + 2)]);
  }
  EXPECT_EQ(decode_image(bytes_of(g), g.size(), "grey.jpg", 1).pixels.size(), static_cast<size_t>(w * h));
}

TEST(ImageDecode, BmpRoundTrip) {
  const int w = 13, h = 6;  // odd width: row padding
  const auto rgb = picture(w, h, 3);
  const std::string s = stb_bmp(rgb, w, h, 3);
  const Image im = decode_image(bytes_of(s), s.size(), "scan.bmp");
  EXPECT_EQ(im.width, w);
  EXPECT_EQ(im.height, h);
  EXPECT_EQ(im.pixels, rgb);
}

// Found by fuzz_image: stb 2.27 reads the compression field into an int, so a value >= 2^31 is
// negative, passes its "RLE or >= 4: unsupported" test and is read as uncompressed pixels: a 246-byte
// file declaring compression 3553874899 decoded as a 3081 x 256 image of zeros.
TEST(ImageDecode, BmpWithACompressionStbCannotReadIsRefused) {
  const int w = 13, h = 6;
  const auto rgb = picture(w, h, 3);
  for (uint32_t compression : {1u, 2u, 4u, 5u, 2147483648u, 3553874899u}) {
    std::string s = stb_bmp(rgb, w, h, 3);
    for (int i = 0; i < 4; ++i) s[30 + i] = static_cast<char>((compression >> (8 * i)) & 0xff);
    const std::string what = decode_error(s, "scan.bmp");
    EXPECT_NE(what.find("scan.bmp"), std::string::npos) << what;
    if (compression >= 2147483648u) {  // stb's own header check lets these through; ours names them
      EXPECT_NE(what.find("compression " + std::to_string(compression)), std::string::npos) << what;
    }
  }
}

TEST(ImageDecode, FormatFromMagicBytesNotTheName) {
  const fs::path dir = temp_dir("magic");
  const int w = 16, h = 8;
  const std::string jpeg = stb_jpeg(picture(w, h, 3), w, h, 3);
  { std::ofstream(dir / "photo.png", std::ios::binary) << jpeg; }
  const Image im = load_image((dir / "photo.png").string());
  EXPECT_EQ(im.width, w);
  EXPECT_EQ(im.height, h);

  const std::string gif = std::string("GIF89a\x10\x00\x08\x00\x80\x00\x00", 13) + std::string(40, '\0');
  std::string what = decode_error(gif, "cat.jpg");
  EXPECT_NE(what.find("cat.jpg"), std::string::npos) << what;
  EXPECT_NE(what.find("GIF"), std::string::npos) << what;
  EXPECT_NE(what.find("JPEG, PNG and BMP"), std::string::npos) << what;

  for (const auto& [magic, name] :
       std::vector<std::pair<std::string, std::string>>{{std::string("II*\0", 4), "TIFF"},
                                                        {std::string("RIFF\x10\0\0\0WEBPVP8 ", 16), "WebP"},
                                                        {"P6\n2 2\n255\n", "PNM"},
                                                        {"P5\n2 2\n65535\n", "PNM"},
                                                        {std::string("8BPS\0\1", 6), "PSD"},
                                                        {"#?RADIANCE\n", "HDR"}}) {
    what = decode_error(magic + std::string(32, '\x01'), "x.png");
    EXPECT_NE(what.find(name), std::string::npos) << what;
    EXPECT_NE(what.find("x.png"), std::string::npos) << what;
  }
  what = decode_error(std::string(64, '\x42'), "noise.jpg");
  EXPECT_NE(what.find("unknown format"), std::string::npos) << what;
  what = decode_error("", "empty.png");
  EXPECT_NE(what.find("empty"), std::string::npos) << what;
  fs::remove_all(dir);
}

TEST(ImageDecode, TruncatedFilesRefused) {
  const int w = 64, h = 48;
  const auto rgb = picture(w, h, 3);
  const std::string jpeg = stb_jpeg(rgb, w, h, 3);
  const std::string png = stb_png(rgb, w, h, 3);
  for (size_t cut : {size_t(4), size_t(40), jpeg.size() / 2, jpeg.size() - 40}) {
    const std::string what = decode_error(jpeg.substr(0, cut), "cut.jpg");
    EXPECT_NE(what.find("cut.jpg"), std::string::npos) << cut << ": " << what;
    EXPECT_NE(what.find("JPEG"), std::string::npos) << cut << ": " << what;
  }
  for (size_t cut : {size_t(8), size_t(30), png.size() / 2, png.size() - 1}) {
    const std::string what = decode_error(png.substr(0, cut), "cut.png");
    EXPECT_NE(what.find("cut.png"), std::string::npos) << cut << ": " << what;
    EXPECT_NE(what.find("PNG"), std::string::npos) << cut << ": " << what;
  }
  // Corrupt entropy data: an error, never grey pixels.
  std::string bad = jpeg;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i) bad[i] = '\xFF';
  EXPECT_FALSE(decode_error(bad, "bad.jpg").empty());
  const std::string bmp = stb_bmp(rgb, w, h, 3);
  EXPECT_FALSE(decode_error(bmp.substr(0, bmp.size() / 2), "cut.bmp").empty());
}

// ---- limits ----------------------------------------------------------------------------------------

TEST(ImageDecode, PixelBudgetHonouredBeforeDecodingAndRaisable) {
  BudgetGuard guard;
  EXPECT_EQ(max_image_pixels(), kDefaultMaxImagePixels);
  const int w = 30, h = 20;
  const auto rgb = picture(w, h, 3);
  const std::vector<std::pair<std::string, std::string>> files = {
      {stb_png(rgb, w, h, 3), "a.png"}, {stb_jpeg(rgb, w, h, 3), "a.jpg"}, {stb_bmp(rgb, w, h, 3), "a.bmp"}};
  set_max_image_pixels(599);
  for (const auto& [bytes, name] : files) {
    const std::string what = decode_error(bytes, name);
    EXPECT_NE(what.find(name), std::string::npos) << what;
    EXPECT_NE(what.find("30x20"), std::string::npos) << what;
    EXPECT_NE(what.find("--max-megapixels"), std::string::npos) << what;
  }
  set_max_image_pixels(600);
  for (const auto& [bytes, name] : files) EXPECT_EQ(decode_error(bytes, name), "") << name;
  EXPECT_THROW(set_max_image_pixels(0), Error);
  EXPECT_THROW(set_max_image_pixels(kMaxImagePixelsLimit + 1), Error);
}

TEST(ImageDecode, ImageAndMaskSizesChecked) {
  EXPECT_THROW(Image(int64_t(1) << 40, int64_t(1) << 40, 3), Error);
  EXPECT_THROW(Image(int64_t(4294967296), 4294967296, 3), Error);
  EXPECT_THROW(Image(0, 5), Error);
  EXPECT_THROW(Image(5, -1), Error);
  EXPECT_THROW(Image(5, 5, 5), Error);
  EXPECT_THROW(Mask(int64_t(1) << 31, int64_t(1) << 31), Error);
  EXPECT_THROW(Mask(0, 1), Error);
  const Image im(4, 3, 3, 7);
  EXPECT_THROW(resize_image(im, 0, 3), Error);
  EXPECT_THROW(resize_image(im, kMaxImageSide + 1, 3), Error);
  const Mask m(4, 3, 1);
  EXPECT_THROW(resize_mask(m, 3, int64_t(1) << 40), Error);
  EXPECT_EQ(resize_mask(m, 2, 2).count(), 4);
}

// ---- files -----------------------------------------------------------------------------------------

TEST(ImageDecode, LoadAndSaveThroughFiles) {
  const fs::path dir = temp_dir("files");
  const Image im(11, 7, 3, 200);
  save_png((dir / "a.png").string(), im);
  EXPECT_EQ(load_image((dir / "a.png").string()).pixels, im.pixels);
  std::string what;
  try {
    load_image((dir / "missing.png").string());
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("missing.png"), std::string::npos) << what;

  // A full disk: an error, the old file intact, no temporary left.
  io::detail::set_write_fail_after_bytes(10);
  EXPECT_THROW(save_png((dir / "a.png").string(), Image(11, 7, 3, 5)), Error);
  io::detail::set_write_fail_after_bytes(-1);
  EXPECT_EQ(load_image((dir / "a.png").string()).pixels, im.pixels);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1);
  fs::remove_all(dir);
}

// ---- bounded preprocessing (data/working_size.cpp) ---------------------------------------------------

TEST(ImageDecode, HugeImagesShrunkBeforePreprocessingSmallOnesUntouched) {
  EXPECT_EQ(data::detail::working_side(64), 512);
  EXPECT_EQ(data::detail::working_side(384), 768);
  const Image small(256, 256, 3, 9);
  EXPECT_EQ(data::detail::shrink_to_working_size(small, 64).pixels, small.pixels);
  Mask mask(2000, 1000, 1);
  const Image big = data::detail::shrink_to_working_size(Image(2000, 1000, 3, 50), 64, &mask);
  EXPECT_EQ(big.width, 512);
  EXPECT_EQ(big.height, 256);
  EXPECT_EQ(mask.width, 512);
  EXPECT_EQ(mask.height, 256);
  EXPECT_EQ(big.pixels[0], 50);

  // A 12-megapixel photo with hair removal and colour constancy: bounded by the working size.
  const fs::path dir = temp_dir("preprocess");
  const int w = 4000, h = 3000;
  const std::string png = stb_png(picture(w, h, 3), w, h, 3);
  { std::ofstream(dir / "big.png", std::ios::binary) << png; }
  data::Preprocess pre;
  pre.hair_removal = true;
  pre.color_constancy = true;
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor x = data::load_for_model((dir / "big.png").string(), 64, pre);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(x.shape(), (Shape{1, 3, 64, 64}));
  EXPECT_LT(s, 10.0);  // about 0.3 s in Release; over a minute before the working size
  fs::remove_all(dir);
}
