// Softmax and log-softmax kernels, the GPU twins of core/ops/softmax.cpp (one thread per row of the
// [outer, len, inner] view; sums in double).
//
// The CUDA twin of core/ops/softmax.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_softmax).
#include "core/ops/softmax.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

// The maximum of row (a, c) along len (the shift that keeps exp from overflowing).
__device__ inline float row_max(const float* x, int64_t base, int64_t len, int64_t inner) {
  float m = -INFINITY;
  for (int64_t l = 0; l < len; ++l) m = fmaxf(m, x[base + l * inner]);
  return m;
}

// Softmax along len for row (a, c): y = exp(x - max) / sum exp(x - max), the sum in double.
__global__ void softmax_forward_kernel(float* y, const float* x, int64_t outer, int64_t len, int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    const float m = row_max(x, base, len, inner);
    double z = 0;
    for (int64_t l = 0; l < len; ++l) {
      const float e = expf(x[base + l * inner] - m);
      y[base + l * inner] = e;
      z += e;
    }
    const float inv = static_cast<float>(1.0 / z);
    for (int64_t l = 0; l < len; ++l) y[base + l * inner] *= inv;
  }
}

// gx = y (g - sum_l g y).
__global__ void softmax_backward_kernel(float* gx, const float* gy, const float* y, int64_t outer, int64_t len,
                                        int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    double dot = 0;
    for (int64_t l = 0; l < len; ++l) dot += gy[base + l * inner] * y[base + l * inner];
    const float d = static_cast<float>(dot);
    for (int64_t l = 0; l < len; ++l) gx[base + l * inner] = y[base + l * inner] * (gy[base + l * inner] - d);
  }
}

// y = x - (max + log sum exp(x - max)).
__global__ void log_softmax_forward_kernel(float* y, const float* x, int64_t outer, int64_t len, int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    const float m = row_max(x, base, len, inner);
    double z = 0;
    for (int64_t l = 0; l < len; ++l) z += ::exp(static_cast<double>(x[base + l * inner] - m));
    const float lse = m + static_cast<float>(::log(z));
    for (int64_t l = 0; l < len; ++l) y[base + l * inner] = x[base + l * inner] - lse;
  }
}

// gx = g - exp(y) sum_l g.
__global__ void log_softmax_backward_kernel(float* gx, const float* gy, const float* y, int64_t outer, int64_t len,
                                            int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    double s = 0;
    for (int64_t l = 0; l < len; ++l) s += gy[base + l * inner];
    const float sf = static_cast<float>(s);
    for (int64_t l = 0; l < len; ++l) gx[base + l * inner] = gy[base + l * inner] - expf(y[base + l * inner]) * sf;
  }
}

}  // namespace

// One thread per row (a, c) of the four softmax kernels; nothing to do for an empty dimension.
void softmax_forward(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t s) {
  detail::check_split(outer, len, inner, "softmax_forward");
  detail::launch_elements("softmax_forward_kernel", len ? outer * inner : 0, s, softmax_forward_kernel, y, x, outer,
                          len, inner);
}

void softmax_backward(float* gx, const float* gy, const float* y, int64_t outer, int64_t len, int64_t inner,
                      cudaStream_t s) {
  detail::check_split(outer, len, inner, "softmax_backward");
  detail::launch_elements("softmax_backward_kernel", len ? outer * inner : 0, s, softmax_backward_kernel, gx, gy, y,
                          outer, len, inner);
}

void log_softmax_forward(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t s) {
  detail::check_split(outer, len, inner, "log_softmax_forward");
  detail::launch_elements("log_softmax_forward_kernel", len ? outer * inner : 0, s, log_softmax_forward_kernel, y, x,
                          outer, len, inner);
}

void log_softmax_backward(float* gx, const float* gy, const float* y, int64_t outer, int64_t len, int64_t inner,
                          cudaStream_t s) {
  detail::check_split(outer, len, inner, "log_softmax_backward");
  detail::launch_elements("log_softmax_backward_kernel", len ? outer * inner : 0, s, log_softmax_backward_kernel, gx,
                          gy, y, outer, len, inner);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace softmax_slots {

template <auto launcher>
void along_dim_forward(Tensor& y, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(y);
  launcher(device_data(y), device_data(x), s.outer, s.len, s.inner, 0);
}

template <auto launcher>
void along_dim_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s) {
  const auto guard = on_device_of(gx);
  launcher(device_data(gx), device_data(gy), device_data(y), s.outer, s.len, s.inner, 0);
}

}  // namespace softmax_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_softmax(DeviceKernels& k) {
  k.softmax_forward = &softmax_slots::along_dim_forward<&cuda::softmax_forward>;
  k.softmax_backward = &softmax_slots::along_dim_backward<&cuda::softmax_backward>;
  k.log_softmax_forward = &softmax_slots::along_dim_forward<&cuda::log_softmax_forward>;
  k.log_softmax_backward = &softmax_slots::along_dim_backward<&cuda::log_softmax_backward>;
}

}  // namespace glimpse::cuda
