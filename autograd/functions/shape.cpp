// Shape operations: reshape, flatten, concat, pad2d, narrow0 -- forward and backward side by side.
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/error.h"

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

// Concatenation along dim: each input is a block of [outer, len_i, inner] in the output.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  GLIMPSE_CHECK(!xs.empty(), "concat: no tensors");
  const Shape& first = xs[0].shape();
  const int64_t nd = static_cast<int64_t>(first.size());
  if (dim < 0) dim += nd;
  GLIMPSE_CHECK(dim >= 0 && dim < nd, "concat: dimension out of range for shape ", shape_str(first));
  Shape out_shape = first;
  out_shape[dim] = 0;
  std::vector<int64_t> lens;
  for (const auto& t : xs) {
    check_cpu(t, "concat");
    GLIMPSE_CHECK(t.dim() == nd, "concat: shapes ", shape_str(first), " and ", shape_str(t.shape()), " differ in rank");
    for (int64_t d = 0; d < nd; ++d)
      GLIMPSE_CHECK(d == dim || t.shape()[d] == first[d], "concat along dim ", dim, ": shapes ", shape_str(first),
                    " and ", shape_str(t.shape()), " differ in dimension ", d);
    lens.push_back(t.shape()[dim]);
    out_shape[dim] += t.shape()[dim];
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= first[d];
  for (int64_t d = dim + 1; d < nd; ++d) inner *= first[d];
  const int64_t total = out_shape[dim];
  Tensor out = Tensor::empty(out_shape);
  float* o = out.data();
  int64_t at = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    Tensor c = xs[k].contiguous();
    const float* p = c.data();
    for (int64_t a = 0; a < outer; ++a)
      std::copy(p + a * lens[k] * inner, p + (a + 1) * lens[k] * inner, o + (a * total + at) * inner);
    at += lens[k];
  }
  std::vector<Shape> shapes;
  for (const auto& t : xs) shapes.push_back(t.shape());
  return record("concat", out, xs,
                [shapes, lens, outer, inner, total](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  Tensor gc = g.contiguous();
                  const float* pg = gc.data();
                  std::vector<Tensor> res(shapes.size());
                  int64_t at = 0;
                  for (size_t k = 0; k < shapes.size(); ++k) {
                    if (needs[k]) {
                      res[k] = Tensor::empty(shapes[k]);
                      float* o = res[k].data();
                      for (int64_t a = 0; a < outer; ++a)
                        std::copy(pg + (a * total + at) * inner, pg + (a * total + at + lens[k]) * inner,
                                  o + a * lens[k] * inner);
                    }
                    at += lens[k];
                  }
                  return res;
                });
}

Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right, float value) {
  GLIMPSE_CHECK(x.dim() >= 2, "pad2d: needs at least 2 dimensions, got ", shape_str(x.shape()));
  GLIMPSE_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "pad2d: negative padding (", top, ", ", bottom,
                ", ", left, ", ", right, ")");
  check_cpu(x, "pad2d");
  Shape xs = x.shape();
  const int64_t H = x.size(-2), W = x.size(-1), planes = x.numel() / std::max<int64_t>(H * W, 1);
  const int64_t OH = H + top + bottom, OW = W + left + right;
  Shape os = xs;
  os[os.size() - 2] = OH;
  os[os.size() - 1] = OW;
  Tensor out = Tensor::full(os, value);
  Tensor xc = x.contiguous();
  const float* p = xc.data();
  float* o = out.data();
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t h = 0; h < H; ++h)
      std::copy(p + (pl * H + h) * W, p + (pl * H + h + 1) * W, o + (pl * OH + h + top) * OW + left);
  return record("pad2d", out, {x}, [xs, planes, H, W, OH, OW, top, left](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gc = g.contiguous();
    Tensor gx = Tensor::empty(xs);
    const float* pg = gc.data();
    float* o = gx.data();
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t h = 0; h < H; ++h)
        std::copy(pg + (pl * OH + h + top) * OW + left, pg + (pl * OH + h + top) * OW + left + W, o + (pl * H + h) * W);
    return {gx};
  });
}

}  // namespace glimpse
