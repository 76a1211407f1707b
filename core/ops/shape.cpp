// Shape operations: CPU kernels, then the differentiable ops (math: core/ops/shape.h).
#include "core/ops/shape.h"

#include <algorithm>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/reduce.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {

// rows rows of `width` floats, from src (rows `src_stride` apart) to dst (rows `dst_stride` apart).
void copy_rows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r)
    std::copy(src + r * src_stride, src + r * src_stride + width, dst + r * dst_stride);
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
  for (int64_t p = 0; p < planes; ++p) copy_rows(o + (p * OH + top) * OW + left, OW, x.data() + p * H * W, W, H, W);
}

void pad2d_backward(Tensor& gx, const Tensor& gout, int64_t top, int64_t left) {
  const auto [planes, H, W] = planes_of(gx);
  const int64_t OH = gout.size(-2), OW = gout.size(-1);
  for (int64_t p = 0; p < planes; ++p)
    copy_rows(gx.data() + p * H * W, W, gout.data() + (p * OH + top) * OW + left, OW, H, W);
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

// A view when x is contiguous (no copy); the gradient is reshaped back.
Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape xs = x.shape();
  Tensor out = x.contiguous().view(shape);
  return record("reshape", out, {x}, [xs](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {g.contiguous().view(xs)};
  });
}

Tensor flatten(const Tensor& x) {
  GLIMPSE_CHECK(x.dim() >= 1, "flatten: needs at least one dimension, got a scalar");
  return reshape(x, {x.size(0), -1});
}

Tensor narrow0(const Tensor& x, int64_t begin, int64_t end) {
  Shape xs = x.shape();
  Tensor out = x.slice(begin, end).clone();
  return record("narrow0", out, {x},
                [xs, begin, end](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  Tensor gx = Tensor::zeros(xs, g.device());
                  Tensor dst = gx.slice(begin, end);
                  dst.copy_from(g);
                  return {gx};
                });
}

// Concatenation along dim: each input is the block [at, at + len_k) of the output along dim
// (kernels: core/ops/shape.h); its gradient is that block of g.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  GLIMPSE_CHECK(!xs.empty(), "concat: no tensors");
  const Shape& first = xs[0].shape();
  const int64_t nd = static_cast<int64_t>(first.size());
  if (dim < 0) dim += nd;
  GLIMPSE_CHECK(dim >= 0 && dim < nd, "concat: dimension out of range for shape ", shape_str(first));
  Shape out_shape = first;
  out_shape[dim] = 0;
  std::vector<Shape> shapes;
  for (const auto& t : xs) {
    GLIMPSE_CHECK(t.dim() == nd, "concat: shapes ", shape_str(first), " and ", shape_str(t.shape()), " differ in rank");
    for (int64_t d = 0; d < nd; ++d)
      GLIMPSE_CHECK(d == dim || t.shape()[d] == first[d], "concat along dim ", dim, ": shapes ", shape_str(first),
                    " and ", shape_str(t.shape()), " differ in dimension ", d);
    shapes.push_back(t.shape());
    out_shape[dim] += t.shape()[dim];
  }
  const Device dev = xs[0].device();
  Tensor out = Tensor::empty(out_shape, dev);
  int64_t at = 0;
  for (const auto& t : xs) {
    dispatch("concat", dev, GLIMPSE_KERNEL(concat_forward), out, t.contiguous(), dim, at);
    at += t.shape()[dim];
  }
  return record("concat", out, xs,
                [shapes, dim](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  const Tensor gc = g.contiguous();
                  std::vector<Tensor> res(shapes.size());
                  int64_t at = 0;
                  for (size_t k = 0; k < shapes.size(); ++k) {
                    if (needs[k]) {
                      res[k] = Tensor::empty(shapes[k], g.device());
                      dispatch("concat", g.device(), GLIMPSE_KERNEL(concat_backward), res[k], gc, dim, at);
                    }
                    at += shapes[k][dim];
                  }
                  return res;
                });
}

// x [*, H, W] -> [*, H + top + bottom, W + left + right] with `value` around it (kernels:
// core/ops/shape.h); the gradient is the [H, W] window of g at (top, left).
Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right, float value) {
  GLIMPSE_CHECK(x.dim() >= 2, "pad2d: needs at least 2 dimensions, got ", shape_str(x.shape()));
  GLIMPSE_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "pad2d: negative padding (", top, ", ", bottom,
                ", ", left, ", ", right, ")");
  Shape xs = x.shape();
  Shape os = xs;
  os[os.size() - 2] += top + bottom;
  os[os.size() - 1] += left + right;
  Tensor out = Tensor::empty(os, x.device());
  dispatch("pad2d", x.device(), GLIMPSE_KERNEL(pad2d_forward), out, x.contiguous(), top, left, value);
  return record("pad2d", out, {x}, [xs, top, left](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xs, g.device());
    dispatch("pad2d", g.device(), GLIMPSE_KERNEL(pad2d_backward), gx, g.contiguous(), top, left);
    return {gx};
  });
}

}  // namespace glimpse
