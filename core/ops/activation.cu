// ReLU-family kernels, the GPU twins of core/ops/activation.cpp, forward and backward side by side.
// The three ReLU backward rules (core/grad_mode.h picks one per backward pass), with x the
// forward input and g the incoming gradient:
//   Standard  : g [x > 0]          the true gradient
//   Deconvnet : g [g > 0]          Zeiler & Fergus 2014: ignore the forward mask, pass positive signal
//   Guided    : g [x > 0] [g > 0]  Springenberg et al. 2015: both masks
//
// The CUDA twin of core/ops/activation.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_activation).
#include "core/ops/activation.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

__global__ void relu_forward_kernel(float* y, const float* x, int64_t n) {
  GLIMPSE_GRID_LOOP(i, n) y[i] = x[i] > 0.f ? x[i] : 0.f;  // NaN -> 0, as the CPU's comparison
}

template <ReluRule rule>
__global__ void relu_backward_kernel(float* gx, const float* g, const float* x, int64_t n) {
  GLIMPSE_GRID_LOOP(i, n) {
    const float gi = g[i];
    bool pass;
    if constexpr (rule == ReluRule::Standard)
      pass = x[i] > 0.f;
    else if constexpr (rule == ReluRule::Deconvnet)
      pass = gi > 0.f;
    else
      pass = x[i] > 0.f && gi > 0.f;
    gx[i] = pass ? gi : 0.f;
  }
}

__global__ void leaky_relu_forward_kernel(float* y, const float* x, int64_t n, float slope) {
  GLIMPSE_GRID_LOOP(i, n) y[i] = x[i] > 0.f ? x[i] : slope * x[i];
}

__global__ void leaky_relu_backward_kernel(float* gx, const float* g, const float* x, int64_t n, float slope) {
  GLIMPSE_GRID_LOOP(i, n) gx[i] = x[i] > 0.f ? g[i] : slope * g[i];
}

void check_size(int64_t n, const char* op) { GLIMPSE_CHECK(n >= 0, "cuda::", op, ": negative size ", n); }

}  // namespace

void relu_forward(float* y, const float* x, int64_t n, cudaStream_t s) {
  check_size(n, "relu_forward");
  detail::launch_elements("relu_forward_kernel", n, s, relu_forward_kernel, y, x, n);
}

void relu_backward(float* gx, const float* gout, const float* x, int64_t n, ReluRule rule, cudaStream_t s) {
  check_size(n, "relu_backward");
  void (*kernel)(float*, const float*, const float*, int64_t) = relu_backward_kernel<ReluRule::Standard>;
  if (rule == ReluRule::Deconvnet) kernel = relu_backward_kernel<ReluRule::Deconvnet>;
  if (rule == ReluRule::Guided) kernel = relu_backward_kernel<ReluRule::Guided>;
  detail::launch_elements("relu_backward_kernel", n, s, kernel, gx, gout, x, n);
}

void leaky_relu_forward(float* y, const float* x, int64_t n, float slope, cudaStream_t s) {
  check_size(n, "leaky_relu_forward");
  detail::launch_elements("leaky_relu_forward_kernel", n, s, leaky_relu_forward_kernel, y, x, n, slope);
}

void leaky_relu_backward(float* gx, const float* gout, const float* x, int64_t n, float slope, cudaStream_t s) {
  check_size(n, "leaky_relu_backward");
  detail::launch_elements("leaky_relu_backward_kernel", n, s, leaky_relu_backward_kernel, gx, gout, x, n, slope);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace activation_slots {

void relu_forward(Tensor& out, const Tensor& x) {
  const auto guard = on_device_of(out);
  cuda::relu_forward(device_data(out), device_data(x), out.numel());
}

void relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  const auto guard = on_device_of(gx);
  cuda::relu_backward(device_data(gx), device_data(gout), device_data(x), gx.numel(), rule);
}

void leaky_relu_forward(Tensor& out, const Tensor& x, float slope) {
  const auto guard = on_device_of(out);
  cuda::leaky_relu_forward(device_data(out), device_data(x), out.numel(), slope);
}

void leaky_relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, float slope) {
  const auto guard = on_device_of(gx);
  cuda::leaky_relu_backward(device_data(gx), device_data(gout), device_data(x), gx.numel(), slope);
}

}  // namespace activation_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_activation(DeviceKernels& k) {
  k.relu_forward = &activation_slots::relu_forward;
  k.relu_backward = &activation_slots::relu_backward;
  k.leaky_relu_forward = &activation_slots::leaky_relu_forward;
  k.leaky_relu_backward = &activation_slots::leaky_relu_backward;
}

}  // namespace glimpse::cuda
