// The reverse-mode engine.
//
// Tensor::backward() accumulates into the .grad of every leaf that requires a gradient.
// grad() computes the gradients of outputs with respect to chosen tensors only: it runs just the
// part of the tape between them (nothing below the targets, no parameter gradients), which is
// what Grad-CAM and the other attribution methods use.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace glimpse {

// d(sum_i <outputs[i], grad_outputs[i]>) / d(inputs[j]). An input the outputs do not depend on
// gets a zero tensor. grad_outputs may be empty when every output is a scalar.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                         const std::vector<Tensor>& inputs, bool retain_graph = false);

}  // namespace glimpse
