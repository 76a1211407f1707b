// ReLU-family CPU kernels, forward and backward side by side. Outputs first.
#pragma once
#include "core/tensor.h"

namespace glimpse {

// The backward rules of ReLU (chosen per backward pass; see autograd/grad_mode.h). With x the
// forward input and g the incoming gradient:
//   Standard  : g * [x > 0]            (the true gradient)
//   Deconvnet : g * [g > 0]            (Zeiler & Fergus 2014: ignore the forward mask, pass positive signal)
//   Guided    : g * [x > 0] * [g > 0]  (Springenberg et al. 2015: both masks)
enum class ReluRule { Standard, Deconvnet, Guided };

void relu_forward(Tensor& out, const Tensor& x);                                  // max(x, 0)
void relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule);
void leaky_relu_forward(Tensor& out, const Tensor& x, float slope);               // x > 0 ? x : slope x
void leaky_relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, float slope);

}  // namespace glimpse
