// Bilinear resize kernels, the GPU twins of core/ops/upsample.cpp (conventions in
// core/ops/upsample.h), forward and backward side by side.
//
// Per axis, output index o reads the source coordinate
//   align_corners=true : src = o * (in-1)/(out-1)                 (scale 0 when out == 1)
//   align_corners=false: src = max(0, (o + 0.5) * in/out - 0.5)
// and the taps i0 = min(floor(src), in-1), i1 = i0 + (i0 < in-1), with weights l0 = 1 - l1,
// l1 = src - i0. The scale is computed on the host in float as the CPU does; the device evaluates
// src with explicitly rounded operations (__fmul_rn, __fadd_rn) so that nvcc does not contract
// them into an FMA, which would round differently and could move a tap. The CPU twin is compiled
// with -ffp-contract=off for the same reason (core/CMakeLists.txt), so both round each operation.
//
// Backward gathers: one thread per input cell sums w_h(oh, h) w_w(ow, w) gout[oh, ow] over the
// outputs that read it. Since i0(o) is non-decreasing in o, the outputs reading input index i are
// those with i0(o) in {i-1, i}, a contiguous range; the range is found from the inverse of src
// (widened by one on each side) and each candidate's weight is recomputed exactly (0 if it does not
// read i). Deterministic, no atomics.
//
// The CUDA twin of core/ops/upsample.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_upsample).
#include "core/ops/upsample.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

struct Axis {
  int64_t in, out;
  float scale;
  bool align;
};

Axis make_axis(int64_t in, int64_t out, bool align) {
  float scale;
  if (align)
    scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f;
  else
    scale = static_cast<float>(in) / static_cast<float>(out);
  return {in, out, scale, align};
}

struct Tap {
  int64_t i0, i1;
  float l0, l1;
};

__device__ inline Tap tap(const Axis& a, int64_t o) {
  float src;
  if (a.align) {
    src = __fmul_rn(a.scale, static_cast<float>(o));
  } else {
    src = __fadd_rn(__fmul_rn(a.scale, __fadd_rn(static_cast<float>(o), 0.5f)), -0.5f);
    if (src < 0.f) src = 0.f;
  }
  const int64_t i0 = ::min(static_cast<int64_t>(src), a.in - 1);
  const int64_t i1 = i0 + (i0 < a.in - 1 ? 1 : 0);
  const float l1 = __fadd_rn(src, -static_cast<float>(i0));
  return {i0, i1, 1.f - l1, l1};
}

// Weight with which output o reads input i along this axis (0 if it does not).
__device__ inline float weight(const Axis& a, int64_t o, int64_t i) {
  const Tap t = tap(a, o);
  return (t.i0 == i ? t.l0 : 0.f) + (t.i1 == i ? t.l1 : 0.f);
}

// Outputs [lo, hi] that may read input i: those with src(o) in [i-1, i+1), widened by one.
__device__ inline void readers(const Axis& a, int64_t i, int64_t& lo, int64_t& hi) {
  if (a.scale == 0.f) {  // every output reads index 0
    lo = 0;
    hi = a.out - 1;
    return;
  }
  const double s = a.scale;
  double first, last;
  if (a.align) {
    first = (i - 1) / s;
    last = (i + 1) / s;
  } else {
    first = (i - 0.5) / s - 0.5;
    last = (i + 1.5) / s - 0.5;
  }
  lo = ::max(static_cast<int64_t>(::floor(first)) - 1, int64_t(0));
  hi = ::min(static_cast<int64_t>(::ceil(last)) + 1, a.out - 1);
  if (i == a.in - 1) hi = a.out - 1;  // the clamped tail (src beyond in-1) reads the last index
}

__global__ void upsample_forward_kernel(float* out, const float* x, int64_t total, Axis ah, Axis aw) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t ow = i % aw.out, oh = (i / aw.out) % ah.out, plane = i / (ah.out * aw.out);
    const Tap a = tap(ah, oh), b = tap(aw, ow);
    const float* xp = x + plane * ah.in * aw.in;
    const float* r0 = xp + a.i0 * aw.in;
    const float* r1 = xp + a.i1 * aw.in;
    out[i] = a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1]) + a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
  }
}

__global__ void upsample_backward_kernel(float* gx, const float* gout, int64_t total, Axis ah, Axis aw) {
  GLIMPSE_GRID_LOOP(i, total) {
    const int64_t w = i % aw.in, h = (i / aw.in) % ah.in, plane = i / (ah.in * aw.in);
    int64_t oh0, oh1, ow0, ow1;
    readers(ah, h, oh0, oh1);
    readers(aw, w, ow0, ow1);
    const float* g = gout + plane * ah.out * aw.out;
    float acc = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const float wh = weight(ah, oh, h);
      if (wh == 0.f) continue;
      float row = 0.f;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const float ww = weight(aw, ow, w);
        if (ww != 0.f) row += ww * g[oh * aw.out + ow];
      }
      acc += wh * row;
    }
    gx[i] = acc;
  }
}

void check_sizes(int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW, const char* op) {
  GLIMPSE_CHECK(NC >= 0 && H > 0 && W > 0 && OH > 0 && OW > 0, "cuda::", op, ": bad sizes NC=", NC, " ", H, "x", W,
                " -> ", OH, "x", OW);
}

}  // namespace

void upsample_bilinear_forward(float* out, const float* x, int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                               bool align_corners, cudaStream_t s) {
  check_sizes(NC, H, W, OH, OW, "upsample_bilinear_forward");
  detail::launch_elements("upsample_forward_kernel", NC * OH * OW, s, upsample_forward_kernel, out, x, NC * OH * OW,
                          make_axis(H, OH, align_corners), make_axis(W, OW, align_corners));
}

void upsample_bilinear_backward(float* gx, const float* gout, int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                bool align_corners, cudaStream_t s) {
  check_sizes(NC, H, W, OH, OW, "upsample_bilinear_backward");
  detail::launch_elements("upsample_backward_kernel", NC * H * W, s, upsample_backward_kernel, gx, gout, NC * H * W,
                          make_axis(H, OH, align_corners), make_axis(W, OW, align_corners));
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace upsample_slots {

void upsample_bilinear_forward(Tensor& out, const Tensor& x, bool align_corners) {
  const auto guard = on_device_of(out);
  cuda::upsample_bilinear_forward(device_data(out), device_data(x), x.size(0) * x.size(1), x.size(2), x.size(3),
                                  out.size(2), out.size(3), align_corners);
}

void upsample_bilinear_backward(Tensor& gx, const Tensor& gout, bool align_corners) {
  const auto guard = on_device_of(gx);
  cuda::upsample_bilinear_backward(device_data(gx), device_data(gout), gx.size(0) * gx.size(1), gx.size(2), gx.size(3),
                                   gout.size(2), gout.size(3), align_corners);
}

}  // namespace upsample_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_upsample(DeviceKernels& k) {
  k.upsample_bilinear_forward = &upsample_slots::upsample_bilinear_forward;
  k.upsample_bilinear_backward = &upsample_slots::upsample_bilinear_backward;
}

}  // namespace glimpse::cuda
