#include "files.h"

#include <stb_image_write.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "data/data.h"
#include "json_in.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

void ensure_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  GLIMPSE_CHECK(fs::is_directory(dir), "cannot create the directory '", dir, "'", ec ? ": " + ec.message() : "");
}

// Atomic and checked to the last byte (core/io/atomic_file.h): a unique temporary per process and
// write, so two processes writing the same path never share one, and a full disk is an error, never
// a truncated file in place.
void write_text(const std::string& path, const std::string& text) {
  const fs::path p(path);
  if (p.has_parent_path()) ensure_dir(p.parent_path().string());
  io::write_file_atomic(path, text);
}

// Invalid UTF-8 in a string (an image id from someone's CSV) is written as U+FFFD instead of
// throwing nlohmann's type_error.316 after the work is done.
void write_json(const std::string& path, const nlohmann::json& j) {
  write_text(path, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

nlohmann::json read_json(const std::string& path) {
  // Bounded: the largest file the app writes (eval.json with one prediction per image) is a few MiB
  // for tens of thousands of images; anything past this limit is not ours.
  constexpr uint64_t kMaxJsonBytes = uint64_t(64) << 20;
  const std::string text = io::read_file(path, kMaxJsonBytes);
  check_json_depth(text, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // Every nlohmann fault, not only parse_error: a number outside the double range is out_of_range.406.
    GLIMPSE_FAIL("'", path, "' is not valid JSON: ", e.what());
  } catch (const std::bad_alloc&) {
    GLIMPSE_FAIL("'", path, "': out of memory parsing ", text.size(), " bytes of JSON");
  }
}

std::string csv_field(const std::string& s) {
  const bool edge = !s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t');
  if (!edge && s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string sibling(const std::string& path, const std::string& suffix) {
  fs::path p(path);
  p.replace_extension("");
  return p.string() + suffix;
}

namespace {
void append_bytes(void* ctx, void* data, int size) {
  auto* out = static_cast<std::string*>(ctx);
  out->append(static_cast<const char*>(data), static_cast<size_t>(size));
}
std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}
}  // namespace

std::string png_bytes(const io::Image& image) {
  GLIMPSE_CHECK(!image.empty(), "png_bytes: empty image");
  std::string bytes;
  const int ok = stbi_write_png_to_func(append_bytes, &bytes, static_cast<int>(image.width),
                                        static_cast<int>(image.height), static_cast<int>(image.channels),
                                        image.pixels.data(), static_cast<int>(image.width * image.channels));
  GLIMPSE_CHECK(ok, "png_bytes: PNG encoding of a ", image.width, "x", image.height, " image failed");
  return bytes;
}

std::string png_base64(const io::Image& image) { return base64(png_bytes(image)); }

io::Image display_image(const Tensor& input) { return io::tensor_to_image(data::denormalize(input)); }

std::string strf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < static_cast<int>(sizeof buf)) return std::string(buf, static_cast<size_t>(std::max(n, 0)));
  std::string s(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(s.data(), s.size(), fmt, ap);
  va_end(ap);
  s.resize(static_cast<size_t>(n));
  return s;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double seconds_since(double start) { return now_s() - start; }

}  // namespace mel
