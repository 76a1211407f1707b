// Block copies behind concat and pad2d, CPU kernels (CUDA twins: cuda/tensor_ops.cpp, same names,
// kernels in cuda/shape.cu). The differentiable ops, which validate the shapes, are in
// autograd/functions/shape.cpp. Every tensor is contiguous; every kernel overwrites its output.
//
// concat along `dim`: x is the block [outer, len, inner] of out [outer, total, inner] that starts at
// `at` along dim.   forward: out[a, at + l, c] = x[a, l, c]     backward: gx[a, l, c] = gout[a, at + l, c]
// pad2d: x [planes, H, W] sits at (top, left) in out [planes, OH, OW], `value` everywhere else.
//   forward writes every cell of out;   backward: gx[p, h, w] = gout[p, top + h, left + w]
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace glimpse::cpu {

void concat_forward(Tensor& out, const Tensor& x, int64_t dim, int64_t at);
void concat_backward(Tensor& gx, const Tensor& gout, int64_t dim, int64_t at);
void pad2d_forward(Tensor& out, const Tensor& x, int64_t top, int64_t left, float value);
void pad2d_backward(Tensor& gx, const Tensor& gout, int64_t top, int64_t left);

}  // namespace glimpse::cpu
