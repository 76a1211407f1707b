#include "methods.h"

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "data/data.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

std::string known_methods() {
  std::string s;
  for (const auto& m : attr::method_names()) s += (s.empty() ? "" : ", ") + m;
  return s;
}

std::string check_method(const std::string& name) {
  const auto& names = attr::method_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return "";
  return "unknown attribution method '" + name + "'; known methods: " + known_methods();
}

std::vector<std::string> parse_methods(const std::string& list) {
  if (list.empty() || list == "all") return attr::method_names();
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string m; std::getline(ss, m, ',');) {
    m.erase(0, m.find_first_not_of(' '));
    m.erase(m.find_last_not_of(' ') + 1);
    if (m.empty()) continue;
    const std::string err = check_method(m);
    GLIMPSE_CHECK(err.empty(), err);
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  GLIMPSE_CHECK(!out.empty(), "the method list '", list, "' names no method; known methods: ", known_methods());
  return out;
}

attr::Options method_options(int64_t size) {
  attr::Options o;
  o.occlusion_window = std::max<int64_t>(2, size / 8);
  o.occlusion_stride = std::max<int64_t>(1, size / 16);
  o.sliding_window = std::max<int64_t>(4, size / 2);
  o.sliding_stride = std::max<int64_t>(1, size / 16);
  // lrp-composite's z^B bounds: black and white after the loader's normalization.
  for (int c = 0; c < 3; ++c) {
    o.lrp_low.push_back((0.f - glimpse::data::kNormMean[c]) / glimpse::data::kNormStd[c]);
    o.lrp_high.push_back((1.f - glimpse::data::kNormMean[c]) / glimpse::data::kNormStd[c]);
  }
  return o;
}

std::vector<std::string> default_methods(bool fast) {
  if (!fast) return attr::method_names();
  std::vector<std::string> out;
  for (const auto& m : attr::method_names())
    if (m != "sliding-window") out.push_back(m);
  return out;
}

}  // namespace mel
