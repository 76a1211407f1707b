// ReLU, LeakyReLU and dropout: the math, the kernel contract, the CPU kernels and the differentiable
// ops in core/ops/activation.cpp, the CUDA twins in core/ops/activation.cu.
//   relu(x) = max(x, 0);  leaky_relu(x) = x > 0 ? x : slope x;  dropout(x) = x m / (1 - p)
// Kernels follow the contract of core/dispatch.h (outputs first, every output element written).
#pragma once

#include "core/rng.h"
#include "core/tensor.h"

namespace glimpse {

// The backward rules of ReLU (chosen per backward pass; see core/grad_mode.h). With x the
// forward input and g the incoming gradient:
//   Standard  : g * [x > 0]            (the true gradient)
//   Deconvnet : g * [g > 0]            (Zeiler & Fergus 2014: ignore the forward mask, pass positive signal)
//   Guided    : g * [x > 0] * [g > 0]  (Springenberg et al. 2015: both masks)
enum class ReluRule { Standard, Deconvnet, Guided };

}  // namespace glimpse

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

void relu_forward(Tensor& out, const Tensor& x);  // max(x, 0)
void relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule);
void leaky_relu_forward(Tensor& out, const Tensor& x, float slope);  // x > 0 ? x : slope x
void leaky_relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, float slope);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

Tensor relu(const Tensor& x);  // backward follows relu_rule() (core/grad_mode.h)
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);
// Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p); identity if !training.
Tensor dropout(const Tensor& x, float p, bool training, Rng& rng = global_rng());

}  // namespace glimpse
