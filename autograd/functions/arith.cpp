// Element-wise arithmetic with broadcasting, forward and backward side by side.
//   z = a + b : da = sum_to(g),        db = sum_to(g)
//   z = a - b : da = sum_to(g),        db = -sum_to(g)
//   z = a * b : da = sum_to(g * b),    db = sum_to(g * a)
//   z = a / b : da = sum_to(g / b),    db = -sum_to(g * a / b^2)
// sum_to undoes broadcasting by summing over the dimensions that were expanded.
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/elementwise.h"

namespace glimpse {
namespace {

Tensor binary_raw(const Tensor& a, const Tensor& b, BinaryOp op, const char* name) {
  check_same_device(a, b, name);
  Tensor out = Tensor::empty(broadcast_shapes(a.shape(), b.shape(), name), a.device());
  dispatch(name, a.device(), &binary_forward, &DeviceKernels::binary_forward, out, a, b, op);
  return out;
}

Tensor unary_raw(const Tensor& x, UnaryOp op) {
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("unary", x.device(), &unary_forward, &DeviceKernels::unary_forward, out, x, op);
  return out;
}

Tensor affine_raw(const Tensor& x, float scale, float shift) {
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("affine", x.device(), &affine_forward, &DeviceKernels::affine_forward, out, x, scale, shift);
  return out;
}

}  // namespace

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  Tensor out = Tensor::empty(shape, grad.device());
  dispatch("sum_to", grad.device(), &reduce_sum_to, &DeviceKernels::reduce_sum_to, out, grad);
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
  return record("sub", binary_raw(a, b, BinaryOp::Sub, "sub"), {a, b},
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
  return record("mul_scalar", affine_raw(a, s, 0.f), {a},
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
  return record("log", unary_raw(a, UnaryOp::Log), {a}, [ad](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
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
  return record("abs", unary_raw(a, UnaryOp::Abs), {a}, [ad](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
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
