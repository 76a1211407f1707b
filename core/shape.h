// Shapes and strides: small vectors of int64, printed as [N, C, H, W].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

}  // namespace glimpse
