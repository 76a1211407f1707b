// Device dispatch: one table of kernels per non-CPU device type, filled by that backend.
//
// Why a table: core must not depend on cuda/ (cuda/ links core), yet an op given CUDA tensors has
// to reach the CUDA kernel. As with the allocator registry (core/storage.h), core declares the
// slots and the backend fills them: glimpse::cuda::init() (cuda/runtime.h) registers the CUDA
// allocator and, with it, every CUDA kernel it has (cuda/tensor_ops.cpp). A CPU-only build, or a
// CUDA build on a machine with no GPU, leaves every slot empty.
//
// Each slot has exactly the signature of the CPU kernel of the same name (core/ops/<op>.h, namespace
// glimpse::cpu), so the compiler checks that the two backends agree; dispatch() deduces one
// function type from both. Each op's CUDA twins register themselves in core/ops/<op>.cu.
//
// THE KERNEL CONTRACT, for every slot on every backend (CPU, CUDA):
//   - a forward kernel overwrites its outputs; a backward kernel overwrites every element of each
//     gradient it is given (undefined gradients are not wanted and not written). Nothing reads an
//     output's old contents, so callers pass Tensor::empty buffers, never zero-filled ones; a
//     kernel that adds up contributions (col2im, overlapping windows) zeroes its output itself;
//   - the exceptions are in-place updates by name: add_scaled (y += a x) and the optimizer steps;
//   - inputs are contiguous and on the slot's device; the autograd op validates shapes first.
// tests/test_op_table.cpp checks the contract for every op: each runs with Tensor::empty buffers
// poisoned with NaN (set_poison_empty) and must give the same bits as with clean buffers.
//
// Cost on the CPU: one branch on the device type, nothing else (no lookup, no device checks: every
// CPU kernel reads through Tensor::data(), which refuses a tensor that is not on the CPU). On any
// other device dispatch() checks that every tensor argument is on that device, then calls the slot.
//
// Errors: a slot left empty -> "relu: no CUDA implementation registered (built without CUDA?)";
// operands on two devices -> "add: operands on cpu and cuda:0; ...".
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/ops/activation.h"
#include "core/ops/batch_norm.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/gemm.h"
#include "core/ops/loss.h"
#include "core/ops/optim.h"
#include "core/ops/pool2d.h"
#include "core/ops/reduce.h"
#include "core/ops/shape.h"
#include "core/ops/softmax.h"
#include "core/ops/upsample.h"
#include "core/tensor.h"

// Every kernel with a device slot, grouped by op (core/ops/<op>.h declares each in glimpse::cpu).
#define GLIMPSE_KERNELS(X)                                                                                         \
  /* elementwise */ X(binary_forward) X(unary_forward) X(affine_forward) X(reduce_sum_to)                          \
      X(add_scaled) /* activation */ X(relu_forward) X(relu_backward) X(leaky_relu_forward)                        \
          X(leaky_relu_backward) /* reduce */ X(sum_dim_forward) X(sum_dim_backward) X(max_dim_forward)            \
              X(max_dim_backward) /* softmax */ X(softmax_forward) X(softmax_backward) X(log_softmax_forward)      \
                  X(log_softmax_backward) /* gemm */ X(matmul_forward) X(matmul_backward) X(linear_forward)        \
                      X(linear_backward) /* conv2d */ X(conv2d_forward) X(conv2d_backward_data)                    \
                          X(conv2d_backward_filter) /* batch_norm */ X(batch_norm_forward_train)                   \
                              X(batch_norm_forward_eval) X(batch_norm_backward) /* pool2d */ X(max_pool2d_forward) \
                                  X(max_pool2d_backward) X(relu_max_pool2x2_forward) X(relu_max_pool2x2_backward)  \
                                      X(avg_pool2d_forward) X(avg_pool2d_backward) X(global_avg_pool_forward)      \
                                          X(global_avg_pool_backward) /* upsample */ X(upsample_bilinear_forward)  \
                                              X(upsample_bilinear_backward) /* loss */ X(cross_entropy_forward)    \
                                                  X(cross_entropy_backward) X(bce_with_logits_forward)             \
                                                      X(bce_with_logits_backward) /* shape */ X(concat_forward)    \
                                                          X(concat_backward) X(pad2d_forward)                      \
                                                              X(pad2d_backward) /* optim */ X(sgd_step) X(adam_step)

namespace glimpse {

// One slot per kernel, typed as its CPU twin: a device kernel of another signature does not compile.
struct DeviceKernels {
#define GLIMPSE_SLOT(name) decltype(&cpu::name) name = nullptr;
  GLIMPSE_KERNELS(GLIMPSE_SLOT)
#undef GLIMPSE_SLOT
};

// The CUDA table (every slot empty until a CUDA backend registers its kernels).
DeviceKernels& cuda_kernels();

namespace detail {
[[noreturn]] void no_device_kernel(const char* op, Device device);
[[noreturn]] void operands_on_two_devices(const char* op, Device a, Device b);

template <typename T>
void check_operand(const T&, Device, const char*) {}  // not a tensor
inline void check_operand(const Tensor& t, Device device, const char* op) {
  if (t.defined() && t.device() != device) operands_on_two_devices(op, device, t.device());
}
}  // namespace detail

// Runs `op` on `device`: the CPU kernel `cpu_fn` there, else the kernel registered in `slot` of the
// device's table, after checking that every tensor argument is on `device`. GLIMPSE_KERNEL(name)
// names both from the kernel's name, e.g.
//   dispatch("relu", x.device(), GLIMPSE_KERNEL(relu_forward), out, x);
// Arguments are passed as they are: default arguments of the CPU kernel must be spelled out.
template <typename Fn, typename... Args>
void dispatch(const char* op, Device device, Fn cpu_fn, Fn DeviceKernels::*slot, Args&&... args) {
  if (device.is_cpu()) [[likely]] {
    cpu_fn(std::forward<Args>(args)...);
    return;
  }
  (detail::check_operand(args, device, op), ...);
  Fn fn = cuda_kernels().*slot;
  if (!fn) detail::no_device_kernel(op, device);
  fn(std::forward<Args>(args)...);
}

}  // namespace glimpse

#define GLIMPSE_KERNEL(name) &::glimpse::cpu::name, &::glimpse::DeviceKernels::name
