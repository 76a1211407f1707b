// Softmax cross-entropy and binary cross-entropy with logits, CPU kernels (CUDA twins: cuda/tensor_ops.cpp, same names, kernels in
// cuda/loss.cu). The differentiable op, which validates the arguments, is autograd/functions/loss.cpp.
//
// logits [N, K], targets N class indices in [0, K) (checked by the caller), class_weights [K] or
// undefined (all 1), w_n = class_weights[targets[n]]:
//   logp = log_softmax(logits)        wsum = sum_n w_n
//   loss = sum_n w_n (-logp[n, y_n]) / wsum          (0 when wsum is 0; the caller refuses that batch)
//   glogits[n, k] = gloss / wsum * w_n (exp(logp[n, k]) - [k == y_n])
// loss and wsum are one-element tensors ([]), logp is kept for backward. Both kernels overwrite.
//
// Binary cross-entropy with logits x, targets y in [0, 1] (checked by the caller), both of n values
// (any shape, contiguous), pos_weight q [K] for the last dimension K or undefined (all 1), s = sigmoid(x):
//   loss = (1/n) sum_i q y softplus(-x) + (1 - y) softplus(x)     (terms and sum in double)
//   glogits = gloss / n (s (q y + 1 - y) - q y)                    (float, as the CPU always has)
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace glimpse::cpu {

void cross_entropy_forward(Tensor& loss, Tensor& wsum, Tensor& logp, const Tensor& logits,
                           const std::vector<int64_t>& targets, const Tensor& class_weights);
void cross_entropy_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logp,
                            const std::vector<int64_t>& targets, const Tensor& class_weights, const Tensor& wsum);
void bce_with_logits_forward(Tensor& loss, const Tensor& logits, const Tensor& targets, const Tensor& pos_weight);
void bce_with_logits_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logits, const Tensor& targets,
                              const Tensor& pos_weight);

}  // namespace glimpse::cpu
