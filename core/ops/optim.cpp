#include "core/ops/optim.h"

#include <algorithm>
#include <cmath>

namespace glimpse::cpu {

void sgd_step(Tensor& param, Tensor& momentum_buf, const Tensor& grad, float lr, float mu, float dampening,
              bool nesterov, float wd, bool first_step) {
  float* p = param.data();
  const float* gp = grad.data();
  const int64_t n = param.numel();
  if (mu == 0.f) {
    for (int64_t k = 0; k < n; ++k) p[k] -= lr * (gp[k] + wd * p[k]);
    return;
  }
  const float damp = 1.f - dampening;
  float* buf = momentum_buf.data();
  for (int64_t k = 0; k < n; ++k) {
    const float d = gp[k] + wd * p[k];
    buf[k] = first_step ? d : mu * buf[k] + damp * d;
    p[k] -= lr * (nesterov ? d + mu * buf[k] : buf[k]);
  }
}

// The bias corrections in double, then float, as PyTorch computes them for float parameters.
void adam_step(Tensor& param, Tensor& m_t, Tensor& v_t, Tensor& vmax_t, const Tensor& grad, float lr, float b1,
               float b2, float eps, float wd, bool decoupled, int64_t t) {
  const float bc1 = 1.f - static_cast<float>(std::pow(static_cast<double>(b1), static_cast<double>(t)));
  const float bc2 = 1.f - static_cast<float>(std::pow(static_cast<double>(b2), static_cast<double>(t)));
  const float step_size = lr / bc1;
  const float bc2_sqrt = std::sqrt(bc2);
  float* p = param.data();
  const float* gp = grad.data();
  float* m = m_t.data();
  float* v = v_t.data();
  float* vmax = vmax_t.defined() ? vmax_t.data() : nullptr;
  const int64_t n = param.numel();
  const float decay = decoupled ? 1.f - lr * wd : 1.f;
  for (int64_t k = 0; k < n; ++k) {
    float gk = gp[k];
    if (decoupled)
      p[k] *= decay;
    else
      gk += wd * p[k];
    m[k] = b1 * m[k] + (1.f - b1) * gk;
    v[k] = b2 * v[k] + (1.f - b2) * gk * gk;
    float vk = v[k];
    if (vmax) vk = vmax[k] = std::max(vmax[k], vk);
    p[k] -= step_size * m[k] / (std::sqrt(vk) / bc2_sqrt + eps);
  }
}

}  // namespace glimpse::cpu
