#include "core/ops/activation.h"

#include "core/parallel.h"

namespace glimpse {
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

}  // namespace glimpse
