// Shape operations: reshape, flatten, concat, pad2d, narrow0. reshape and flatten are views when
// x is contiguous; concat and pad2d run block-copy kernels (every tensor contiguous, every kernel
// overwrites its output):
//
// concat along `dim`: x is the block [outer, len, inner] of out [outer, total, inner] that starts at
// `at` along dim.   forward: out[a, at + l, c] = x[a, l, c]     backward: gx[a, l, c] = gout[a, at + l, c]
// pad2d: x [planes, H, W] sits at (top, left) in out [planes, OH, OW], `value` everywhere else.
//   forward writes every cell of out;   backward: gx[p, h, w] = gout[p, top + h, left + w]
//
// CPU kernels and the differentiable ops in core/ops/shape.cpp, CUDA twins in core/ops/shape.cu.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void concat_forward(Tensor& out, const Tensor& x, int64_t dim, int64_t at);
void concat_backward(Tensor& gx, const Tensor& gout, int64_t dim, int64_t at);
void pad2d_forward(Tensor& out, const Tensor& x, int64_t top, int64_t left, float value);
void pad2d_backward(Tensor& gx, const Tensor& gout, int64_t top, int64_t left);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor reshape(const Tensor& x, const Shape& shape);  // one dim may be -1
Tensor flatten(const Tensor& x);                      // [N, ...] -> [N, prod(...)]
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Constant padding of the last two dimensions (H, W) of an NCHW tensor.
Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right, float value = 0.f);
// Rows [begin, end) of dim 0, with gradient (Tensor::slice is the tape-free view).
Tensor narrow0(const Tensor& x, int64_t begin, int64_t end);

}  // namespace glimpse
