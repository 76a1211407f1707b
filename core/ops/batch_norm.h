// Batch normalization over every dimension but the channel (dim 1), CPU kernels (CUDA twins:
// cuda/, namespace glimpse::cuda, same names). x [N, C, *] (NCHW, or [N, C]); per-channel
// vectors [C]; M = N * prod(*) values per channel.
//
//   train: mean_c = (1/M) sum x,  var_c = (1/M) sum (x - mean_c)^2   (biased, used to normalize)
//          running_mean = (1-momentum) running_mean + momentum mean_c
//          running_var  = (1-momentum) running_var  + momentum var_c * M/(M-1)   (unbiased, PyTorch)
//   eval : mean_c, var_c = running_mean, running_var
//   xhat = (x - mean_c) * invstd_c,  invstd_c = 1/sqrt(var_c + eps),  y = gamma_c xhat + beta_c
//
// Backward (g = dL/dy, sums over the M values of a channel):
//   dgamma = sum g xhat,  dbeta = sum g
//   eval : dx = g gamma invstd
//   train: dx = gamma invstd / M * (M g - sum g - xhat sum g xhat)   (mean and var depend on x)
//
// Contract: CPU, contiguous, shapes as above (the autograd op validates). gamma, beta, the running
// statistics and the gradient outputs may be undefined (gamma = 1, beta = 0, stats not updated,
// gradient not computed). The forward kernels also write save_mean / save_invstd [C], which
// backward reads. Backward overwrites gx, ggamma, gbeta (each may be undefined).
//
// The differentiable op batch_norm is in core/ops/batch_norm.cpp beside the kernels; the CUDA
// twins (cuDNN) in core/ops/batch_norm.cu.
#pragma once

#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void batch_norm_forward_train(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              float momentum, float eps);

void batch_norm_forward_eval(Tensor& y, Tensor& save_mean, Tensor& save_invstd, const Tensor& x, const Tensor& gamma,
                             const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, float eps);

// training: whether the forward used batch statistics (adds the terms through mean and var).
// eps: the forward's. The CPU kernel does not read it (save_invstd already holds it), but the cuDNN
// twin does (cudnnBatchNormalizationBackward takes eps again), and both share one dispatch slot.
void batch_norm_backward(Tensor& gx, Tensor& ggamma, Tensor& gbeta, const Tensor& gout, const Tensor& x,
                         const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                         float eps);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

// Batch norm over N, H, W per channel. training: uses batch statistics and updates running_mean /
// running_var in place (running = (1-momentum)*running + momentum*batch, unbiased variance);
// eval: uses the running statistics. gamma/beta [C] may be undefined (no affine transform).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                  bool training, float momentum = 0.1f, float eps = 1e-5f);

}  // namespace glimpse
