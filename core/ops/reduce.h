// Reductions and softmax along one dimension, CPU kernels. A tensor is seen as [outer, len, inner]
// around the reduced dimension. Outputs first.
#pragma once
#include "core/tensor.h"

namespace glimpse {

struct DimSplit {
  int64_t outer = 1, len = 1, inner = 1;
};
// Normalises a possibly negative dim and splits the shape around it; error names op and shape.
DimSplit split_at(const Shape& shape, int64_t& dim, const char* op);

void sum_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s);                     // out [outer*inner]
// gx [outer, len, inner] = scale * gout [outer, inner] spread over len (overwrites): the backward of
// sum (scale 1) and mean (scale 1/len).
void sum_dim_backward(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale);
// out [outer*inner] = max over len (len > 0, checked by the caller); the first NaN wins, else the first
// maximum. Backward: gx = gout at that argmax, recomputed from x, and 0 elsewhere (overwrites).
void max_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s);
void max_dim_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s);

// y = softmax(x) along the dim; gx = y * (g - sum(g * y)).
void softmax_forward(Tensor& y, const Tensor& x, const DimSplit& s);
void softmax_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s);
// y = x - logsumexp(x); gx = g - exp(y) * sum(g).
void log_softmax_forward(Tensor& y, const Tensor& x, const DimSplit& s);
void log_softmax_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s);

}  // namespace glimpse
