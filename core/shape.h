// Shapes and strides: small vectors of int64, printed as [N, C, H, W].
//
// The rule every shape obeys (checked wherever a size is computed, so that no shape read from a
// file can make a size or a stride wrap around): every dimension is >= 0, and the product of
// max(d, 1) over all dimensions fits in int64. The max(d, 1) matters: [0, 2^62, 4] has no elements,
// but its strides (16 * 2^60 ...) would still overflow; so it is refused, not just its element count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace glimpse {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
// "" when `s` obeys the rule above, else what is wrong with it (names the shape).
std::string shape_fault(const Shape& s);
// Throws an Error "<context>: <shape_fault>" when `s` breaks the rule.
void check_shape(const Shape& s, const std::string& context);
// Element count; an Error (naming the shape) when the shape breaks the rule.
int64_t shape_numel(const Shape& s);
// Row-major strides; an Error (naming the shape) when the shape breaks the rule.
Shape contiguous_strides(const Shape& s);

}  // namespace glimpse
