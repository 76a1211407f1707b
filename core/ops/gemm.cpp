#include "core/ops/gemm.h"

#include <Eigen/Core>

#include "core/error.h"

namespace glimpse {
namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using ConstMap = Eigen::Map<const RowMat, Eigen::Unaligned, Stride>;
using MutMap = Eigen::Map<RowMat, Eigen::Unaligned, Stride>;
}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  MutMap c(C, M, N, Stride(ldc));
  if (M == 0 || N == 0) return;
  if (beta == 0.f) c.setZero();
  else if (beta != 1.f) c *= beta;
  if (K == 0) return;
  // A stored as [M,K] (or [K,M] when transposed); likewise B.
  ConstMap a(A, trans_a ? K : M, trans_a ? M : K, Stride(lda));
  ConstMap b(B, trans_b ? N : K, trans_b ? K : N, Stride(ldb));
  // noalias(): C never aliases A or B here, so Eigen may write straight into C.
  if (!trans_a && !trans_b) c.noalias() += alpha * a * b;
  else if (trans_a && !trans_b) c.noalias() += alpha * a.transpose() * b;
  else if (!trans_a && trans_b) c.noalias() += alpha * a * b.transpose();
  else c.noalias() += alpha * a.transpose() * b.transpose();
}

void matmul_forward(Tensor& out, const Tensor& a, const Tensor& b) {
  check_cpu(a, "matmul");
  check_cpu(b, "matmul");
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  gemm(false, false, M, N, K, 1.f, a.data(), K, b.data(), N, 0.f, out.data(), N);
}

}  // namespace glimpse
