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
#pragma once
#include "core/ops/activation.h"
#include "core/ops/conv_options.h"
#include "core/tensor.h"

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
// per-window rule, shared with the CUDA twin: core/ops/relu_max_pool2x2_rule.h.
void relu_max_pool2x2_forward(Tensor& out, const Tensor& x);
void relu_max_pool2x2_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule);

void avg_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt);
void avg_pool2d_backward(Tensor& gx, const Tensor& gout, const Pool2dOptions& opt);

void global_avg_pool_forward(Tensor& out, const Tensor& x);
void global_avg_pool_backward(Tensor& gx, const Tensor& gout);

}  // namespace glimpse::cpu
