// Element-wise CPU kernels with NumPy broadcasting. Outputs first. The CUDA twins live in
// cuda/tensor_ops.cpp under the same names (kernels in cuda/elementwise.cu), behind core/dispatch.h.
#pragma once
#include "core/tensor.h"

namespace glimpse {

enum class BinaryOp { Add, Sub, Mul, Div };
enum class UnaryOp { Neg, Exp, Log, Square, Abs, Sigmoid, Tanh };

// The broadcast shape of a and b (aligned at the trailing dimension); error names op and shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// out = a (op) b, out already has the broadcast shape.
void binary_forward(Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op);
// out = f(x); and out = s*x + t (scalars).
void unary_forward(Tensor& out, const Tensor& x, UnaryOp op);
void affine_forward(Tensor& out, const Tensor& x, float scale, float shift);
// out = sum of `in` over the dimensions in which `out`'s shape is broadcast to `in`'s.
void reduce_sum_to(Tensor& out, const Tensor& in);
// y += alpha * x, same shape, in place (Tensor::add_: gradient accumulation, optimizers).
void add_scaled(Tensor& y, const Tensor& x, float alpha);

}  // namespace glimpse
