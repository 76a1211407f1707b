// 2-D pooling, CPU kernels (CUDA twins: cuda/, namespace glimpse::cuda, same names).
//
// Shapes: x [N, C, H, W] -> out [N, C, P, Q], P = floor((H + 2*pad_h - kernel_h) / stride_h) + 1
// (Q likewise; PyTorch's ceil_mode=False). The window of output (p, q) covers rows
// [p*sh - ph, p*sh - ph + kh) and columns [q*sw - pw, q*sw - pw + kw).
//
//   max: out[n,c,p,q] = max over the window's cells inside the image (padding is -inf). The
//        gradient goes to the first maximal cell in row-major window order (PyTorch's choice);
//        backward recomputes that argmax from x instead of storing indices, so both backends need
//        only x and gout (cuDNN's contract too).
//   avg: out[n,c,p,q] = (sum of the window's cells inside the image) / (kh*kw): padded cells count
//        in the divisor (PyTorch's count_include_pad=True; without ceil_mode every window has
//        exactly kh*kw cells of padded image). Backward spreads gout/(kh*kw) over the window.
//   global average: out [N, C] = mean over H, W; gx = gout / (H*W) everywhere.
//
// Contract (core/dispatch.h, every kernel): CPU, contiguous, shapes as above (the autograd op
// validates); forward overwrites `out`, backward overwrites every cell of gx (cells no window
// reaches get 0), so both take uninitialised buffers.
//
// The differentiable ops are in core/ops/pool2d.cpp beside the kernels; the CUDA twins in
// core/ops/pool2d.cu.
#pragma once

#include "core/ops/activation.h"
#include "core/ops/conv_options.h"
#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void max_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt);
void max_pool2d_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const Pool2dOptions& opt);

// ReLU then 2x2/stride-2 max pooling as one op, without materialising relu(x) (training of every
// VGG-style net runs this pair after each block):
//   forward  out = max_pool2d(relu(x)): the max of the relu'd cells (relu(NaN) = 0, so unlike
//            relu(max_pool2d(x)) a NaN never hides a positive neighbour)
//   backward gx  = relu_backward(max_pool2d_backward(gout), x, rule): the window's gradient v goes
//            to the argmax of relu(x) over the window (first maximal cell; a window with no
//            positive cell picks its first), kept where the rule lets it through -- Standard:
//            x_a > 0; Deconvnet: v > 0; Guided: both -- and 0 everywhere else.
// Bit-identical to running the two ops; odd H/W leave a last row/column with gradient 0. The
// per-window rule, shared with the CUDA twin: core/ops/pool2d.h.
void relu_max_pool2x2_forward(Tensor& out, const Tensor& x);
void relu_max_pool2x2_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule);

void avg_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt);
void avg_pool2d_backward(Tensor& gx, const Tensor& gout, const Pool2dOptions& opt);

void global_avg_pool_forward(Tensor& out, const Tensor& x);
void global_avg_pool_backward(Tensor& gx, const Tensor& gout);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt);
// max_pool2d(relu(x), 2x2, stride 2) as one op: the same values and gradients (under every ReLU
// rule), without materialising or saving relu(x) -- one memory pass less each way.
Tensor relu_max_pool2x2(const Tensor& x);
// Average over the window; padded cells count in the divisor (PyTorch's count_include_pad=True).
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
// [N, C, H, W] -> [N, C], the mean over H and W.
Tensor global_avg_pool(const Tensor& x);

}  // namespace glimpse

// The per-window rule of the fused relu + 2x2/2 max pool (core/ops/pool2d.h relu_max_pool2x2), as
// plain functions that compile for the host and, under nvcc, for the device: the CUDA kernels
// (core/ops/pool2d.cu) call them, and tests/test_pool_ops.cpp checks them on the host against the CPU
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
// relu'd values hold no NaN, so plain comparisons give the maximum.
// 0..3: the first cell (row-major) whose relu'd value is the window's maximum.
// The gradient the picked cell receives: g, or 0 where the rule blocks it (out = max4 of the window).
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
  const bool need_positive = rule != ReluRule::Deconvnet;      // Standard, Guided: x > 0 at the cell
  const bool need_positive_grad = rule != ReluRule::Standard;  // Deconvnet, Guided: g > 0
  return (!need_positive || out > 0.f) && (!need_positive_grad || g > 0.f) ? g : 0.f;
}

}  // namespace glimpse::relu_pool
