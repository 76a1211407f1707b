// ReLU, LeakyReLU and dropout: CPU kernels, then the differentiable ops (math: core/ops/activation.h).
#include "core/ops/activation.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/elementwise.h"
#include "core/parallel.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

void relu_forward(Tensor& out, const Tensor& x) {
  check_cpu(x, "relu");
  const float* p = x.data();
  float* o = out.data();
  const int64_t n = x.numel();
  parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
    for (int64_t i = i_begin; i < i_end; ++i) o[i] = p[i] > 0.f ? p[i] : 0.f;
  });
}

void relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  check_cpu(x, "relu backward");
  const float* p = x.data();
  const float* g = gout.data();
  float* o = gx.data();
  const int64_t n = x.numel();
  switch (rule) {
    case ReluRule::Standard:
      parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
        for (int64_t i = i_begin; i < i_end; ++i) o[i] = p[i] > 0.f ? g[i] : 0.f;
      });
      break;
    case ReluRule::Deconvnet:
      parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
        for (int64_t i = i_begin; i < i_end; ++i) o[i] = g[i] > 0.f ? g[i] : 0.f;
      });
      break;
    case ReluRule::Guided:
      parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
        for (int64_t i = i_begin; i < i_end; ++i) o[i] = (p[i] > 0.f && g[i] > 0.f) ? g[i] : 0.f;
      });
      break;
  }
}

void leaky_relu_forward(Tensor& out, const Tensor& x, float slope) {
  check_cpu(x, "leaky_relu");
  const float* p = x.data();
  float* o = out.data();
  const int64_t n = x.numel();
  parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
    for (int64_t i = i_begin; i < i_end; ++i) o[i] = p[i] > 0.f ? p[i] : slope * p[i];
  });
}

void leaky_relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, float slope) {
  check_cpu(x, "leaky_relu backward");
  const float* p = x.data();
  const float* g = gout.data();
  float* o = gx.data();
  const int64_t n = x.numel();
  parallel_for_range(n, kParallelMin, [&](int64_t i_begin, int64_t i_end) {
    for (int64_t i = i_begin; i < i_end; ++i) o[i] = p[i] > 0.f ? g[i] : slope * g[i];
  });
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
namespace glimpse {

// relu(x) = max(x, 0). Its backward rule is read from relu_rule() when backward runs, which is how
// deconvnet and guided backpropagation reuse the ordinary tape (core/grad_mode.h).
Tensor relu(const Tensor& x) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("relu", x.device(), GLIMPSE_KERNEL(relu_forward), out, xc);
  Tensor xd = xc.detach();
  return record("relu", out, {x}, [xd](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xd.shape(), xd.device());
    dispatch("relu", xd.device(), GLIMPSE_KERNEL(relu_backward), gx, g.contiguous(), xd, relu_rule());
    return {gx};
  });
}

Tensor leaky_relu(const Tensor& x, float slope) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.device());
  dispatch("leaky_relu", x.device(), GLIMPSE_KERNEL(leaky_relu_forward), out, xc, slope);
  Tensor xd = xc.detach();
  return record("leaky_relu", out, {x}, [xd, slope](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(xd.shape(), xd.device());
    dispatch("leaky_relu", xd.device(), GLIMPSE_KERNEL(leaky_relu_backward), gx, g.contiguous(), xd, slope);
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
    dispatch("dropout", t.device(), GLIMPSE_KERNEL(binary_forward), out, t.contiguous(), mk, BinaryOp::Mul);
    return out;
  };
  return record("dropout", times_mask(x, mask), {x},
                [mask, times_mask](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {times_mask(g, mask)};
                });
}

}  // namespace glimpse
