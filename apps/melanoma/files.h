// Files the app writes and reads: JSON, text and CSV fields (atomically written), PNG bytes and
// base64, and small formatting and timing helpers.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/io/image.h"
#include "core/tensor.h"

namespace mel {

using glimpse::Tensor;

void write_json(const std::string& path, const nlohmann::json& j);
nlohmann::json read_json(const std::string& path);
void write_text(const std::string& path, const std::string& text);
// One CSV field as data/dataset.cpp reads it back: quoted (with "" for ") when it holds a comma,
// a quote, a line break or edge spaces.
std::string csv_field(const std::string& s);
void ensure_dir(const std::string& dir);
// Path with its extension replaced: ("a/b.safetensors", ".curve.json") -> "a/b.curve.json".
std::string sibling(const std::string& path, const std::string& suffix);
// PNG bytes of an image (encoded in memory), and the same in base64 (for inline
// <img src="data:image/png;base64,...">).
std::string png_bytes(const glimpse::io::Image& image);
std::string png_base64(const glimpse::io::Image& image);

// A model input [1, 3, S, S] (normalized as the loader does) -> a displayable RGB image.
glimpse::io::Image display_image(const Tensor& input);
// The printf of std::string.
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Seconds since `start` (steady clock).
double seconds_since(double start);
double now_s();

}  // namespace mel
