// Batch normalization on the GPU: the Tensor-level twins of core/ops/batch_norm.cpp on cuDNN
// (cuda/cudnn_batch_norm.h).
//
// The CUDA twin of core/ops/batch_norm.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_batch_norm).
#include "core/ops/batch_norm.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/cudnn_batch_norm.h"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace batch_norm_slots {

// x [N, C, *] as the [N, C, L] the wrapper takes (L = 1 for [N, C]).
int64_t bn_plane(const Tensor& x) {
  int64_t L = 1;
  for (int64_t d = 2; d < x.dim(); ++d) L *= x.size(d);
  return L;
}

void batch_norm_forward_train(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              float momentum, float eps) {
  const auto guard = on_device_of(y);
  cuda::batch_norm_forward_train(device_data(y), device_data(save_mean), device_data(save_invstd),
                                 device_data_or_null(running_mean), device_data_or_null(running_var), device_data(x),
                                 device_data_or_null(gamma), device_data_or_null(beta), x.size(0), x.size(1),
                                 bn_plane(x), momentum, eps);
}

void batch_norm_forward_eval(Tensor& y, Tensor& save_mean, Tensor& save_invstd, const Tensor& x, const Tensor& gamma,
                             const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, float eps) {
  const auto guard = on_device_of(y);
  cuda::batch_norm_forward_eval(device_data(y), device_data(save_mean), device_data(save_invstd), device_data(x),
                                device_data_or_null(gamma), device_data_or_null(beta), device_data(running_mean),
                                device_data(running_var), x.size(0), x.size(1), bn_plane(x), eps);
}

void batch_norm_backward(Tensor& gx, Tensor& ggamma, Tensor& gbeta, const Tensor& gout, const Tensor& x,
                         const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                         float eps) {
  const auto guard = on_device_of(gout);
  cuda::batch_norm_backward(device_data_or_null(gx), device_data_or_null(ggamma), device_data_or_null(gbeta),
                            device_data(gout), device_data(x), device_data_or_null(gamma), device_data(save_mean),
                            device_data(save_invstd), x.size(0), x.size(1), bn_plane(x), training, eps);
}

}  // namespace batch_norm_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_batch_norm(DeviceKernels& k) {
  k.batch_norm_forward_train = &batch_norm_slots::batch_norm_forward_train;
  k.batch_norm_forward_eval = &batch_norm_slots::batch_norm_forward_eval;
  k.batch_norm_backward = &batch_norm_slots::batch_norm_backward;
}

}  // namespace glimpse::cuda
