// Matrix multiply on row-major float buffers, through Eigen's blocked GEMM.
//   C[M,N] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T.
// Every GEMM in glimpse (linear layers, im2col convolution) goes through here, so a faster
// kernel later changes one place. The CUDA twins (cuBLAS) are in cuda/gemm.cpp, same names.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace glimpse {

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

}  // namespace glimpse
