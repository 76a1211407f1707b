// Checked JSON reading; see json_in.h.
#include "json_in.h"

#include <cmath>

#include "core/error.h"

namespace mel {

std::string json_kind(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array of " + std::to_string(j.size());
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return j.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "the number " + j.dump();
    default:
      return "a binary value";
  }
}

void check_json_depth(const std::string& text, const std::string& file, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // skip the escaped character (an escaped quote does not end the string)
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      GLIMPSE_CHECK(++depth <= max_depth, "'", file, "': arrays/objects nested deeper than ", max_depth,
                    " levels (at byte ", i, "); no file the app writes nests more than 4");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

JsonIn::JsonIn(const nlohmann::json& j, std::string file, std::string hint, std::string where)
    : j_(&j), file_(std::move(file)), hint_(std::move(hint)), where_(std::move(where)) {}

JsonIn JsonIn::child(const nlohmann::json& j, const std::string& where) const { return JsonIn(j, file_, hint_, where); }

void JsonIn::fail(const std::string& fault) const {
  GLIMPSE_FAIL("'", file_, "': ", where_.empty() ? std::string("the top level") : "key '" + where_ + "'", " ", fault,
               hint_.empty() ? "" : " (" + hint_ + ")");
}

void JsonIn::expect_object() const {
  if (!j_->is_object()) fail("is " + json_kind(*j_) + ", expected an object");
}

bool JsonIn::has(const char* key) const {
  expect_object();
  auto it = j_->find(key);
  return it != j_->end() && !it->is_null();
}

JsonIn JsonIn::at(const char* key) const {
  expect_object();
  const std::string w = where_.empty() ? key : where_ + "." + key;
  auto it = j_->find(key);
  if (it == j_->end()) child(*j_, w).fail("is missing");
  return child(*it, w);
}

std::vector<JsonIn> JsonIn::items() const {
  if (!j_->is_array()) fail("is " + json_kind(*j_) + ", expected an array");
  std::vector<JsonIn> out;
  out.reserve(j_->size());
  size_t i = 0;
  for (const auto& e : *j_) out.push_back(child(e, where_ + "[" + std::to_string(i++) + "]"));
  return out;
}

double JsonIn::number() const {
  if (!j_->is_number()) fail("is " + json_kind(*j_) + ", expected a number");
  return j_->get<double>();
}

int64_t JsonIn::integer(int64_t lo, int64_t hi) const {
  // Through double, range-checked before the conversion: get<int64_t>() of 1e300 would be UB, and
  // every integer the app writes (counts, epochs, percents) is far below 2^53.
  // Bounds within +-2^53 convert to double exactly, so the cast below is always in range.
  GLIMPSE_CHECK(lo >= -(int64_t(1) << 53) && hi <= (int64_t(1) << 53), "JsonIn::integer: bounds beyond 2^53");
  const double d = number();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d))
    fail("is " + j_->dump() + ", expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(d);
}

std::string JsonIn::string() const {
  if (!j_->is_string()) fail("is " + json_kind(*j_) + ", expected a string");
  return j_->get<std::string>();
}

bool JsonIn::boolean() const {
  if (!j_->is_boolean()) fail("is " + json_kind(*j_) + ", expected true or false");
  return j_->get<bool>();
}

double JsonIn::number(const char* key, double dflt) const { return has(key) ? at(key).number() : dflt; }

int64_t JsonIn::integer(const char* key, int64_t dflt, int64_t lo, int64_t hi) const {
  return has(key) ? at(key).integer(lo, hi) : dflt;
}

std::string JsonIn::string(const char* key, const std::string& dflt) const {
  return has(key) ? at(key).string() : dflt;
}

bool JsonIn::boolean(const char* key, bool dflt) const { return has(key) ? at(key).boolean() : dflt; }

}  // namespace mel
