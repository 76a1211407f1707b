#include "core/shape.h"

#include "core/error.h"

namespace glimpse {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::string shape_fault(const Shape& s) {
  int64_t span = 1;  // product of max(d, 1): bounds every stride and the element count
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] < 0) return "shape " + shape_str(s) + " has a negative dimension (dim " + std::to_string(i) + ")";
    if (__builtin_mul_overflow(span, s[i] > 0 ? s[i] : int64_t{1}, &span)) {
      return "shape " + shape_str(s) +
             " is too large: the product of its dimensions (zeros counted as 1, since the strides still "
             "multiply them) exceeds 2^63 - 1";
    }
  }
  return "";
}

void check_shape(const Shape& s, const std::string& context) {
  std::string fault = shape_fault(s);
  if (!fault.empty()) GLIMPSE_FAIL(context, context.empty() ? "" : ": ", fault);
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  bool zero = false;
  for (auto d : s) {
    // The fast path of a valid shape; any doubt goes to shape_fault for the full rule and message.
    if (d < 0 || __builtin_mul_overflow(n, d > 0 ? d : int64_t{1}, &n)) check_shape(s, "shape_numel");
    zero = zero || d == 0;
  }
  return zero ? 0 : n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    // Zero dims count as 1: a stride is never 0 and the strides of [0, 2^62, 4] cannot wrap.
    if (s[i] < 0 || __builtin_mul_overflow(acc, s[i] > 0 ? s[i] : int64_t{1}, &acc))
      check_shape(s, "contiguous_strides");
  }
  return st;
}

}  // namespace glimpse
