// Attribution methods by name, as the app's flags take them, and their options at an input size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attribution/attribution.h"

namespace mel {

using glimpse::Tensor;

// "all" -> every method; "a,b,c" -> those, each checked (an unknown name lists the known ones).
std::vector<std::string> parse_methods(const std::string& list);
// "" if `name` is a known method, else the error message listing the known ones.
std::string check_method(const std::string& name);
std::string known_methods();
// Attribution options scaled to the input side: occlusion window S/8 (stride S/16) and the
// sliding-window classifier's window S/2 (stride S/16) -- the library's defaults are for 224 px.
glimpse::attr::Options method_options(int64_t size);
// Methods fast enough to run over a data set in the demo (all but the slowest perturbation ones
// when `fast`).
std::vector<std::string> default_methods(bool fast);

}  // namespace mel
