#include "autograd/engine.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/grad_mode.h"
#include "core/tape.h"

namespace glimpse {

namespace {

// Reverse topological order of the tensors reachable from the roots through grad_fn edges
// (iterative DFS: deep ResNets must not overflow the stack).
std::vector<TensorImpl*> topo_order(const std::vector<TensorImpl*>& roots) {
  std::vector<TensorImpl*> post;
  std::unordered_set<TensorImpl*> seen;
  std::vector<std::pair<TensorImpl*, size_t>> stack;
  for (auto* r : roots) {
    if (!seen.insert(r).second) continue;
    stack.push_back({r, 0});
    while (!stack.empty()) {
      auto& [t, next] = stack.back();
      Node* n = t->grad_fn.get();
      if (n && next < n->inputs.size()) {
        TensorImpl* child = n->inputs[next++].impl();
        if (child && seen.insert(child).second) stack.push_back({child, 0});
      } else {
        post.push_back(t);
        stack.pop_back();
      }
    }
  }
  std::reverse(post.begin(), post.end());
  return post;
}

Tensor run_hooks(TensorImpl* t, Tensor g) {
  // Copy the list: a hook may remove itself (its handle dying) while we iterate.
  auto hooks = t->hooks;
  for (auto& [id, fn] : hooks) {
    Tensor r = fn(g);
    if (r.defined()) {
      GLIMPSE_CHECK(r.shape() == g.shape(), "gradient hook returned shape ", shape_str(r.shape()),
                    " for a gradient of shape ", shape_str(g.shape()));
      g = r;
    }
  }
  return g;
}

void accumulate(std::unordered_map<TensorImpl*, Tensor>& acc, TensorImpl* t, const Tensor& g) {
  auto it = acc.find(t);
  if (it == acc.end()) {
    acc.emplace(t, g);
  } else {
    // Never add into a tensor an op may still hold: make our own copy first.
    Tensor sum = it->second.clone();
    sum.add_(g);
    it->second = sum;
  }
}

// The shared engine. targets empty: accumulate into leaves' .grad (backward()).
// targets given: return their gradients and touch no .grad.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                                 const std::vector<Tensor>& targets, bool retain_graph) {
  NoGradGuard no_grad;  // backward closures must not record
  std::vector<TensorImpl*> root_impls;
  std::unordered_map<TensorImpl*, Tensor> acc;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    GLIMPSE_CHECK(r.defined(), "backward: undefined output tensor");
    GLIMPSE_CHECK(r.requires_grad(),
                  "backward: the output does not require a gradient (no input had "
                  "requires_grad, or it was computed under NoGradGuard)");
    Tensor g = i < root_grads.size() ? root_grads[i] : Tensor();
    if (!g.defined()) {
      GLIMPSE_CHECK(r.numel() == 1, "backward: the output has shape ", shape_str(r.shape()),
                    "; pass a grad_output of the same shape (only a scalar output needs none)");
      g = Tensor::ones(r.shape(), r.device());
    }
    GLIMPSE_CHECK(g.shape() == r.shape(), "backward: grad_output shape ", shape_str(g.shape()),
                  " does not match output shape ", shape_str(r.shape()));
    root_impls.push_back(r.impl());
    accumulate(acc, r.impl(), g);
  }

  std::vector<TensorImpl*> order = topo_order(root_impls);

  // Which tensors lead to something that wants a gradient.
  std::unordered_set<TensorImpl*> target_set;
  for (auto& t : targets) target_set.insert(t.impl());
  std::unordered_map<TensorImpl*, bool> wanted;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {  // leaves first
    TensorImpl* t = *it;
    bool w;
    if (!targets.empty()) {
      w = target_set.count(t) > 0;
    } else {
      w = t->requires_grad && !t->grad_fn;  // a leaf that takes a gradient
    }
    if (Node* n = t->grad_fn.get())
      for (auto& in : n->inputs)
        if (in.defined() && wanted[in.impl()]) w = true;
    wanted[t] = w;
  }

  std::unordered_map<TensorImpl*, Tensor> results;
  for (TensorImpl* t : order) {
    auto it = acc.find(t);
    if (it == acc.end()) continue;  // no gradient flowed here
    Tensor g = run_hooks(t, it->second);
    acc.erase(it);
    if (target_set.count(t)) results[t] = g;
    if (targets.empty() && (t->retains_grad || !t->grad_fn) && t->requires_grad) {
      if (!t->grad)
        t->grad = g.clone().impl_ptr();
      else
        Tensor(t->grad).add_(g);
    }
    Node* n = t->grad_fn.get();
    if (!n || !wanted[t]) continue;
    std::vector<bool> needs(n->inputs.size());
    bool any = false;
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      needs[i] = n->inputs[i].defined() && wanted[n->inputs[i].impl()];
      any = any || needs[i];
    }
    if (!any) continue;
    GLIMPSE_CHECK(n->backward, "backward through '", n->op,
                  "': its tape was freed by an earlier backward; "
                  "pass retain_graph=true to the first backward to run it twice");
    std::vector<Tensor> gin = n->backward(g, needs);
    GLIMPSE_CHECK(gin.size() == n->inputs.size(), "internal: '", n->op, "' returned ", gin.size(), " gradients for ",
                  n->inputs.size(), " inputs");
    for (size_t i = 0; i < gin.size(); ++i) {
      if (!needs[i]) continue;
      GLIMPSE_CHECK(gin[i].defined(), "internal: '", n->op, "' gave no gradient for input ", i);
      GLIMPSE_CHECK(gin[i].shape() == n->inputs[i].shape(), "internal: '", n->op, "' gradient for input ", i,
                    " has shape ", shape_str(gin[i].shape()), ", input has ", shape_str(n->inputs[i].shape()));
      accumulate(acc, n->inputs[i].impl(), gin[i]);
    }
  }

  if (!retain_graph) {
    for (TensorImpl* t : order)
      if (Node* n = t->grad_fn.get()) {
        n->backward = nullptr;  // frees the saved tensors
      }
  }

  std::vector<Tensor> out;
  for (auto& t : targets) {
    auto r = results.find(t.impl());
    out.push_back(r != results.end() ? r->second : Tensor::zeros(t.shape(), t.device()));
  }
  return out;
}

}  // namespace

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
                         const std::vector<Tensor>& inputs, bool retain_graph) {
  GLIMPSE_CHECK(!inputs.empty(), "grad(): no inputs to differentiate with respect to");
  for (auto& in : inputs) GLIMPSE_CHECK(in.defined(), "grad(): an input is undefined");
  return run_backward(outputs, grad_outputs, inputs, retain_graph);
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  run_backward({*this}, {grad_output}, {}, retain_graph);
}

Tensor& Tensor::set_requires_grad(bool on) {
  check_defined("set_requires_grad()");
  GLIMPSE_CHECK(!impl_->grad_fn || on, "set_requires_grad(false) on a non-leaf tensor; use detach()");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  check_defined("grad()");
  return impl_->grad ? Tensor(impl_->grad) : Tensor();
}

void Tensor::zero_grad() {
  check_defined("zero_grad()");
  impl_->grad.reset();
}

void Tensor::retain_grad() {
  check_defined("retain_grad()");
  impl_->retains_grad = true;
}

HookHandle Tensor::register_hook(GradHook hook) const {
  check_defined("register_hook()");
  GLIMPSE_CHECK(impl_->requires_grad,
                "register_hook(): the tensor does not require a gradient, so the hook "
                "could never fire");
  int id = impl_->next_hook_id++;
  impl_->hooks.emplace_back(id, std::move(hook));
  std::weak_ptr<TensorImpl> weak = impl_;
  return HookHandle([weak, id] {
    if (auto t = weak.lock()) std::erase_if(t->hooks, [id](const auto& h) { return h.first == id; });
  });
}

}  // namespace glimpse
