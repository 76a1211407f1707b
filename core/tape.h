// One recorded operation on the autograd tape.
//
// Every differentiable op builds its output and, right beside it, the closure that maps the
// output's gradient to its inputs' gradients (see record()). `needs[i]` says whether input i's
// gradient is wanted, so an op skips work nobody asked for (Grad-CAM asks for no weight gradients).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glimpse {

struct Node {
  using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& needs)>;

  std::string op;              // "conv2d", "relu", ... (named in errors)
  std::vector<Tensor> inputs;  // differentiable inputs, undefined where an input takes no gradient
  BackwardFn backward;         // null once the tape is freed
};

// Attaches `out` to the tape: if grad mode is on and any input requires a gradient, out gets a
// grad_fn whose backward is `fn`. Saved tensors must be captured by value in `fn`; to save the
// output itself capture out.detach() (capturing `out` would make a reference cycle).
Tensor record(const char* op, Tensor out, std::vector<Tensor> inputs, Node::BackwardFn fn);

// True if any of the tensors would make an op's output require a gradient.
bool any_requires_grad(std::initializer_list<Tensor> ts);

}  // namespace glimpse
