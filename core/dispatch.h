// Device dispatch: one table of kernels per non-CPU device type, filled by that backend.
//
// Why a table: core must not depend on cuda/ (cuda/ links core), yet an op given CUDA tensors has
// to reach the CUDA kernel. As with the allocator registry (core/storage.h), core declares the
// slots and the backend fills them: glimpse::cuda::init() (cuda/runtime.h) registers the CUDA
// allocator and, with it, every CUDA kernel it has (cuda/tensor_ops.cpp). A CPU-only build, or a
// CUDA build on a machine with no GPU, leaves every slot empty.
//
// Each slot has exactly the signature of the CPU kernel of the same name (core/ops/*.h), so the
// compiler checks that the two backends agree; dispatch() deduces one function type from both.
// CPU kernels of the same name: namespace glimpse (activation, elementwise, reduce, gemm) or
// glimpse::cpu (the others).
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
#include "core/ops/activation.h"    // ReluRule
#include "core/ops/conv_options.h"  // Conv2dOptions, Pool2dOptions
#include "core/ops/elementwise.h"   // BinaryOp, UnaryOp
#include "core/ops/reduce.h"        // DimSplit
#include "core/tensor.h"

namespace glimpse {

struct DeviceKernels {
  // ---- core/ops/elementwise.h (namespace glimpse), Tensor::add_ and scale_ ----
  void (*binary_forward)(Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) = nullptr;
  void (*unary_forward)(Tensor& out, const Tensor& x, UnaryOp op) = nullptr;
  void (*affine_forward)(Tensor& out, const Tensor& x, float scale, float shift) = nullptr;
  void (*reduce_sum_to)(Tensor& out, const Tensor& in) = nullptr;
  void (*add_scaled)(Tensor& y, const Tensor& x, float alpha) = nullptr;
  // ---- core/ops/activation.h (namespace glimpse) ----
  void (*relu_forward)(Tensor& out, const Tensor& x) = nullptr;
  void (*relu_backward)(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) = nullptr;
  void (*leaky_relu_forward)(Tensor& out, const Tensor& x, float slope) = nullptr;
  void (*leaky_relu_backward)(Tensor& gx, const Tensor& gout, const Tensor& x, float slope) = nullptr;
  // ---- core/ops/reduce.h (namespace glimpse) ----
  void (*sum_dim_forward)(Tensor& out, const Tensor& x, const DimSplit& s) = nullptr;
  void (*sum_dim_backward)(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale) = nullptr;
  void (*softmax_forward)(Tensor& y, const Tensor& x, const DimSplit& s) = nullptr;
  void (*softmax_backward)(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s) = nullptr;
  void (*log_softmax_forward)(Tensor& y, const Tensor& x, const DimSplit& s) = nullptr;
  void (*log_softmax_backward)(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s) = nullptr;
  void (*max_dim_forward)(Tensor& out, const Tensor& x, const DimSplit& s) = nullptr;
  void (*max_dim_backward)(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s) = nullptr;
  // ---- core/ops/gemm.h (namespace glimpse) ----
  void (*matmul_forward)(Tensor& out, const Tensor& a, const Tensor& b) = nullptr;
  void (*matmul_backward)(Tensor& ga, Tensor& gb, const Tensor& g, const Tensor& a, const Tensor& b) = nullptr;
  void (*linear_forward)(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b) = nullptr;
  void (*linear_backward)(Tensor& gx, Tensor& gw, Tensor& gb, const Tensor& g, const Tensor& x,
                          const Tensor& w) = nullptr;
  // ---- core/ops/conv2d.h (namespace glimpse::cpu) ----
  void (*conv2d_forward)(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt,
                         bool relu) = nullptr;
  void (*conv2d_backward_data)(Tensor& gx, const Tensor& gout, const Tensor& w, const Conv2dOptions& opt) = nullptr;
  void (*conv2d_backward_filter)(Tensor& gw, Tensor& gb, const Tensor& gout, const Tensor& x,
                                 const Conv2dOptions& opt) = nullptr;
  // ---- core/ops/batch_norm.h (namespace glimpse::cpu) ----
  void (*batch_norm_forward_train)(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                                   Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   float momentum, float eps) = nullptr;
  void (*batch_norm_forward_eval)(Tensor& y, Tensor& save_mean, Tensor& save_invstd, const Tensor& x,
                                  const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                                  const Tensor& running_var, float eps) = nullptr;
  void (*batch_norm_backward)(Tensor& gx, Tensor& ggamma, Tensor& gbeta, const Tensor& gout, const Tensor& x,
                              const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                              float eps) = nullptr;
  // ---- core/ops/pool2d.h (namespace glimpse::cpu) ----
  void (*max_pool2d_forward)(Tensor& out, const Tensor& x, const Pool2dOptions& opt) = nullptr;
  void (*max_pool2d_backward)(Tensor& gx, const Tensor& gout, const Tensor& x, const Pool2dOptions& opt) = nullptr;
  void (*relu_max_pool2x2_forward)(Tensor& out, const Tensor& x) = nullptr;
  void (*relu_max_pool2x2_backward)(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) = nullptr;
  void (*avg_pool2d_forward)(Tensor& out, const Tensor& x, const Pool2dOptions& opt) = nullptr;
  void (*avg_pool2d_backward)(Tensor& gx, const Tensor& gout, const Pool2dOptions& opt) = nullptr;
  void (*global_avg_pool_forward)(Tensor& out, const Tensor& x) = nullptr;
  void (*global_avg_pool_backward)(Tensor& gx, const Tensor& gout) = nullptr;
  // ---- core/ops/upsample.h (namespace glimpse::cpu) ----
  void (*upsample_bilinear_forward)(Tensor& out, const Tensor& x, bool align_corners) = nullptr;
  void (*upsample_bilinear_backward)(Tensor& gx, const Tensor& gout, bool align_corners) = nullptr;
  // ---- core/ops/loss.h (namespace glimpse::cpu) ----
  void (*cross_entropy_forward)(Tensor& loss, Tensor& wsum, Tensor& logp, const Tensor& logits,
                                const std::vector<int64_t>& targets, const Tensor& class_weights) = nullptr;
  void (*cross_entropy_backward)(Tensor& glogits, const Tensor& gloss, const Tensor& logp,
                                 const std::vector<int64_t>& targets, const Tensor& class_weights,
                                 const Tensor& wsum) = nullptr;
  void (*bce_with_logits_forward)(Tensor& loss, const Tensor& logits, const Tensor& targets,
                                  const Tensor& pos_weight) = nullptr;
  void (*bce_with_logits_backward)(Tensor& glogits, const Tensor& gloss, const Tensor& logits, const Tensor& targets,
                                   const Tensor& pos_weight) = nullptr;
  // ---- core/ops/shape.h (namespace glimpse::cpu) ----
  void (*concat_forward)(Tensor& out, const Tensor& x, int64_t dim, int64_t at) = nullptr;
  void (*concat_backward)(Tensor& gx, const Tensor& gout, int64_t dim, int64_t at) = nullptr;
  void (*pad2d_forward)(Tensor& out, const Tensor& x, int64_t top, int64_t left, float value) = nullptr;
  void (*pad2d_backward)(Tensor& gx, const Tensor& gout, int64_t top, int64_t left) = nullptr;
  // ---- core/ops/optim.h (namespace glimpse::cpu) ----
  void (*sgd_step)(Tensor& p, Tensor& momentum_buf, const Tensor& g, float lr, float momentum, float dampening,
                   bool nesterov, float weight_decay, bool first_step) = nullptr;
  void (*adam_step)(Tensor& p, Tensor& m, Tensor& v, Tensor& vmax, const Tensor& g, float lr, float beta1,
                    float beta2, float eps, float weight_decay, bool decoupled, int64_t t) = nullptr;
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
// device's table, after checking that every tensor argument is on `device`. E.g.
//   dispatch("relu", x.device(), &relu_forward, &DeviceKernels::relu_forward, out, x);
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
