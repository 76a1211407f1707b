// Batch normalization on the GPU through cuDNN (spatial mode: one mean and variance per channel over
// N, H, W): the twin of core/ops/batch_norm.h, same semantics, with raw device pointers.
//
// x, y, gx, gout [N, C, L] (L = H*W; L = 1 for [N, C]); gamma, beta, running_mean, running_var,
// save_mean, save_invstd, ggamma, gbeta [C]. M = N*L values per channel.
//   train: mean, var over the batch (biased var normalizes); save_mean = mean,
//          save_invstd = 1/sqrt(var + eps);
//          running_mean = (1-momentum) running_mean + momentum mean,
//          running_var  = (1-momentum) running_var  + momentum var M/(M-1)   (unbiased, as PyTorch;
//          cuDNN's exponentialAverageFactor is exactly this momentum and it updates with the
//          unbiased variance)
//   eval : normalizes with running_mean / running_var; save_mean = running_mean,
//          save_invstd = 1/sqrt(running_var + eps), as the CPU writes them for backward.
//   y = gamma (x - mean) invstd + beta
// Backward (g = gout): dgamma = sum g xhat, dbeta = sum g;
//   training: dx = gamma invstd / M (M g - sum g - xhat sum g xhat)   (cudnnBatchNormalizationBackward)
//   eval    : dx = g gamma invstd                                    (a kernel here: cuDNN has no eval backward)
// Null pointers: gamma (= 1), beta (= 0), both running statistics together (not updated), and any of
// gx, ggamma, gbeta (not computed). Forward overwrites y and the saved statistics; backward
// overwrites gx, ggamma, gbeta, as core's does (the kernel contract, core/dispatch.h). Any size may
// be 0 (empty descriptors never reach cuDNN).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace glimpse::cuda {

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                              const float* x, const float* gamma, const float* beta, int64_t N, int64_t C, int64_t L,
                              float momentum, float eps, cudaStream_t stream = 0);

void batch_norm_forward_eval(float* y, float* save_mean, float* save_invstd, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, int64_t N,
                             int64_t C, int64_t L, float eps, cudaStream_t stream = 0);

// training: whether the forward used batch statistics. eps must be the forward's.
void batch_norm_backward(float* gx, float* ggamma, float* gbeta, const float* gout, const float* x, const float* gamma,
                         const float* save_mean, const float* save_invstd, int64_t N, int64_t C, int64_t L,
                         bool training, float eps, cudaStream_t stream = 0);

}  // namespace glimpse::cuda
