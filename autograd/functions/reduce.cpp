// Reductions, forward and backward side by side.
//   sum    : dx = g broadcast back over the reduced dims
//   mean   : dx = g / n broadcast back
//   max    : dx = g at the (first) argmax, 0 elsewhere
#include <cmath>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/reduce.h"

namespace glimpse {
namespace {

// Spreads g (one value per [outer, inner] cell) back over len, times `scale`.
Tensor expand_dim(const Tensor& g, const Shape& shape, const DimSplit& s, float scale) {
  Tensor out = Tensor::empty(shape, g.device());
  dispatch("sum", g.device(), &sum_dim_backward, &DeviceKernels::sum_dim_backward, out, g.contiguous(), s, scale);
  return out;
}

Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim) {
  Shape out = shape;
  if (keepdim) out[dim] = 1;
  else out.erase(out.begin() + dim);
  return out;
}

Tensor sum_impl(const Tensor& x, int64_t dim, bool keepdim, bool is_mean) {
  const char* name = is_mean ? "mean" : "sum";
  DimSplit s = split_at(x.shape(), dim, name);
  Shape xs = x.shape();
  Tensor out = Tensor::empty(reduced_shape(xs, dim, keepdim), x.device());
  dispatch(name, x.device(), &sum_dim_forward, &DeviceKernels::sum_dim_forward, out, x.contiguous(), s);
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
  dispatch("max", x.device(), &max_dim_forward, &DeviceKernels::max_dim_forward, out, xd, s);
  // Backward finds the argmax again from x (as max_pool2d does): no index tensor to keep.
  return record("max", out, {x}, [xd, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xd.shape(), g.device());
    dispatch("max", g.device(), &max_dim_backward, &DeviceKernels::max_dim_backward, gx, g.contiguous(), xd, s);
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
