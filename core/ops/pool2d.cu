// 2-D pooling kernels, the GPU twins of core/ops/pool2d.cpp (semantics in core/ops/pool2d.h),
// forward and backward side by side.
//
// Forward: one thread per output cell. Backward: one thread per INPUT cell, which sums the outputs
// whose window covers it. Output (p, q) covers rows [p*sh - ph, p*sh - ph + kh), so input row h is
// covered by p in [ceil((h + ph - kh + 1) / sh), floor((h + ph) / sh)] clipped to [0, P) (columns
// likewise). Gathering instead of scattering with atomicAdd keeps backward deterministic and exact
// for overlapping windows (kernel > stride).
//
// The CUDA twin of core/ops/pool2d.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_pool2d).
#include "core/ops/pool2d.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

struct PoolGeom {
  int64_t H, W, P, Q;
  int64_t kh, kw, sh, sw, ph, pw;
};

PoolGeom geometry(int64_t H, int64_t W, const Pool2dOptions& o, const char* op) {
  GLIMPSE_CHECK(o.kernel_h > 0 && o.kernel_w > 0 && o.stride_h > 0 && o.stride_w > 0 && o.pad_h >= 0 && o.pad_w >= 0,
                "cuda::", op, ": kernel and stride must be positive and padding >= 0");
  return {H,
          W,
          window_out_size(H, o.kernel_h, o.stride_h, o.pad_h),
          window_out_size(W, o.kernel_w, o.stride_w, o.pad_w),
          o.kernel_h,
          o.kernel_w,
          o.stride_h,
          o.stride_w,
          o.pad_h,
          o.pad_w};
}

// The outputs [lo, hi] along one axis whose windows cover input index i.
__device__ inline void covering(int64_t i, int64_t k, int64_t s, int64_t pad, int64_t out, int64_t& lo, int64_t& hi) {
  const int64_t num = i + pad - k + 1;
  lo = num <= 0 ? 0 : (num + s - 1) / s;
  hi = ::min((i + pad) / s, out - 1);
}

// First maximal cell of the window in row-major order; a NaN wins (the first NaN), as the CPU.
__global__ void max_pool_forward_kernel(float* out, int32_t* argmax, const float* x, int64_t total, PoolGeom g) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t q = i % g.Q, p = (i / g.Q) % g.P, plane = i / (g.P * g.Q);
    const float* xp = x + plane * g.H * g.W;
    const int64_t hs = p * g.sh - g.ph, ws = q * g.sw - g.pw;
    const int64_t h0 = ::max(hs, int64_t(0)), h1 = ::min(hs + g.kh, g.H), w0 = ::max(ws, int64_t(0)),
                  w1 = ::min(ws + g.kw, g.W);
    int64_t best = -1;
    float m = -INFINITY;
    for (int64_t h = h0; h < h1 && !(best >= 0 && isnan(m)); ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const float v = xp[h * g.W + w];
        if (best < 0 || v > m || isnan(v)) {
          best = h * g.W + w;
          m = v;
          if (isnan(v)) break;
        }
      }
    out[i] = m;  // -inf for an empty window
    if (argmax) argmax[i] = static_cast<int32_t>(best);
  }
}

__global__ void max_pool_backward_kernel(float* gx, const float* gout, const int32_t* argmax, int64_t total,
                                         PoolGeom g) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.H * g.W);
    int64_t p0, p1, q0, q1;
    covering(h, g.kh, g.sh, g.ph, g.P, p0, p1);
    covering(w, g.kw, g.sw, g.pw, g.Q, q0, q1);
    const int32_t self = static_cast<int32_t>(h * g.W + w);
    const float* go = gout + plane * g.P * g.Q;
    const int32_t* am = argmax + plane * g.P * g.Q;
    float acc = 0.f;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q)
        if (am[p * g.Q + q] == self) acc += go[p * g.Q + q];
    gx[i] = acc;
  }
}

// Padded cells count in the divisor: out = (sum of the in-image cells) / (kh kw).
__global__ void avg_pool_forward_kernel(float* out, const float* x, int64_t total, PoolGeom g) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t q = i % g.Q, p = (i / g.Q) % g.P, plane = i / (g.P * g.Q);
    const float* xp = x + plane * g.H * g.W;
    const int64_t hs = p * g.sh - g.ph, ws = q * g.sw - g.pw;
    const int64_t h0 = ::max(hs, int64_t(0)), h1 = ::min(hs + g.kh, g.H), w0 = ::max(ws, int64_t(0)),
                  w1 = ::min(ws + g.kw, g.W);
    float s = 0.f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += xp[h * g.W + w];
    out[i] = s / static_cast<float>(g.kh * g.kw);
  }
}

// d out[p,q] / d x[h,w] = 1/(kh kw) for every window covering (h, w).
__global__ void avg_pool_backward_kernel(float* gx, const float* gout, int64_t total, PoolGeom g) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.H * g.W);
    int64_t p0, p1, q0, q1;
    covering(h, g.kh, g.sh, g.ph, g.P, p0, p1);
    covering(w, g.kw, g.sw, g.pw, g.Q, q0, q1);
    const float* go = gout + plane * g.P * g.Q;
    float acc = 0.f;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q) acc += go[p * g.Q + q];
    gx[i] = acc / static_cast<float>(g.kh * g.kw);
  }
}

// out[plane] = mean of its L values: one block per plane, double accumulation, fixed-order reduction.
__global__ void global_avg_pool_forward_kernel(float* out, const float* x, int64_t NC, int64_t L) {
  for (int64_t plane = blockIdx.x; plane < NC; plane += gridDim.x) {
    double s = 0;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) s += x[plane * L + j];
    s = detail::block_sum(s);
    if (threadIdx.x == 0) out[plane] = static_cast<float>(s / static_cast<double>(L));
  }
}

__global__ void global_avg_pool_backward_kernel(float* gx, const float* gout, int64_t n, int64_t L) {
  const float inv = 1.f / static_cast<float>(L);
  GLIMPSE_GRID_LOOP(i, n) gx[i] = gout[i / L] * inv;
}

// relu + 2x2/2 max pool, fused, with the CPU's window rule (core/ops/pool2d.h).
// Forward: one thread per output cell of the [planes, P, Q] output, P = H / 2, Q = W / 2.
__global__ void relu_max_pool2x2_forward_kernel(float* out, const float* x, int64_t total, int64_t H, int64_t W,
                                                int64_t P, int64_t Q) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t q = i % Q, p = (i / Q) % P, plane = i / (P * Q);
    const float* r0 = x + plane * H * W + 2 * p * W + 2 * q;
    const float* r1 = r0 + W;
    out[i] = relu_pool::max4(r0[0], r0[1], r1[0], r1[1]);
  }
}

// Backward: one thread per input cell, which writes its gradient (the window's, if the rule picks
// this cell and passes it; else 0). Every cell is written, those outside every window (the last
// row or column of an odd size) included: an overwrite, as the CPU twin, with no zero fill first.
__global__ void relu_max_pool2x2_backward_kernel(float* gx, const float* gout, const float* x, int64_t total, int64_t H,
                                                 int64_t W, int64_t P, int64_t Q, ReluRule rule) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t w = i % W, h = (i / W) % H, plane = i / (H * W);
    const int64_t p = h / 2, q = w / 2;
    float g = 0.f;
    if (p < P && q < Q) {
      const float* r0 = x + plane * H * W + 2 * p * W + 2 * q;
      const float* r1 = r0 + W;
      const float a = r0[0], b = r0[1], c = r1[0], e = r1[1];
      const int cell = static_cast<int>((h - 2 * p) * 2 + (w - 2 * q));
      if (relu_pool::first_argmax4(a, b, c, e) == cell)
        g = relu_pool::passed(relu_pool::max4(a, b, c, e), gout[(plane * P + p) * Q + q], rule);
    }
    gx[i] = g;
  }
}

}  // namespace

void relu_max_pool2x2_forward(float* out, const float* x, int64_t planes, int64_t H, int64_t W, cudaStream_t s) {
  GLIMPSE_CHECK(planes >= 0 && H >= 0 && W >= 0, "cuda::relu_max_pool2x2_forward: bad sizes planes=", planes, " H=", H,
                " W=", W);
  const int64_t P = H / 2, Q = W / 2, total = planes * P * Q;
  detail::launch_elements("relu_max_pool2x2_forward_kernel", total, s, relu_max_pool2x2_forward_kernel, out, x, total,
                          H, W, P, Q);
}

void relu_max_pool2x2_backward(float* gx, const float* gout, const float* x, int64_t planes, int64_t H, int64_t W,
                               ReluRule rule, cudaStream_t s) {
  GLIMPSE_CHECK(planes >= 0 && H >= 0 && W >= 0, "cuda::relu_max_pool2x2_backward: bad sizes planes=", planes, " H=", H,
                " W=", W);
  const int64_t total = planes * H * W;
  detail::launch_elements("relu_max_pool2x2_backward_kernel", total, s, relu_max_pool2x2_backward_kernel, gx, gout, x,
                          total, H, W, H / 2, W / 2, rule);
}

void max_pool2d_forward(float* out, int32_t* argmax, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                        const Pool2dOptions& opt, cudaStream_t s) {
  const PoolGeom g = geometry(H, W, opt, "max_pool2d_forward");
  GLIMPSE_CHECK(H * W <= INT32_MAX, "cuda::max_pool2d_forward: a ", H, "x", W, " plane is too large for int32 indices");
  const int64_t total = N * C * g.P * g.Q;
  detail::launch_elements("max_pool_forward_kernel", total, s, max_pool_forward_kernel, out, argmax, x, total, g);
}

void max_pool2d_backward(float* gx, const float* gout, const int32_t* argmax, int64_t N, int64_t C, int64_t H,
                         int64_t W, const Pool2dOptions& opt, cudaStream_t s) {
  const PoolGeom g = geometry(H, W, opt, "max_pool2d_backward");
  GLIMPSE_CHECK(argmax, "cuda::max_pool2d_backward: needs the argmax offsets written by max_pool2d_forward");
  const int64_t total = g.P > 0 && g.Q > 0 ? N * C * H * W : 0;
  detail::launch_elements("max_pool_backward_kernel", total, s, max_pool_backward_kernel, gx, gout, argmax, total, g);
}

void avg_pool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                        const Pool2dOptions& opt, cudaStream_t s) {
  const PoolGeom g = geometry(H, W, opt, "avg_pool2d_forward");
  const int64_t total = N * C * g.P * g.Q;
  detail::launch_elements("avg_pool_forward_kernel", total, s, avg_pool_forward_kernel, out, x, total, g);
}

void avg_pool2d_backward(float* gx, const float* gout, int64_t N, int64_t C, int64_t H, int64_t W,
                         const Pool2dOptions& opt, cudaStream_t s) {
  const PoolGeom g = geometry(H, W, opt, "avg_pool2d_backward");
  const int64_t total = g.P > 0 && g.Q > 0 ? N * C * H * W : 0;
  detail::launch_elements("avg_pool_backward_kernel", total, s, avg_pool_backward_kernel, gx, gout, total, g);
}

void global_avg_pool_forward(float* out, const float* x, int64_t NC, int64_t L, cudaStream_t s) {
  GLIMPSE_CHECK(NC >= 0 && L > 0, "cuda::global_avg_pool_forward: bad sizes NC=", NC, " L=", L);
  detail::launch_rows("global_avg_pool_forward_kernel", NC, s, global_avg_pool_forward_kernel, out, x, NC, L);
}

void global_avg_pool_backward(float* gx, const float* gout, int64_t NC, int64_t L, cudaStream_t s) {
  GLIMPSE_CHECK(NC >= 0 && L > 0, "cuda::global_avg_pool_backward: bad sizes NC=", NC, " L=", L);
  detail::launch_elements("global_avg_pool_backward_kernel", NC * L, s, global_avg_pool_backward_kernel, gx, gout,
                          NC * L, L);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace pool2d_slots {

void max_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt) {
  const auto guard = on_device_of(out);
  cuda::max_pool2d_forward(device_data(out), nullptr, device_data(x), x.size(0), x.size(1), x.size(2), x.size(3), opt);
}

// The window argmax of x (first maximal cell), recomputed as the CPU twin recomputes it.
DeviceBuffer window_argmax(const Tensor& x, const Shape& out_shape, const Pool2dOptions& opt) {
  const int64_t n_out = shape_numel(out_shape);
  DeviceBuffer argmax(static_cast<size_t>(n_out) * sizeof(int32_t), x.device().index);
  DeviceBuffer scratch(static_cast<size_t>(n_out) * sizeof(float), x.device().index);
  cuda::max_pool2d_forward(scratch.as<float>(), argmax.as<int32_t>(), device_data(x), x.size(0), x.size(1), x.size(2),
                           x.size(3), opt);
  return argmax;
}

void max_pool2d_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const Pool2dOptions& opt) {
  const auto guard = on_device_of(gx);
  const DeviceBuffer argmax = window_argmax(x, gout.shape(), opt);
  cuda::max_pool2d_backward(device_data(gx), device_data(gout), argmax.as<int32_t>(), x.size(0), x.size(1), x.size(2),
                            x.size(3), opt);
}

// One fused kernel each way, with the CPU's window rule (kernels above).
void relu_max_pool2x2_forward(Tensor& out, const Tensor& x) {
  const auto guard = on_device_of(out);
  cuda::relu_max_pool2x2_forward(device_data(out), device_data(x), x.size(0) * x.size(1), x.size(2), x.size(3));
}

void relu_max_pool2x2_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  const auto guard = on_device_of(gx);
  cuda::relu_max_pool2x2_backward(device_data(gx), device_data(gout), device_data(x), x.size(0) * x.size(1), x.size(2),
                                  x.size(3), rule);
}

void avg_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt) {
  const auto guard = on_device_of(out);
  cuda::avg_pool2d_forward(device_data(out), device_data(x), x.size(0), x.size(1), x.size(2), x.size(3), opt);
}

void avg_pool2d_backward(Tensor& gx, const Tensor& gout, const Pool2dOptions& opt) {
  const auto guard = on_device_of(gx);
  cuda::avg_pool2d_backward(device_data(gx), device_data(gout), gx.size(0), gx.size(1), gx.size(2), gx.size(3), opt);
}

void global_avg_pool_forward(Tensor& out, const Tensor& x) {
  const auto guard = on_device_of(out);
  cuda::global_avg_pool_forward(device_data(out), device_data(x), x.size(0) * x.size(1), x.size(2) * x.size(3));
}

void global_avg_pool_backward(Tensor& gx, const Tensor& gout) {
  const auto guard = on_device_of(gx);
  cuda::global_avg_pool_backward(device_data(gx), device_data(gout), gx.size(0) * gx.size(1), gx.size(2) * gx.size(3));
}

}  // namespace pool2d_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_pool2d(DeviceKernels& k) {
  k.max_pool2d_forward = &pool2d_slots::max_pool2d_forward;
  k.max_pool2d_backward = &pool2d_slots::max_pool2d_backward;
  k.relu_max_pool2x2_forward = &pool2d_slots::relu_max_pool2x2_forward;
  k.relu_max_pool2x2_backward = &pool2d_slots::relu_max_pool2x2_backward;
  k.avg_pool2d_forward = &pool2d_slots::avg_pool2d_forward;
  k.avg_pool2d_backward = &pool2d_slots::avg_pool2d_backward;
  k.global_avg_pool_forward = &pool2d_slots::global_avg_pool_forward;
  k.global_avg_pool_backward = &pool2d_slots::global_avg_pool_backward;
}

}  // namespace glimpse::cuda
