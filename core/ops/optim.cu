// Fused optimizer updates, the GPU twins of layers/optim.cpp: one thread per parameter value reads
// p, g and the state once and writes them once (one pass instead of the 4-6 element-wise kernels an
// unfused update would launch). The formulas are the CPU's, expression for expression, so both
// devices follow PyTorch's torch.optim rules (see layers/optim.h).
//
// The CUDA twin of core/ops/optim.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_optim).
#include "core/ops/optim.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

// d = g + wd p;  momentum == 0: p -= lr d
__global__ void sgd_plain_kernel(float* p, const float* g, int64_t n, float lr, float wd) {
  GLIMPSE_GRID_LOOP(k, n) p[k] -= lr * (g[k] + wd * p[k]);
}

// buf = first ? d : mu buf + (1 - dampening) d;  p -= lr (nesterov ? d + mu buf : buf)
__global__ void sgd_momentum_kernel(float* p, float* buf, const float* g, int64_t n, float lr, float mu, float damp,
                                    bool nesterov, float wd, bool first) {
  GLIMPSE_GRID_LOOP(k, n) {
    const float d = g[k] + wd * p[k];
    const float b = first ? d : mu * buf[k] + damp * d;
    buf[k] = b;
    p[k] -= lr * (nesterov ? d + mu * b : b);
  }
}

// m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  (amsgrad) vmax = max(vmax, v);
// p -= step_size m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / bc1.
__global__ void adam_kernel(float* p, float* m, float* v, float* vmax, const float* g, int64_t n, float b1, float b2,
                            float eps, float wd, bool decoupled, float decay, float step_size, float bc2_sqrt) {
  GLIMPSE_GRID_LOOP(k, n) {
    float pk = p[k], gk = g[k];
    if (decoupled)
      pk *= decay;
    else
      gk += wd * pk;
    const float mk = b1 * m[k] + (1.f - b1) * gk;
    const float vk = b2 * v[k] + (1.f - b2) * gk * gk;
    m[k] = mk;
    v[k] = vk;
    float vu = vk;
    if (vmax) vu = vmax[k] = fmaxf(vmax[k], vk);
    p[k] = pk - step_size * mk / (sqrtf(vu) / bc2_sqrt + eps);
  }
}

}  // namespace

void sgd_step(float* p, float* momentum_buf, const float* g, int64_t n, float lr, float momentum, float dampening,
              bool nesterov, float weight_decay, bool first_step, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::sgd_step: negative size ", n);
  if (momentum == 0.f) {
    detail::launch_elements("sgd_plain_kernel", n, s, sgd_plain_kernel, p, g, n, lr, weight_decay);
    return;
  }
  GLIMPSE_CHECK(momentum_buf, "cuda::sgd_step: momentum ", momentum, " needs a momentum buffer");
  detail::launch_elements("sgd_momentum_kernel", n, s, sgd_momentum_kernel, p, momentum_buf, g, n, lr, momentum,
                          1.f - dampening, nesterov, weight_decay, first_step);
}

void adam_step(float* p, float* m, float* v, float* vmax, const float* g, int64_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, bool decoupled, int64_t t, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0 && t >= 1, "cuda::adam_step: bad size ", n, " or step ", t, " (steps count from 1)");
  // Bias corrections as layers/optim.cpp computes them: pow in double, then float.
  const float bc1 = 1.f - static_cast<float>(std::pow(static_cast<double>(beta1), static_cast<double>(t)));
  const float bc2 = 1.f - static_cast<float>(std::pow(static_cast<double>(beta2), static_cast<double>(t)));
  const float step_size = lr / bc1;
  const float bc2_sqrt = std::sqrt(bc2);
  const float decay = decoupled ? 1.f - lr * weight_decay : 1.f;
  detail::launch_elements("adam_kernel", n, s, adam_kernel, p, m, v, vmax, g, n, beta1, beta2, eps, weight_decay,
                          decoupled, decay, step_size, bc2_sqrt);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace optim_slots {

void sgd_step(Tensor& p, Tensor& momentum_buf, const Tensor& g, float lr, float momentum, float dampening,
              bool nesterov, float weight_decay, bool first_step) {
  const auto guard = on_device_of(p);
  cuda::sgd_step(device_data(p), momentum == 0.f ? nullptr : device_data(momentum_buf), device_data(g), p.numel(), lr,
                 momentum, dampening, nesterov, weight_decay, first_step);
}

void adam_step(Tensor& p, Tensor& m, Tensor& v, Tensor& vmax, const Tensor& g, float lr, float beta1, float beta2,
               float eps, float weight_decay, bool decoupled, int64_t t) {
  const auto guard = on_device_of(p);
  cuda::adam_step(device_data(p), device_data(m), device_data(v), device_data_or_null(vmax), device_data(g), p.numel(),
                  lr, beta1, beta2, eps, weight_decay, decoupled, t);
}

}  // namespace optim_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_optim(DeviceKernels& k) {
  k.sgd_step = &optim_slots::sgd_step;
  k.adam_step = &optim_slots::adam_step;
}

}  // namespace glimpse::cuda
