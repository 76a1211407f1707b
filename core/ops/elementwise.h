// Element-wise arithmetic with NumPy broadcasting (aligned at the trailing dimension, e.g.
// [N,C,H,W] with [1,C,1,1]), and the element-wise functions:
//   z = a + b : da = sum_to(g),        db = sum_to(g)
//   z = a - b : da = sum_to(g),        db = -sum_to(g)
//   z = a * b : da = sum_to(g * b),    db = sum_to(g * a)
//   z = a / b : da = sum_to(g / b),    db = -sum_to(g * a / b^2)
// sum_to undoes broadcasting by summing over the expanded dimensions (reduce_sum_to).
// CPU kernels and the differentiable ops in core/ops/elementwise.cpp, CUDA twins in
// core/ops/elementwise.cu; kernels follow the contract of core/dispatch.h (add_scaled updates y
// in place by name).
#pragma once

#include "core/tensor.h"

namespace glimpse {

enum class BinaryOp { Add, Sub, Mul, Div };
enum class UnaryOp { Neg, Exp, Log, Square, Abs, Sigmoid, Tanh };

// The broadcast shape of a and b (aligned at the trailing dimension); error names op and shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace glimpse

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

// out = a (op) b, out already has the broadcast shape.
void binary_forward(Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op);
// out = f(x); and out = s*x + t (scalars).
void unary_forward(Tensor& out, const Tensor& x, UnaryOp op);
void affine_forward(Tensor& out, const Tensor& x, float scale, float shift);
// out = sum of `in` over the dimensions in which `out`'s shape is broadcast to `in`'s.
void reduce_sum_to(Tensor& out, const Tensor& in);
// y += alpha * x, same shape, in place (Tensor::add_: gradient accumulation, optimizers).
void add_scaled(Tensor& y, const Tensor& x, float alpha);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor square(const Tensor& a);
Tensor abs(const Tensor& a);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator*(const Tensor& a, float s) { return mul_scalar(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator+(const Tensor& a, float s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// Sums `grad` over the broadcast dimensions so that it has `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& grad, const Shape& shape);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);

}  // namespace glimpse
