// matmul, linear and y += alpha x through cuBLAS: the GPU twins of core/ops/gemm.cpp and
// core/ops/elementwise.cpp's add_scaled, same names and contracts (cuda/tensor_ops.h).
//
// The CUDA twin of core/ops/gemm.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_gemm).
#include "core/ops/gemm.h"

#include <cublas_v2.h>

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

// cuBLAS is column-major. A row-major X [r, c] (leading dimension ld) is the column-major X^T with
// the same ld, so the row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: the operands swap places and keep their own transpose flags.
// K == 0 (an empty inner dimension) leaves C = beta C, as the CPU's gemm does: cuBLAS would be handed a
// leading dimension of 0 for A or B, which it refuses (it needs >= 1). cublasSgeam computes
// C = beta C + 0 C in place and, as BLAS, does not read C when beta == 0, so NaN garbage becomes zeros.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    const float zero = 0.f;
    CUBLAS_CHECK(cublasSgeam(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M), &beta,
                             C, static_cast<int>(ldc), &zero, C, static_cast<int>(ldc), C, static_cast<int>(ldc)));
    return;
  }
  CUBLAS_CHECK(cublasSgemm_64(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                              N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

void matmul_forward(Tensor& out, const Tensor& a, const Tensor& b) {
  const auto guard = on_device_of(out);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  gemm(false, false, M, N, K, 1.f, device_data(a), K, device_data(b), N, 0.f, device_data(out), N);
}

void matmul_backward(Tensor& ga, Tensor& gb, const Tensor& g, const Tensor& a, const Tensor& b) {
  const auto guard = on_device_of(g);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  if (ga.defined()) gemm(false, true, M, K, N, 1.f, device_data(g), N, device_data(b), N, 0.f, device_data(ga), K);
  if (gb.defined()) gemm(true, false, K, N, M, 1.f, device_data(a), K, device_data(g), N, 0.f, device_data(gb), N);
}

// y = x w^T, then the bias added to every row in place (bias_add over [N, O, 1]).
void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b) {
  const auto guard = on_device_of(y);
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  float* py = device_data(y);
  gemm(false, true, N, O, I, 1.f, device_data(x), I, device_data(w), I, 0.f, py, O);
  if (b.defined()) bias_add_forward(py, py, device_data(b), N, O, 1);
}

void linear_backward(Tensor& gx, Tensor& gw, Tensor& gb, const Tensor& g, const Tensor& x, const Tensor& w) {
  const auto guard = on_device_of(g);
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  if (gx.defined()) gemm(false, false, N, I, O, 1.f, device_data(g), O, device_data(w), I, 0.f, device_data(gx), I);
  if (gw.defined()) gemm(true, false, O, I, N, 1.f, device_data(g), O, device_data(x), I, 0.f, device_data(gw), I);
  if (gb.defined()) bias_add_backward(device_data(gb), device_data(g), N, O, 1);
}

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_gemm(DeviceKernels& k) {
  k.matmul_forward = &matmul_forward;
  k.matmul_backward = &matmul_backward;
  k.linear_forward = &linear_forward;
  k.linear_backward = &linear_backward;
}

}  // namespace glimpse::cuda
