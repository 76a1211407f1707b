// ReLU, LeakyReLU, softmax, log-softmax and dropout, forward and backward side by side.
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/activation.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace glimpse {

// relu(x) = max(x, 0). Its backward rule is read from relu_rule() when backward runs, which is how
// deconvnet and guided backpropagation reuse the ordinary tape (autograd/grad_mode.h).
Tensor relu(const Tensor& x) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("relu", x.device(), &relu_forward, &DeviceKernels::relu_forward, out, xc);
  Tensor xd = xc.detach();
  return record("relu", out, {x}, [xd](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xd.shape(), xd.device());
    dispatch("relu", xd.device(), &relu_backward, &DeviceKernels::relu_backward, gx, g.contiguous(), xd, relu_rule());
    return {gx};
  });
}

Tensor leaky_relu(const Tensor& x, float slope) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("leaky_relu", x.device(), &leaky_relu_forward, &DeviceKernels::leaky_relu_forward, out, xc, slope);
  Tensor xd = xc.detach();
  return record("leaky_relu", out, {x}, [xd, slope](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xd.shape(), xd.device());
    dispatch("leaky_relu", xd.device(), &leaky_relu_backward, &DeviceKernels::leaky_relu_backward, gx, g.contiguous(),
             xd, slope);
    return {gx};
  });
}

Tensor softmax(const Tensor& x, int64_t dim) {
  DimSplit s = split_at(x.shape(), dim, "softmax");
  Tensor y = Tensor::empty(x.shape(), x.device());
  dispatch("softmax", x.device(), &softmax_forward, &DeviceKernels::softmax_forward, y, x.contiguous(), s);
  Tensor yd = y.detach();
  return record("softmax", y, {x}, [yd, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(yd.shape(), yd.device());
    dispatch("softmax", yd.device(), &softmax_backward, &DeviceKernels::softmax_backward, gx, g.contiguous(), yd, s);
    return {gx};
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  DimSplit s = split_at(x.shape(), dim, "log_softmax");
  Tensor y = Tensor::empty(x.shape(), x.device());
  dispatch("log_softmax", x.device(), &log_softmax_forward, &DeviceKernels::log_softmax_forward, y, x.contiguous(),
           s);
  Tensor yd = y.detach();
  return record("log_softmax", y, {x}, [yd, s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(yd.shape(), yd.device());
    dispatch("log_softmax", yd.device(), &log_softmax_backward, &DeviceKernels::log_softmax_backward, gx,
             g.contiguous(), yd, s);
    return {gx};
  });
}

// Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p); dy/dx = m / (1 - p).
// The mask is drawn on the host from `rng`, so a seed gives the same mask on every device, and then
// moved next to x; both products run on x's device (binary_forward, dispatched).
Tensor dropout(const Tensor& x, float p, bool training, Rng& rng) {
  GLIMPSE_CHECK(p >= 0.f && p < 1.f, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.f) return x;
  Tensor mask = Tensor::empty(x.shape());
  float* m = mask.data();
  const float keep = 1.f / (1.f - p);
  for (int64_t i = 0; i < mask.numel(); ++i) m[i] = rng.bernoulli(p) ? 0.f : keep;
  if (!x.device().is_cpu()) mask = mask.to(x.device());
  auto times_mask = [](const Tensor& t, const Tensor& mk) {
    Tensor out = Tensor::empty(mk.shape(), mk.device());
    dispatch("dropout", t.device(), &binary_forward, &DeviceKernels::binary_forward, out, t.contiguous(), mk,
             BinaryOp::Mul);
    return out;
  };
  return record("dropout", times_mask(x, mask), {x},
                [mask, times_mask](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {times_mask(g, mask)};
                });
}

}  // namespace glimpse
