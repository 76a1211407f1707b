// decode_image: image bytes from anywhere (a dataset off the internet, an upload) -> Image, memory-safe
// on any input. See core/io/image.h for the contract.
//
// Why three libraries: Debian's stb_image is 2.27, whose JPEG Huffman-table builder writes past its
// table on a crafted DHT segment and whose PNM path reads past its buffer on 16-bit files
// (../shared/reliability). JPEG and PNG, the formats photos and masks come in, go through
// libjpeg-turbo and libpng instead: the decoders every browser and OS uses, fuzzed continuously by
// OSS-Fuzz and kept patched by Debian. stb stays for BMP only (its BMP reader is small and checks its
// sizes), reached only after the magic bytes said "BM", so no other stb decoder ever sees our input.
//
// Order, for every format: magic bytes -> header -> declared size checked against the pixel budget
// (set_max_image_pixels) -> only then are pixels decoded. A file's extension is never trusted.
//
// libjpeg and libpng report errors by longjmp. A longjmp across a frame that owns C++ objects with
// destructors is undefined behaviour, so the code that can longjmp lives in small C-style functions
// (jpeg_*_c, png_*_c below) whose frames hold only plain data; everything they need (the output
// buffer, the row pointers) is allocated by their C++ callers before the call.
#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // before jpeglib.h, which uses size_t and FILE without including their headers
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <stb_image.h>

#include "core/error.h"
#include "core/io/image.h"

namespace glimpse::io {

namespace {

std::atomic<int64_t> g_max_pixels{kDefaultMaxImagePixels};

constexpr char kFormats[] = "the app reads JPEG, PNG and BMP";

// More scans than any real progressive JPEG has (they have about 10); a crafted file with thousands
// of tiny scans makes libjpeg redo its work for each one (minutes). libjpeg-turbo's own TurboJPEG
// API limits scans to 500 for the same reason (TJFLAG_LIMITSCANS).
constexpr int kMaxJpegScans = 500;

// Ancillary PNG chunks (iCCP, zTXt, ...) are decompressed into memory; no real one needs 8 MiB.
constexpr png_alloc_size_t kMaxPngChunkBytes = png_alloc_size_t(8) << 20;

enum class Format { jpeg, png, bmp };

bool starts_with(const uint8_t* data, size_t size, const char* magic, size_t n) {
  return size >= n && std::memcmp(data, magic, n) == 0;
}

// The format from the first bytes; any other recognisable format is refused by name.
Format sniff(const uint8_t* d, size_t n, const std::string& name) {
  GLIMPSE_CHECK(n > 0, "cannot read image '", name, "': the file is empty (", kFormats, ")");
  if (starts_with(d, n, "\xFF\xD8\xFF", 3)) return Format::jpeg;
  if (starts_with(d, n, "\x89PNG\r\n\x1A\n", 8)) return Format::png;
  if (starts_with(d, n, "BM", 2)) return Format::bmp;
  const char* what = nullptr;
  if (starts_with(d, n, "GIF87a", 6) || starts_with(d, n, "GIF89a", 6))
    what = "a GIF";
  else if (starts_with(d, n, "II*\0", 4) || starts_with(d, n, "MM\0*", 4))
    what = "a TIFF";
  else if (n >= 12 && starts_with(d, n, "RIFF", 4) && std::memcmp(d + 8, "WEBP", 4) == 0)
    what = "a WebP";
  else if (n >= 2 && d[0] == 'P' && ((d[1] >= '1' && d[1] <= '7') || d[1] == 'F' || d[1] == 'f'))
    what = "a PNM (PBM/PGM/PPM/PAM/PFM)";
  else if (starts_with(d, n, "8BPS", 4))
    what = "a Photoshop (PSD)";
  else if (starts_with(d, n, "#?RADIANCE", 10) || starts_with(d, n, "#?RGBE", 6))
    what = "a Radiance HDR";
  else if (starts_with(d, n, "\x00\x00\x00\x0CjP  ", 8) || starts_with(d, n, "\xFF\x4F\xFF\x51", 4))
    what = "a JPEG 2000";
  else if (starts_with(d, n, "\xFF\x0A", 2) || starts_with(d, n, "\x00\x00\x00\x0CJXL ", 8))
    what = "a JPEG XL";
  else if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0)
    what = "a HEIF/AVIF (or other ISO media)";
  else if (starts_with(d, n, "qoif", 4))
    what = "a QOI";
  else if (starts_with(d, n, "\x00\x00\x01\x00", 4))
    what = "an ICO";
  else if (starts_with(d, n, "S\x80\xF6\x34", 4))
    what = "a Softimage PIC";
  else if (starts_with(d, n, "%PDF", 4))
    what = "a PDF";
  if (what)
    GLIMPSE_FAIL("cannot read image '", name, "': it is ", what, " file; ", kFormats,
                 " (convert it, e.g. `convert in out.png` with ImageMagick)");
  GLIMPSE_FAIL("cannot read image '", name, "': unknown format (the first bytes are not those of a JPEG, PNG or BMP; ",
               kFormats, ")");
}

// The declared size against the side cap and the pixel budget, before any pixel is decoded.
void check_declared_size(int64_t w, int64_t h, const std::string& name, const char* format) {
  GLIMPSE_CHECK(w > 0 && h > 0, "cannot read image '", name, "': its ", format, " header declares ", w, "x", h,
                " pixels (corrupt file)");
  GLIMPSE_CHECK(w <= kMaxImageSide && h <= kMaxImageSide, "cannot read image '", name, "': its ", format,
                " header declares ", w, "x", h, " pixels; glimpse reads sides up to ", kMaxImageSide, " pixels");
  const int64_t limit = max_image_pixels();
  if (w * h > limit) {
    char mp[64], lim[64];
    std::snprintf(mp, sizeof mp, "%.1f", static_cast<double>(w * h) / 1e6);
    std::snprintf(lim, sizeof lim, "%g", static_cast<double>(limit) / 1e6);
    GLIMPSE_FAIL("cannot read image '", name, "': its ", format, " header declares ", w, "x", h, " pixels (", mp,
                 " megapixels), over the limit of ", lim,
                 " megapixels; if the image is genuine, raise the limit "
                 "with --max-megapixels (io::set_max_image_pixels in code)");
  }
}

// The output buffer, allocated by C++ before the C-style decoding step.
std::vector<uint8_t> allocate_pixels(int64_t w, int64_t h, int64_t c, const std::string& name) {
  try {
    return std::vector<uint8_t>(static_cast<size_t>(w * h * c));
  } catch (const std::bad_alloc&) {
    GLIMPSE_FAIL("cannot read image '", name, "': out of memory for its ", w, "x", h, "x", c,
                 " pixels (lower --max-megapixels or free memory)");
  }
}

// RGB -> grey as stb_image computes it, so masks read from RGB files keep their values.
void rgb_to_grey(const uint8_t* rgb, uint8_t* grey, int64_t pixels) {
  for (int64_t i = 0; i < pixels; ++i)
    grey[i] = static_cast<uint8_t>((rgb[3 * i] * 77 + rgb[3 * i + 1] * 150 + rgb[3 * i + 2] * 29) >> 8);
}

// ---------------------------------------------------------------------------------------------------
// JPEG (libjpeg-turbo)

struct JpegError {
  jpeg_error_mgr pub;  // first: libjpeg hands us a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

struct JpegCtx {
  jpeg_decompress_struct cinfo;
  JpegError err;
  jpeg_progress_mgr progress;
  bool created = false;
  int channels = 3;        // wanted by the caller
  bool cmyk = false;       // decoded as CMYK, converted to RGB afterwards
  int out_components = 0;  // components libjpeg writes per pixel
};

[[noreturn]] void jpeg_error_exit(j_common_ptr cinfo) {
  JpegError* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// libjpeg only warns on corrupt entropy data (a truncated photo, a bad Huffman code) and goes on,
// filling what it could not decode with grey: a photo that is half grey would be classified and
// explained without a word. Such warnings are errors here. Kept as warnings: those about metadata
// only (an unknown JFIF revision or Adobe transform code, a bad ICC marker -- the pixels are intact),
// and stray bytes between segments (skipped whole; common in camera files that stb also accepts).
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  switch (cinfo->err->msg_code) {
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
    case JWRN_EXTRANEOUS_DATA:
      return;
    default:
      jpeg_error_exit(cinfo);
  }
}

void jpeg_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxJpegScans) {
    JpegError* e = reinterpret_cast<JpegError*>(cinfo->err);
    std::snprintf(e->message, sizeof e->message, "more than %d scans (a real progressive JPEG has about 10)",
                  kMaxJpegScans);
    std::longjmp(e->jump, 1);
  }
}

// Header only: sets the output colour space for c->channels. False on error (message in c->err).
// Reads only c and its pointees after setjmp (a parameter could be clobbered by the longjmp).
bool jpeg_header_c(JpegCtx* c, const uint8_t* data, size_t size) {
  c->cinfo.err = jpeg_std_error(&c->err.pub);
  c->err.pub.error_exit = jpeg_error_exit;
  c->err.pub.emit_message = jpeg_emit_message;
  c->err.message[0] = '\0';
  if (setjmp(c->err.jump)) return false;
  jpeg_create_decompress(&c->cinfo);
  c->created = true;
  c->progress.progress_monitor = jpeg_progress;
  c->cinfo.progress = &c->progress;
  jpeg_mem_src(&c->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&c->cinfo, TRUE);
  switch (c->cinfo.jpeg_color_space) {
    case JCS_CMYK:
    case JCS_YCCK:
      // libjpeg-turbo 2.1 cannot convert CMYK to RGB: take CMYK and convert as stb does.
      c->cinfo.out_color_space = JCS_CMYK;
      c->cmyk = true;
      c->out_components = 4;
      break;
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
      // Grey from a YCbCr photo is its Y channel, as in stb.
      c->cinfo.out_color_space = c->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
      c->out_components = c->channels == 1 ? 1 : 3;
      break;
    default:
      c->cinfo.out_color_space = JCS_RGB;
      c->out_components = 3;
      break;
  }
  return true;
}

// Pixels into out (output_height rows of width * out_components bytes). False on error.
bool jpeg_pixels_c(JpegCtx* c, uint8_t* out, size_t out_size) {
  if (setjmp(c->err.jump)) return false;
  jpeg_start_decompress(&c->cinfo);
  const size_t stride = static_cast<size_t>(c->cinfo.output_width) * static_cast<size_t>(c->cinfo.output_components);
  if (c->cinfo.output_components != c->out_components ||
      stride * static_cast<size_t>(c->cinfo.output_height) != out_size) {
    std::snprintf(c->err.message, sizeof c->err.message, "unexpected output layout %ux%ux%d", c->cinfo.output_width,
                  c->cinfo.output_height, c->cinfo.output_components);
    return false;
  }
  while (c->cinfo.output_scanline < c->cinfo.output_height) {
    JSAMPROW row = out + stride * c->cinfo.output_scanline;
    if (jpeg_read_scanlines(&c->cinfo, &row, 1) != 1) {
      std::snprintf(c->err.message, sizeof c->err.message, "decoding stopped at row %u of %u", c->cinfo.output_scanline,
                    c->cinfo.output_height);
      return false;
    }
  }
  // No jpeg_finish_decompress: every row is in, and a missing EOI marker after them loses nothing.
  return true;
}

struct JpegGuard {
  JpegCtx* c;
  ~JpegGuard() {
    if (c->created) jpeg_destroy_decompress(&c->cinfo);
  }
};

// stb_image's CMYK -> RGB (Adobe's inverted CMYK, the common case): channel * k / 255, rounded.
uint8_t blinn_8x8(uint8_t x, uint8_t y) {
  const unsigned t = static_cast<unsigned>(x) * y + 128;
  return static_cast<uint8_t>((t + (t >> 8)) >> 8);
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int channels) {
  JpegCtx ctx;
  std::memset(&ctx.cinfo, 0, sizeof ctx.cinfo);
  ctx.channels = channels;
  JpegGuard guard{&ctx};
  if (!jpeg_header_c(&ctx, data, size))
    GLIMPSE_FAIL("cannot read image '", name, "': corrupt JPEG header: ", ctx.err.message);
  const int64_t w = ctx.cinfo.image_width, h = ctx.cinfo.image_height;
  check_declared_size(w, h, name, "JPEG");
  std::vector<uint8_t> raw = allocate_pixels(w, h, ctx.out_components, name);
  if (!jpeg_pixels_c(&ctx, raw.data(), raw.size()))
    GLIMPSE_FAIL("cannot read image '", name, "': corrupt or truncated JPEG data (", w, "x", h, "): ", ctx.err.message);
  Image img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  if (ctx.out_components == channels) {
    img.pixels = std::move(raw);
    return img;
  }
  const int64_t n = w * h;
  std::vector<uint8_t> rgb;
  if (ctx.cmyk) {
    rgb = allocate_pixels(w, h, 3, name);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = raw.data() + 4 * i;
      for (int k = 0; k < 3; ++k) rgb[static_cast<size_t>(3 * i + k)] = blinn_8x8(p[k], p[3]);
    }
  } else {
    rgb = std::move(raw);
  }
  if (channels == 3) {
    img.pixels = std::move(rgb);
  } else {
    img.pixels = allocate_pixels(w, h, 1, name);
    rgb_to_grey(rgb.data(), img.pixels.data(), n);
  }
  return img;
}

// ---------------------------------------------------------------------------------------------------
// PNG (libpng)

struct PngCtx {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  char message[256] = {0};
  png_uint_32 width = 0, height = 0;
  int channels = 3;      // wanted by the caller
  int out_channels = 0;  // after the transforms
};

[[noreturn]] void png_error_fn(png_structp png, png_const_charp msg) {
  PngCtx* c = static_cast<PngCtx*>(png_get_error_ptr(png));
  std::snprintf(c->message, sizeof c->message, "%s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}

// Warnings concern ancillary data (a known-bad sRGB profile, a text chunk's CRC): the pixels are
// intact, and printing them would clutter a training run's log.
void png_warning_fn(png_structp, png_const_charp) {}

void png_read_fn(png_structp png, png_bytep out, size_t length) {
  PngCtx* c = static_cast<PngCtx*>(png_get_io_ptr(png));
  if (length > c->size - c->pos) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(out, c->data + c->pos, length);
  c->pos += length;
}

// Header and transforms to 8-bit grey or RGB without alpha. False on error (message in c).
bool png_header_c(PngCtx* c) {
  c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_error_fn, png_warning_fn);
  if (!c->png) {
    std::snprintf(c->message, sizeof c->message, "libpng could not start (out of memory)");
    return false;
  }
  if (setjmp(png_jmpbuf(c->png))) return false;
  c->info = png_create_info_struct(c->png);
  if (!c->info) png_error(c->png, "out of memory");
  png_set_user_limits(c->png, static_cast<png_uint_32>(kMaxImageSide), static_cast<png_uint_32>(kMaxImageSide));
  png_set_chunk_malloc_max(c->png, kMaxPngChunkBytes);
  png_set_chunk_cache_max(c->png, 1000);  // ancillary chunks kept: sPLT/text bombs
  png_set_read_fn(c->png, c, png_read_fn);
  png_read_info(c->png, c->info);
  c->width = png_get_image_width(c->png, c->info);
  c->height = png_get_image_height(c->png, c->info);
  const int colour = png_get_color_type(c->png, c->info);
  // Palette -> RGB, grey of 1/2/4 bits -> 8 bits (scaled as stb does), tRNS -> alpha (dropped below).
  png_set_expand(c->png);
  png_set_strip_16(c->png);  // the high byte, as stb_image
  png_set_strip_alpha(c->png);
  const bool grey = (colour & PNG_COLOR_MASK_COLOR) == 0;
  if (grey && c->channels == 3) png_set_gray_to_rgb(c->png);
  png_set_interlace_handling(c->png);
  png_read_update_info(c->png, c->info);
  c->out_channels = png_get_channels(c->png, c->info);
  if (png_get_rowbytes(c->png, c->info) != static_cast<size_t>(c->width) * static_cast<size_t>(c->out_channels) ||
      (c->out_channels != 1 && c->out_channels != 3))
    png_error(c->png, "unexpected row layout after the transforms");
  return true;
}

bool png_pixels_c(PngCtx* c, png_bytepp rows) {
  if (setjmp(png_jmpbuf(c->png))) return false;
  png_read_image(c->png, rows);
  png_read_end(c->png, nullptr);  // to IEND: a file cut after its pixel data is still truncated
  return true;
}

struct PngGuard {
  PngCtx* c;
  ~PngGuard() {
    if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : nullptr, nullptr);
  }
};

Image decode_png(const uint8_t* data, size_t size, const std::string& name, int channels) {
  PngCtx ctx;
  ctx.data = data;
  ctx.size = size;
  ctx.channels = channels;
  PngGuard guard{&ctx};
  if (!png_header_c(&ctx)) GLIMPSE_FAIL("cannot read image '", name, "': corrupt PNG header: ", ctx.message);
  const int64_t w = ctx.width, h = ctx.height;
  check_declared_size(w, h, name, "PNG");
  std::vector<uint8_t> raw = allocate_pixels(w, h, ctx.out_channels, name);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = raw.data() + y * w * ctx.out_channels;
  if (!png_pixels_c(&ctx, rows.data()))
    GLIMPSE_FAIL("cannot read image '", name, "': corrupt or truncated PNG data (", w, "x", h, "): ", ctx.message);
  Image img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  if (ctx.out_channels == channels) {
    img.pixels = std::move(raw);
  } else {  // RGB file, grey wanted
    img.pixels = allocate_pixels(w, h, 1, name);
    rgb_to_grey(raw.data(), img.pixels.data(), w * h);
  }
  return img;
}

// ---------------------------------------------------------------------------------------------------
// BMP (stb_image)

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// What stb_image does not check itself, before it decodes: that the BMP is one of the uncompressed
// layouts (the only ones it reads correctly), and that all its pixels are there -- stb reads past
// the end of a BMP as zeros, so a truncated scan would come back with black rows. The pixel data
// must reach offset + |height| rows.
void check_bmp_layout(const uint8_t* d, size_t size, int64_t w, int64_t h, const std::string& name) {
  if (size < 30) return;  // stb refuses it anyway
  const uint32_t header = le32(d + 14);
  const int64_t bpp = header == 12 ? le16(d + 24) : le16(d + 28);
  const uint32_t compression = header >= 40 && size >= 34 ? le32(d + 30) : 0;
  // stb 2.27 reads this field into an int: a value >= 2^31 turns negative, passes its own "RLE, or
  // >= 4: unsupported" test and is read as uncompressed pixels (fuzz_image: a 246-byte file
  // declaring compression 3553874899 came back as a 3081 x 256 image of zeros). Only the
  // uncompressed layouts are accepted.
  GLIMPSE_CHECK(compression == 0 || compression == 3 || compression == 6, "cannot read image '", name,
                "': BMP compression ", compression, " is not supported (uncompressed BMPs only: 0, 3, 6)");
  if (bpp <= 0) return;  // stb refuses it
  const int64_t row = (w * bpp + 31) / 32 * 4;
  // The pixels start at the header's offset, and never inside the headers (a bogus small offset).
  const int64_t start = std::max<int64_t>(le32(d + 10), int64_t(14) + header);
  const int64_t need = start + row * h;
  GLIMPSE_CHECK(static_cast<int64_t>(size) >= need, "cannot read image '", name, "': truncated BMP (", size,
                " bytes; its header's ", w, "x", h, " pixels at ", bpp, " bits need ", need, ")");
}

Image decode_bmp(const uint8_t* data, size_t size, const std::string& name, int channels) {
  GLIMPSE_CHECK(size <= static_cast<size_t>(INT32_MAX), "cannot read image '", name, "': a ", size,
                "-byte BMP is larger than stb_image reads");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &n)) {
    const char* why = stbi_failure_reason();
    GLIMPSE_FAIL("cannot read image '", name, "': corrupt BMP header (", why ? why : "unknown error", ")");
  }
  check_declared_size(w, h, name, "BMP");
  check_bmp_layout(data, size, w, h, name);
  int w2 = 0, h2 = 0;
  std::unique_ptr<unsigned char, StbFree> px(stbi_load_from_memory(data, len, &w2, &h2, &n, channels));
  if (!px) {
    const char* why = stbi_failure_reason();
    GLIMPSE_FAIL("cannot read image '", name, "': corrupt or truncated BMP (", why ? why : "unknown error", ")");
  }
  GLIMPSE_CHECK(w2 == w && h2 == h, "cannot read image '", name, "': BMP header says ", w, "x", h,
                " but its data decoded as ", w2, "x", h2);
  Image img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  img.pixels.assign(px.get(),
                    px.get() + static_cast<size_t>(w) * static_cast<size_t>(h) * static_cast<size_t>(channels));
  return img;
}

}  // namespace

void set_max_image_pixels(int64_t pixels) {
  GLIMPSE_CHECK(pixels >= 1 && pixels <= kMaxImagePixelsLimit, "set_max_image_pixels: ", pixels,
                " pixels; the budget must be in 1..", kMaxImagePixelsLimit);
  g_max_pixels.store(pixels);
}

int64_t max_image_pixels() { return g_max_pixels.load(); }

Image decode_image(const uint8_t* data, size_t size, const std::string& name, int channels) {
  GLIMPSE_CHECK(channels == 1 || channels == 3, "decode_image('", name, "'): channels ", channels,
                " (1 for grey or 3 for RGB)");
  GLIMPSE_CHECK(data != nullptr || size == 0, "decode_image('", name, "'): null data");
  switch (sniff(data, size, name)) {
    case Format::jpeg:
      return decode_jpeg(data, size, name, channels);
    case Format::png:
      return decode_png(data, size, name, channels);
    case Format::bmp:
      return decode_bmp(data, size, name, channels);
  }
  GLIMPSE_FAIL("decode_image: unreachable");
}

}  // namespace glimpse::io
