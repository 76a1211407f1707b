#include "core/ops/shape.h"

#include <algorithm>

#include "core/ops/reduce.h"

namespace glimpse::cpu {
namespace {

// rows rows of `width` floats, from src (rows `src_stride` apart) to dst (rows `dst_stride` apart).
void copy_rows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * src_stride, src + r * src_stride + width, dst + r * dst_stride);
}

// x's plane count and size as pad2d sees them ([planes, H, W]; an empty plane counts no planes).
struct Planes {
  int64_t planes, H, W;
};
Planes planes_of(const Tensor& t) {
  const int64_t H = t.size(-2), W = t.size(-1);
  return {t.numel() / std::max<int64_t>(H * W, 1), H, W};
}

}  // namespace

// x [outer, len, inner] is a block of the rows of out [outer, total, inner]: one row copy per a.
void concat_forward(Tensor& out, const Tensor& x, int64_t dim, int64_t at) {
  const DimSplit s = split_at(x.shape(), dim, "concat");
  const int64_t total = out.size(dim);
  copy_rows(out.data() + at * s.inner, total * s.inner, x.data(), s.len * s.inner, s.outer, s.len * s.inner);
}

void concat_backward(Tensor& gx, const Tensor& gout, int64_t dim, int64_t at) {
  const DimSplit s = split_at(gx.shape(), dim, "concat");
  const int64_t total = gout.size(dim);
  copy_rows(gx.data(), s.len * s.inner, gout.data() + at * s.inner, total * s.inner, s.outer, s.len * s.inner);
}

void pad2d_forward(Tensor& out, const Tensor& x, int64_t top, int64_t left, float value) {
  const auto [planes, H, W] = planes_of(x);
  const int64_t OH = out.size(-2), OW = out.size(-1);
  float* o = out.data();
  std::fill(o, o + out.numel(), value);
  for (int64_t p = 0; p < planes; ++p)
    copy_rows(o + (p * OH + top) * OW + left, OW, x.data() + p * H * W, W, H, W);
}

void pad2d_backward(Tensor& gx, const Tensor& gout, int64_t top, int64_t left) {
  const auto [planes, H, W] = planes_of(gx);
  const int64_t OH = gout.size(-2), OW = gout.size(-1);
  for (int64_t p = 0; p < planes; ++p)
    copy_rows(gx.data() + p * H * W, W, gout.data() + (p * OH + top) * OW + left, OW, H, W);
}

}  // namespace glimpse::cpu
