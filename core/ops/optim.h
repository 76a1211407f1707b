// One optimizer update of one parameter, CPU kernels (CUDA twins, same names,
// fused kernels in core/ops/optim.cu). The rules are PyTorch's; layers/optim.h documents them and owns
// the state (moments, step counts). Every tensor is contiguous with p's shape; p and the state are
// updated in place.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace glimpse::cpu {

// d = g + weight_decay p;  momentum 0: p -= lr d (momentum_buf unused, may be undefined);
// else buf = first_step ? d : momentum buf + (1 - dampening) d;  p -= lr (nesterov ? d + momentum buf : buf).
void sgd_step(Tensor& p, Tensor& momentum_buf, const Tensor& g, float lr, float momentum, float dampening,
              bool nesterov, float weight_decay, bool first_step);
// t = this parameter's step count after this step (1 on the first); vmax undefined unless AMSGrad;
// decoupled: AdamW (p *= 1 - lr weight_decay first) instead of L2 through the gradient.
void adam_step(Tensor& p, Tensor& m, Tensor& v, Tensor& vmax, const Tensor& g, float lr, float beta1, float beta2,
               float eps, float weight_decay, bool decoupled, int64_t t);

}  // namespace glimpse::cpu
