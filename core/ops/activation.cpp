#include "core/ops/activation.h"

namespace glimpse {
namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

void relu_forward(Tensor& out, const Tensor& x) {
  check_cpu(x, "relu");
  const float* p = x.data();
  float* o = out.data();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) o[i] = p[i] > 0.f ? p[i] : 0.f;
}

void relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  check_cpu(x, "relu backward");
  const float* p = x.data();
  const float* g = gout.data();
  float* o = gx.data();
  const int64_t n = x.numel();
  switch (rule) {
    case ReluRule::Standard:
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) o[i] = p[i] > 0.f ? g[i] : 0.f;
      break;
    case ReluRule::Deconvnet:
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) o[i] = g[i] > 0.f ? g[i] : 0.f;
      break;
    case ReluRule::Guided:
#pragma omp parallel for schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) o[i] = (p[i] > 0.f && g[i] > 0.f) ? g[i] : 0.f;
      break;
  }
}

void leaky_relu_forward(Tensor& out, const Tensor& x, float slope) {
  check_cpu(x, "leaky_relu");
  const float* p = x.data();
  float* o = out.data();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) o[i] = p[i] > 0.f ? p[i] : slope * p[i];
}

void leaky_relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, float slope) {
  check_cpu(x, "leaky_relu backward");
  const float* p = x.data();
  const float* g = gout.data();
  float* o = gx.data();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) o[i] = p[i] > 0.f ? g[i] : slope * g[i];
}

}  // namespace glimpse
