// Matrix multiply on row-major float buffers, through Eigen's blocked GEMM.
//   C[M,N] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T.
// Every GEMM in glimpse (linear layers, im2col convolution) goes through here, so a faster
// kernel later changes one place.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace glimpse {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// out[M,N] = a[M,K] b[K,N] (tensors, contiguous, CPU).
void matmul_forward(Tensor& out, const Tensor& a, const Tensor& b);

}  // namespace glimpse
