// The per-window rule of the fused relu + 2x2/2 max pool (core/ops/pool2d.h relu_max_pool2x2), as
// plain functions that compile for the host and, under nvcc, for the device: the CUDA kernels
// (cuda/pool2d.cu) call them, and tests/test_pool_ops.cpp checks them on the host against the CPU
// kernels, window for window, NaN and ties included -- so the GPU's window logic is tested on
// machines without a GPU.
//
// A window holds the cells a b / c e (row-major). With relu(v) = v > 0 ? v : 0 (so relu(NaN) = 0):
//   forward:  out = max(relu a, relu b, relu c, relu e)   -- the max of the relu'd cells, not relu of
//             the max: a NaN cell must not hide a positive neighbour;
//   backward: the gradient g of the window goes to the first cell whose relu is maximal (the first
//             cell when none is positive), passed or blocked by the ReLU rule evaluated at that
//             cell: x > 0 there is "out > 0" (core/ops/activation.h):
//               Standard: g [out > 0];  Deconvnet: g [g > 0];  Guided: g [out > 0] [g > 0].
#pragma once
#include "core/ops/activation.h"  // ReluRule

#if defined(__CUDACC__)
#define GLIMPSE_HOST_DEVICE __host__ __device__
#else
#define GLIMPSE_HOST_DEVICE
#endif

namespace glimpse::relu_pool {

GLIMPSE_HOST_DEVICE inline float relu0(float v) { return v > 0.f ? v : 0.f; }

// relu'd values hold no NaN, so plain comparisons give the maximum.
GLIMPSE_HOST_DEVICE inline float max4(float a, float b, float c, float e) {
  const float ra = relu0(a), rb = relu0(b), rc = relu0(c), re = relu0(e);
  const float m0 = ra < rb ? rb : ra, m1 = rc < re ? re : rc;
  return m0 < m1 ? m1 : m0;
}

// 0..3: the first cell (row-major) whose relu'd value is the window's maximum.
GLIMPSE_HOST_DEVICE inline int first_argmax4(float a, float b, float c, float e) {
  const float ra = relu0(a), rb = relu0(b), rc = relu0(c), re = relu0(e);
  if (ra >= rb && ra >= rc && ra >= re) return 0;
  if (rb >= rc && rb >= re) return 1;
  return rc >= re ? 2 : 3;
}

// The gradient the picked cell receives: g, or 0 where the rule blocks it (out = max4 of the window).
GLIMPSE_HOST_DEVICE inline float passed(float out, float g, ReluRule rule) {
  const bool need_positive = rule != ReluRule::Deconvnet;   // Standard, Guided: x > 0 at the cell
  const bool need_positive_grad = rule != ReluRule::Standard;  // Deconvnet, Guided: g > 0
  return (!need_positive || out > 0.f) && (!need_positive_grad || g > 0.f) ? g : 0.f;
}

}  // namespace glimpse::relu_pool
