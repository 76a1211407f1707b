// Bilinear resize of H and W, CPU kernels (CUDA twins: cuda/, namespace glimpse::cuda, same names).
// Matches PyTorch's F.interpolate(mode='bilinear') given an output size (no scale_factor).
//
// Shapes: x [N, C, H, W] -> out [N, C, OH, OW]. Each output row oh reads the source coordinate
//   align_corners=true : src = oh * (H-1)/(OH-1)              (0 when OH == 1)
//   align_corners=false: src = max(0, (oh + 0.5) * H/OH - 0.5)
// then h0 = floor(src), h1 = min(h0 + 1, H - 1), lh = src - h0, and likewise for columns:
//   out = (1-lh)(1-lw) x[h0,w0] + (1-lh) lw x[h0,w1] + lh (1-lw) x[h1,w0] + lh lw x[h1,w1].
// Backward scatters gout with the same four weights into gx, which it zeroes first (it overwrites).
// Scales are computed in float as PyTorch does for float tensors, so results agree bit for bit in
// the coordinates.
//
// The differentiable op is in core/ops/upsample.cpp beside the kernels; the CUDA twins in
// core/ops/upsample.cu.
#pragma once
#include <cstdint>

#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void upsample_bilinear_forward(Tensor& out, const Tensor& x, bool align_corners);
void upsample_bilinear_backward(Tensor& gx, const Tensor& gout, bool align_corners);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

// Bilinear resize of H and W to (out_h, out_w); align_corners as in PyTorch.
Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners = false);

}  // namespace glimpse
