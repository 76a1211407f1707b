// Matrix products: matmul and the linear layer, on one row-major GEMM through Eigen's blocked
// kernel: C[M,N] = alpha op(A) op(B) + beta C, op(X) = X or X^T. Every GEMM in glimpse (linear
// layers, im2col convolution) goes through cpu::gemm, so a faster kernel changes one place.
//   matmul: y = a b;          da = g b^T,  db = a^T g
//   linear: y = x w^T + b;    dx = g w,    dw = g^T x,  db = sum over rows of g
// CPU kernels and the differentiable ops in core/ops/gemm.cpp, CUDA twins (cuBLAS) in
// core/ops/gemm.cu; kernels follow the contract of core/dispatch.h.
#pragma once
#include <cstdint>

#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// out[M,N] = a[M,K] b[K,N] (tensors, contiguous, CPU).
void matmul_forward(Tensor& out, const Tensor& a, const Tensor& b);
// ga [M,K] = g b^T,  gb [K,N] = a^T g  (g [M,N]); either may be undefined (not computed). Overwrite.
void matmul_backward(Tensor& ga, Tensor& gb, const Tensor& g, const Tensor& a, const Tensor& b);
// y [N,O] = x [N,I] w[O,I]^T + b[O] (b may be undefined).
void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b);
// gx = g w,  gw = g^T x,  gb = sum over rows of g (g [N,O]); any may be undefined. Overwrite.
void linear_backward(Tensor& gx, Tensor& gw, Tensor& gb, const Tensor& g, const Tensor& x, const Tensor& w);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor matmul(const Tensor& a, const Tensor& b);  // [M,K] x [K,N] -> [M,N]
// y = x W^T + b with x [N, in], W [out, in], b [out] (b may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace glimpse
