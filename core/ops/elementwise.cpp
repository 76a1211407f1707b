// Element-wise arithmetic: CPU kernels, then the differentiable ops (math: core/ops/elementwise.h).
#include "core/ops/elementwise.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save

template <typename F>
void for_each_flat(int64_t n, F f) {
  parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
    for (int64_t i = i_begin; i < i_end; ++i) f(i);
  });
}

// Strides of `t` seen from an output of shape `out` (0 where t is broadcast).
Shape broadcast_strides(const Tensor& t, const Shape& out) {
  Shape st(out.size(), 0);
  const int64_t shift = static_cast<int64_t>(out.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.shape()[d] != 1) st[d + shift] = t.strides()[d];
  return st;
}

template <typename F>
void binary_loop(float* o, const Shape& shape, const float* a, const Shape& sa, const float* b, const Shape& sb, F f) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (nd == 0) {
    o[0] = f(a[0], b[0]);
    return;
  }
  const int64_t inner = shape[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1];
  const int64_t outer = shape_numel(shape) / std::max<int64_t>(inner, 1);
  parallel_for_range(outer, std::max<int64_t>(1, kParallelMin / std::max<int64_t>(inner, 1)),
                     [&](int64_t row_begin, int64_t row_end) {
                       for (int64_t row = row_begin; row < row_end; ++row) {
                         int64_t rem = row, oa = 0, ob = 0;
                         for (int64_t d = nd - 2; d >= 0; --d) {
                           const int64_t i = rem % shape[d];
                           rem /= shape[d];
                           oa += i * sa[d];
                           ob += i * sb[d];
                         }
                         float* orow = o + row * inner;
                         for (int64_t j = 0; j < inner; ++j) orow[j] = f(a[oa + j * ia], b[ob + j * ib]);
                       }
                     });
}

template <typename F>
void dispatch_binary(Tensor& out, const Tensor& a, const Tensor& b, F f) {
  Tensor ac = a.contiguous(), bc = b.contiguous();
  float* o = out.data();
  const float* pa = ac.data();
  const float* pb = bc.data();
  if (ac.shape() == out.shape() && bc.shape() == out.shape()) {
    for_each_flat(out.numel(), [&](int64_t i) { o[i] = f(pa[i], pb[i]); });
    return;
  }
  binary_loop(o, out.shape(), pa, broadcast_strides(ac, out.shape()), pb, broadcast_strides(bc, out.shape()), f);
}

}  // namespace

void binary_forward(Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) {
  check_cpu(a, "binary op");
  check_cpu(b, "binary op");
  switch (op) {
    case BinaryOp::Add:
      return dispatch_binary(out, a, b, [](float x, float y) { return x + y; });
    case BinaryOp::Sub:
      return dispatch_binary(out, a, b, [](float x, float y) { return x - y; });
    case BinaryOp::Mul:
      return dispatch_binary(out, a, b, [](float x, float y) { return x * y; });
    case BinaryOp::Div:
      return dispatch_binary(out, a, b, [](float x, float y) { return x / y; });
  }
}

void unary_forward(Tensor& out, const Tensor& x, UnaryOp op) {
  check_cpu(x, "unary op");
  Tensor xc = x.contiguous();
  const float* p = xc.data();
  float* o = out.data();
  const int64_t n = x.numel();
  switch (op) {
    case UnaryOp::Neg:
      for_each_flat(n, [&](int64_t i) { o[i] = -p[i]; });
      break;
    case UnaryOp::Exp:
      for_each_flat(n, [&](int64_t i) { o[i] = std::exp(p[i]); });
      break;
    case UnaryOp::Log:
      for_each_flat(n, [&](int64_t i) { o[i] = std::log(p[i]); });
      break;
    case UnaryOp::Square:
      for_each_flat(n, [&](int64_t i) { o[i] = p[i] * p[i]; });
      break;
    case UnaryOp::Abs:
      for_each_flat(n, [&](int64_t i) { o[i] = std::abs(p[i]); });
      break;
    case UnaryOp::Sigmoid:
      for_each_flat(n, [&](int64_t i) { o[i] = 1.f / (1.f + std::exp(-p[i])); });
      break;
    case UnaryOp::Tanh:
      for_each_flat(n, [&](int64_t i) { o[i] = std::tanh(p[i]); });
      break;
  }
}

void affine_forward(Tensor& out, const Tensor& x, float scale, float shift) {
  check_cpu(x, "affine");
  Tensor xc = x.contiguous();
  const float* p = xc.data();
  float* o = out.data();
  for_each_flat(x.numel(), [&](int64_t i) { o[i] = scale * p[i] + shift; });
}

void reduce_sum_to(Tensor& out, const Tensor& in) {
  check_cpu(in, "sum_to");
  Tensor ic = in.contiguous();
  const Shape& is = in.shape();
  const int64_t nd = in.dim();
  GLIMPSE_CHECK(out.dim() <= nd, "sum_to: cannot reduce ", shape_str(is), " to ", shape_str(out.shape()));
  Shape ost = broadcast_strides(out, is);
  for (int64_t d = 0; d < out.dim(); ++d) {
    const int64_t od = out.shape()[d], idim = is[d + nd - out.dim()];
    GLIMPSE_CHECK(od == idim || od == 1, "sum_to: cannot reduce ", shape_str(is), " to ", shape_str(out.shape()));
  }
  out.fill_(0.f);
  float* o = out.data();
  const float* p = ic.data();
  const int64_t n = in.numel();
  if (n == 0) return;
  // Sequential odometer: reductions onto few outputs do not parallelise without races.
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    o[off] += p[i];
    for (int64_t d = nd - 1; d >= 0; --d) {
      off += ost[d];
      if (++idx[d] < is[d]) break;
      off -= ost[d] * is[d];
      idx[d] = 0;
    }
  }
}

void add_scaled(Tensor& y, const Tensor& x, float alpha) {
  check_cpu(y, "add_");
  check_cpu(x, "add_");
  float* d = y.data();
  const float* s = x.data();
  const int64_t n = y.numel();
  for (int64_t i = 0; i < n; ++i) d[i] += alpha * s[i];
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    GLIMPSE_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                  " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = std::max(da, db);
  }
  return out;
}

namespace {

Tensor binary_raw(const Tensor& a, const Tensor& b, BinaryOp op, const char* name) {
  check_same_device(a, b, name);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), name), a.device());
  dispatch(name, a.device(), GLIMPSE_KERNEL(binary_forward), out, a, b, op);
  return out;
}

Tensor unary_raw(const Tensor& x, UnaryOp op) {
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("unary", x.device(), GLIMPSE_KERNEL(unary_forward), out, x, op);
  return out;
}

Tensor affine_raw(const Tensor& x, float scale, float shift) {
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("affine", x.device(), GLIMPSE_KERNEL(affine_forward), out, x, scale, shift);
  return out;
}

}  // namespace

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  Tensor out = Tensor::empty(shape, grad.device());
  dispatch("sum_to", grad.device(), GLIMPSE_KERNEL(reduce_sum_to), out, grad);
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  return record("add", binary_raw(a, b, BinaryOp::Add, "add"), {a, b},
                [sa, sb](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  return {needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(g, sb) : Tensor()};
                });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  return record(
      "sub", binary_raw(a, b, BinaryOp::Sub, "sub"), {a, b},
      [sa, sb](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
        return {needs[0] ? sum_to(g, sa) : Tensor(), needs[1] ? sum_to(affine_raw(g, -1.f, 0.f), sb) : Tensor()};
      });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  return record("mul", binary_raw(a, b, BinaryOp::Mul, "mul"), {a, b},
                [ad, bd](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  return {needs[0] ? sum_to(binary_raw(g, bd, BinaryOp::Mul, "mul"), ad.shape()) : Tensor(),
                          needs[1] ? sum_to(binary_raw(g, ad, BinaryOp::Mul, "mul"), bd.shape()) : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  return record("div", binary_raw(a, b, BinaryOp::Div, "div"), {a, b},
                [ad, bd](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                  Tensor ga, gb;
                  Tensor g_over_b = binary_raw(g, bd, BinaryOp::Div, "div");
                  if (needs[0]) ga = sum_to(g_over_b, ad.shape());
                  if (needs[1]) {
                    // -g a / b^2 = -(g / b) * (a / b)
                    Tensor t = binary_raw(g_over_b, binary_raw(ad, bd, BinaryOp::Div, "div"), BinaryOp::Mul, "div");
                    gb = sum_to(affine_raw(t, -1.f, 0.f), bd.shape());
                  }
                  return {ga, gb};
                });
}

Tensor add_scalar(const Tensor& a, float s) {
  return record("add_scalar", affine_raw(a, 1.f, s), {a},
                [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
}

Tensor mul_scalar(const Tensor& a, float s) {
  return record(
      "mul_scalar", affine_raw(a, s, 0.f), {a},
      [s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {affine_raw(g, s, 0.f)}; });
}

Tensor neg(const Tensor& a) { return mul_scalar(a, -1.f); }

Tensor exp(const Tensor& a) {
  Tensor y = unary_raw(a, UnaryOp::Exp);
  Tensor yd = y.detach();
  return record("exp", y, {a}, [yd](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    return {binary_raw(g, yd, BinaryOp::Mul, "exp")};
  });
}

Tensor log(const Tensor& a) {
  Tensor ad = a.detach();
  return record("log", unary_raw(a, UnaryOp::Log), {a},
                [ad](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {binary_raw(g, ad, BinaryOp::Div, "log")};
                });
}

Tensor square(const Tensor& a) {
  Tensor ad = a.detach();
  return record("square", unary_raw(a, UnaryOp::Square), {a},
                [ad](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {binary_raw(g, affine_raw(ad, 2.f, 0.f), BinaryOp::Mul, "square")};
                });
}

Tensor abs(const Tensor& a) {
  Tensor ad = a.detach();
  return record("abs", unary_raw(a, UnaryOp::Abs), {a},
                [ad](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  // sign(a) on the host: no device has a sign kernel, and abs is no layer of a model (it only
                  // shapes losses and weights), so the copy costs little; the product runs on g's device.
                  const Tensor a_host = ad.contiguous().to(Device::cpu());
                  Tensor s = Tensor::empty(ad.shape());
                  const float* p = a_host.data();
                  float* o = s.data();
                  for (int64_t i = 0; i < s.numel(); ++i) o[i] = p[i] > 0.f ? 1.f : (p[i] < 0.f ? -1.f : 0.f);
                  return {binary_raw(g, s.to(g.device()), BinaryOp::Mul, "abs")};
                });
}

Tensor sigmoid(const Tensor& x) {
  Tensor y = unary_raw(x, UnaryOp::Sigmoid);
  Tensor yd = y.detach();
  // dy/dx = y (1 - y)
  return record("sigmoid", y, {x}, [yd](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor d = binary_raw(yd, affine_raw(yd, -1.f, 1.f), BinaryOp::Mul, "sigmoid");
    return {binary_raw(g, d, BinaryOp::Mul, "sigmoid")};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor y = unary_raw(x, UnaryOp::Tanh);
  Tensor yd = y.detach();
  // dy/dx = 1 - y^2
  return record("tanh", y, {x}, [yd](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor d = affine_raw(unary_raw(yd, UnaryOp::Square), -1.f, 1.f);
    return {binary_raw(g, d, BinaryOp::Mul, "tanh")};
  });
}

}  // namespace glimpse
