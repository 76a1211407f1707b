// Shape operations: reshape, flatten, concat, pad2d, narrow0 -- forward and backward side by side.
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/shape.h"

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
  return record("narrow0", out, {x}, [xs, begin, end](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
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
    dispatch("concat", dev, &cpu::concat_forward, &DeviceKernels::concat_forward, out, t.contiguous(), dim, at);
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
                      dispatch("concat", g.device(), &cpu::concat_backward, &DeviceKernels::concat_backward, res[k],
                               gc, dim, at);
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
  dispatch("pad2d", x.device(), &cpu::pad2d_forward, &DeviceKernels::pad2d_forward, out, x.contiguous(), top, left,
           value);
  return record("pad2d", out, {x}, [xs, top, left](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xs, g.device());
    dispatch("pad2d", g.device(), &cpu::pad2d_backward, &DeviceKernels::pad2d_backward, gx, g.contiguous(), top, left);
    return {gx};
  });
}

}  // namespace glimpse
