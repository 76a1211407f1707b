// Checked reading of the JSON files the app reads back (training curves, eval/localize/two-stage/roar
// results). Those files may come from anyone -- an older glimpse, a hand edit, a truncated copy -- so
// nothing here dereferences a key that is not there or converts a value of the wrong type:
// nlohmann's operator[] on a const object with a missing key is undefined behaviour, and get<int>()
// of 1e300 is an out-of-range float-to-int conversion (UB again). Every fault is a glimpse::Error
// naming the file, the key path ("rows[3].metrics.auc_mean") and what was found, with a hint.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mel {

class JsonIn {
 public:
  // `file` names the file in errors; `hint` ends them (e.g. "expected `melanoma roar --json` output").
  JsonIn(const nlohmann::json& j, std::string file, std::string hint = "", std::string where = "");

  const nlohmann::json& raw() const { return *j_; }
  const std::string& where() const { return where_; }
  const std::string& file() const { return file_; }
  [[noreturn]] void fail(const std::string& fault) const;

  // ---- objects ----
  void expect_object() const;
  // Present and not null.
  bool has(const char* key) const;
  // Required member: an Error when this is not an object or the key is absent.
  JsonIn at(const char* key) const;

  // ---- arrays ----
  // The elements of an array (an Error for any other type).
  std::vector<JsonIn> items() const;

  // ---- scalars (this value) ----
  double number() const;                          // any JSON number
  int64_t integer(int64_t lo, int64_t hi) const;  // an integral number in [lo, hi]
  std::string string() const;
  bool boolean() const;

  // ---- optional members: absent (or null) gives the default; present with another type is an Error ----
  double number(const char* key, double dflt) const;
  // NaN when absent or null (the app writes null for an undefined AUC).
  double number_or_nan(const char* key) const { return number(key, std::numeric_limits<double>::quiet_NaN()); }
  int64_t integer(const char* key, int64_t dflt, int64_t lo, int64_t hi) const;
  std::string string(const char* key, const std::string& dflt) const;
  bool boolean(const char* key, bool dflt) const;

 private:
  JsonIn child(const nlohmann::json& j, const std::string& where) const;
  const nlohmann::json* j_;
  std::string file_, hint_, where_;
};

// The JSON type of a value in words ("a string", "an array of 3", ...), for error messages.
std::string json_kind(const nlohmann::json& j);

// Fails when `text` nests arrays/objects deeper than max_depth (nlohmann parses iteratively, but a
// file of a few MiB of '[' still builds millions of nested values); strings are skipped correctly.
void check_json_depth(const std::string& text, const std::string& file, int max_depth = 64);

}  // namespace mel
