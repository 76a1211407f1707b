// Softmax and log-softmax along one dimension (a tensor seen as [outer, len, inner], DimSplit):
//   softmax:     y = exp(x - max) / sum exp(x - max);   dx = y (g - sum(g y))
//   log_softmax: y = x - logsumexp(x);                  dx = g - exp(y) sum(g)
// CPU kernels and the differentiable ops in core/ops/softmax.cpp, CUDA twins in core/ops/softmax.cu;
// kernels follow the contract of core/dispatch.h.
#pragma once
#include <cstdint>

#include "core/ops/reduce.h"
#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

// y = softmax(x) along the dim; gx = y * (g - sum(g * y)).
void softmax_forward(Tensor& y, const Tensor& x, const DimSplit& s);
void softmax_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s);
// y = x - logsumexp(x); gx = g - exp(y) * sum(g).
void log_softmax_forward(Tensor& y, const Tensor& x, const DimSplit& s);
void log_softmax_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

}  // namespace glimpse
