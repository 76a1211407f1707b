// The tape: record() attaches an op's backward closure to its output (core/tape.h). The engine that
// walks the tape backward is autograd/engine.cpp.
#include "core/tape.h"

#include "core/grad_mode.h"

namespace glimpse {

bool any_requires_grad(std::initializer_list<Tensor> ts) {
  for (const auto& t : ts)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* op, Tensor out, std::vector<Tensor> inputs, Node::BackwardFn fn) {
  if (!grad_enabled()) return out;
  bool any = false;
  for (auto& in : inputs) {
    if (in.defined() && in.requires_grad())
      any = true;
    else
      in = Tensor();  // no edge to inputs that take no gradient
  }
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(fn);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

}  // namespace glimpse
