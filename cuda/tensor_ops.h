// What the ops' CUDA twins share. Each op's twin, core/ops/<op>.cu, holds the Tensor-level CUDA
// functions of its kernels: same names, same signatures, the same kernel contract as the CPU ones
// (core/dispatch.h: shapes validated by the differentiable op; forward and backward overwrite what
// they write). Each takes the device pointers of its (contiguous, CUDA) tensors, makes the tensors'
// device current and calls its launcher (cuda/kernels.h), the cuDNN wrappers or cuBLAS; its
// register_<op>() puts them into core's CUDA table, which is how dispatch() reaches them. What the
// libraries refuse and the CPU accepts (empty batches for cuDNN, K = 0 for cuBLAS) is handled there,
// before the call.
#pragma once
#include "core/dispatch.h"
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

// The ops with a CUDA twin, each registering its slots from core/ops/<op>.cu.
#define GLIMPSE_CUDA_OPS(X) \
  X(elementwise)            \
  X(activation) X(reduce) X(softmax) X(gemm) X(conv2d) X(batch_norm) X(pool2d) X(upsample) X(loss) X(shape) X(optim)
#define GLIMPSE_DECLARE_REGISTER(op) void register_##op(DeviceKernels& k);
GLIMPSE_CUDA_OPS(GLIMPSE_DECLARE_REGISTER)
#undef GLIMPSE_DECLARE_REGISTER

}  // namespace glimpse::cuda
