// Losses: softmax cross-entropy and binary cross-entropy with logits.
//
// Softmax cross-entropy, with p = softmax(z_n) and optional class weights w:
//   L = sum_n w_{y_n} (-log p_{n,y_n}) / sum_n w_{y_n}
//   dL/dz_n = w_{y_n} (p_n - onehot(y_n)) / sum_n w_{y_n}
// (without weights w = 1, the plain batch mean; this matches PyTorch's weighted mean).
//
// Binary cross-entropy with logits, s = sigmoid(x), pos_weight q per column:
//   l = -[q y log s + (1 - y) log(1 - s)] = q y softplus(-x) + (1 - y) softplus(x)
//   dl/dx = s (q y + 1 - y) - q y,    L = mean over all elements.
//
// The kernels, on logits [N, K], targets N class indices in [0, K) (checked by the caller), class_weights [K] or
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
//
// CPU kernels and the differentiable ops (which validate the arguments) in core/ops/loss.cpp, CUDA
// twins in core/ops/loss.cu.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void cross_entropy_forward(Tensor& loss, Tensor& wsum, Tensor& logp, const Tensor& logits,
                           const std::vector<int64_t>& targets, const Tensor& class_weights);
void cross_entropy_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logp,
                            const std::vector<int64_t>& targets, const Tensor& class_weights, const Tensor& wsum);
void bce_with_logits_forward(Tensor& loss, const Tensor& logits, const Tensor& targets, const Tensor& pos_weight);
void bce_with_logits_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logits, const Tensor& targets,
                              const Tensor& pos_weight);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

// Softmax cross-entropy of logits [N, K] against class indices; class_weights [K] optional, in
// which case the mean is weighted as in PyTorch (sum w_y * loss / sum w_y).
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets, const Tensor& class_weights = Tensor());
// Binary cross-entropy with logits, element-wise against targets in [0, 1], mean over elements;
// pos_weight [K] optional (weights the positive term per column).
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight = Tensor());

}  // namespace glimpse
