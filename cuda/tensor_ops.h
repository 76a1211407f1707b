// The Tensor-level CUDA twins of the CPU kernels of core/ops: same names, same signatures, the same
// kernel contract (core/dispatch.h: shapes validated by the autograd op; forward and backward
// overwrite what they write). Each one takes the device pointers of its (contiguous, CUDA) tensors,
// makes the tensors' device current and calls the launcher of cuda/kernels.h, the cuDNN wrappers
// or cuBLAS. register_kernels() puts them into core's CUDA table (core/dispatch.h), which is how
// autograd reaches them; nothing else calls them directly. What the libraries refuse and the CPU
// accepts (empty batches for cuDNN, K = 0 for cuBLAS) is handled here, before the call.
#pragma once
#include "core/tensor.h"
#include "cuda/runtime.h"

namespace glimpse::cuda {

// Fills core's CUDA kernel table. Called by init() once a device is usable; idempotent.
void register_kernels();

// The device pointer of a contiguous tensor on a CUDA device (Tensor::data() is CPU-only by design).
float* device_data(const Tensor& t);
// device_data, or null for an undefined (optional) tensor.
float* device_data_or_null(const Tensor& t);
// Makes t's device the current one for the scope.
inline DeviceGuard on_device_of(const Tensor& t) { return DeviceGuard(t.device().index); }

// ---- cuBLAS (cuda/gemm.cpp; CPU: core/ops/gemm.cpp) ----
// Row-major C [M,N] = alpha op(A) op(B) + beta C, the twin of core/ops/gemm.h's gemm, FP32 (cuBLAS's
// default math mode: no TF32 unless the process opts in).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void matmul_forward(Tensor& out, const Tensor& a, const Tensor& b);
void matmul_backward(Tensor& ga, Tensor& gb, const Tensor& g, const Tensor& a, const Tensor& b);
void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(Tensor& gx, Tensor& gw, Tensor& gb, const Tensor& g, const Tensor& x, const Tensor& w);
void add_scaled(Tensor& y, const Tensor& x, float alpha);

}  // namespace glimpse::cuda
