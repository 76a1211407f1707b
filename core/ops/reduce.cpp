// Reductions: CPU kernels, then the differentiable ops (math: core/ops/reduce.h).
#include "core/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/shape.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {
// Outer rows per parallel chunk: about 32K elements of work each.
int64_t rows_grain(const DimSplit& s) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(s.len * s.inner, 1));
}
}  // namespace

void sum_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  check_cpu(x, "sum");
  const float* p = x.data();
  float* o = out.data();
  parallel_for_range(s.outer, rows_grain(s), [&](int64_t a0, int64_t a1) {
    for (int64_t a = a0; a < a1; ++a)
      for (int64_t c = 0; c < s.inner; ++c) {
        double acc = 0;
        for (int64_t l = 0; l < s.len; ++l) acc += p[(a * s.len + l) * s.inner + c];
        o[a * s.inner + c] = static_cast<float>(acc);
      }
  });
}

namespace {
// The index along len of the max of column (a, c): the first NaN, else the first maximum.
int64_t first_argmax(const float* p, const DimSplit& s, int64_t a, int64_t c) {
  int64_t best = 0;
  float bv = p[a * s.len * s.inner + c];
  for (int64_t l = 1; l < s.len; ++l) {
    const float v = p[(a * s.len + l) * s.inner + c];
    if (v > bv || (std::isnan(v) && !std::isnan(bv))) {
      bv = v;
      best = l;
    }
  }
  return best;
}
}  // namespace

void max_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  const float* p = x.data();
  float* o = out.data();
  for (int64_t a = 0; a < s.outer; ++a)
    for (int64_t c = 0; c < s.inner; ++c) o[a * s.inner + c] = p[(a * s.len + first_argmax(p, s, a, c)) * s.inner + c];
}

void max_dim_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s) {
  const float* p = x.data();
  const float* g = gout.data();
  float* o = gx.data();
  std::fill(o, o + gx.numel(), 0.f);
  for (int64_t a = 0; a < s.outer; ++a)
    for (int64_t c = 0; c < s.inner; ++c) o[(a * s.len + first_argmax(p, s, a, c)) * s.inner + c] = g[a * s.inner + c];
}

void sum_dim_backward(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale) {
  const float* pg = gout.data();
  float* o = gx.data();
  for (int64_t a = 0; a < s.outer; ++a)
    for (int64_t l = 0; l < s.len; ++l)
      for (int64_t c = 0; c < s.inner; ++c) o[(a * s.len + l) * s.inner + c] = scale * pg[a * s.inner + c];
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

DimSplit split_at(const Shape& shape, int64_t& dim, const char* op) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (dim < 0) dim += nd;
  GLIMPSE_CHECK(dim >= 0 && dim < nd, op, ": dimension out of range for shape ", shape_str(shape));
  DimSplit s;
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[d];
  s.len = shape[dim];
  for (int64_t d = dim + 1; d < nd; ++d) s.inner *= shape[d];
  return s;
}

namespace {

// Spreads g (one value per [outer, inner] cell) back over len, times `scale`.
Tensor expand_dim(const Tensor& g, const Shape& shape, const DimSplit& s, float scale) {
  Tensor out = Tensor::empty(shape, g.device());
  dispatch("sum", g.device(), GLIMPSE_KERNEL(sum_dim_backward), out, g.contiguous(), s, scale);
  return out;
}

Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim) {
  Shape out = shape;
  if (keepdim)
    out[dim] = 1;
  else
    out.erase(out.begin() + dim);
  return out;
}

Tensor sum_impl(const Tensor& x, int64_t dim, bool keepdim, bool is_mean) {
  const char* name = is_mean ? "mean" : "sum";
  DimSplit s = split_at(x.shape(), dim, name);
  Shape xs = x.shape();
  Tensor out = Tensor::empty(reduced_shape(xs, dim, keepdim), x.device());
  dispatch(name, x.device(), GLIMPSE_KERNEL(sum_dim_forward), out, x.contiguous(), s);
  const float scale = is_mean ? 1.f / static_cast<float>(std::max<int64_t>(s.len, 1)) : 1.f;
  if (is_mean) out.scale_(scale);
  return record(name, out, {x}, [xs, s, scale](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {expand_dim(g, xs, s, scale)};
  });
}

}  // namespace

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) { return sum_impl(x, dim, keepdim, false); }
Tensor mean(const Tensor& x, int64_t dim, bool keepdim) { return sum_impl(x, dim, keepdim, true); }

Tensor sum(const Tensor& x) {
  Tensor flat = reshape(x, {x.numel()});
  return reshape(sum(flat, 0, false), {});
}

Tensor mean(const Tensor& x) {
  GLIMPSE_CHECK(x.numel() > 0, "mean: empty tensor of shape ", shape_str(x.shape()));
  Tensor flat = reshape(x, {x.numel()});
  return reshape(mean(flat, 0, false), {});
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  DimSplit s = split_at(x.shape(), dim, "max");
  GLIMPSE_CHECK(s.len > 0, "max: cannot reduce an empty dimension of ", shape_str(x.shape()));
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dim, keepdim), x.device());
  const Tensor xd = x.contiguous().detach();
  dispatch("max", x.device(), GLIMPSE_KERNEL(max_dim_forward), out, xd, s);
  // Backward finds the argmax again from x (as max_pool2d does): no index tensor to keep.
  return record("max", out, {x}, [xd, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xd.shape(), g.device());
    dispatch("max", g.device(), GLIMPSE_KERNEL(max_dim_backward), gx, g.contiguous(), xd, s);
    return {gx};
  });
}

Tensor max(const Tensor& x) {
  Tensor flat = reshape(x, {x.numel()});
  return reshape(max(flat, 0, false), {});
}

std::vector<int64_t> argmax_rows(const Tensor& x) {
  GLIMPSE_CHECK(x.dim() == 2, "argmax_rows: expects [N, K], got ", shape_str(x.shape()));
  Tensor xc = x.contiguous().to(Device::cpu());
  const int64_t n = x.size(0), k = x.size(1);
  std::vector<int64_t> out(n, 0);
  const float* p = xc.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 1; j < k; ++j)
      if (p[i * k + j] > p[i * k + out[i]]) out[i] = j;
  return out;
}

}  // namespace glimpse
