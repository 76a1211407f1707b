// Reductions: sum and mean (over everything or one dimension), max (gradient to the first argmax).
// A tensor is seen as [outer, len, inner] around the reduced dimension (DimSplit).
//   sum : dx = g broadcast back over the reduced dim;  mean: dx = g / len;  max: dx = g at the
//   first argmax (the first NaN wins), 0 elsewhere.
// CPU kernels and the differentiable ops in core/ops/reduce.cpp, CUDA twins in core/ops/reduce.cu;
// kernels follow the contract of core/dispatch.h.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace glimpse {

struct DimSplit {
  int64_t outer = 1, len = 1, inner = 1;
};
// Normalises a possibly negative dim and splits the shape around it; error names op and shape.
DimSplit split_at(const Shape& shape, int64_t& dim, const char* op);

}  // namespace glimpse

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void sum_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s);  // out [outer*inner]
// gx [outer, len, inner] = scale * gout [outer, inner] spread over len (overwrites): the backward of
// sum (scale 1) and mean (scale 1/len).
void sum_dim_backward(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale);
// out [outer*inner] = max over len (len > 0, checked by the caller); the first NaN wins, else the first
// maximum. Backward: gx = gout at that argmax, recomputed from x, and 0 elsewhere (overwrites).
void max_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s);
void max_dim_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor sum(const Tensor& x);  // all elements -> scalar (shape [])
Tensor mean(const Tensor& x);
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);  // gradient to the first argmax
Tensor max(const Tensor& x);
std::vector<int64_t> argmax_rows(const Tensor& x);  // [N, K] -> argmax of each row (no gradient)

}  // namespace glimpse
