// Modules: runtime objects with names, so that every activation and gradient is reachable by a
// dotted name ("features.3") -- the handle attribution methods use.
//
// A Module owns named parameters (trainable), named buffers (running statistics) and named child
// modules, in registration order. Calling a module, m(x), runs forward(x) and then its forward hooks,
// each of which may read or replace the output.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/hook_handle.h"
#include "core/tensor.h"

namespace glimpse {

class Module;

// A forward hook sees (module, input, output). Return an undefined Tensor to keep the output, or a
// tensor to replace it (the replacement flows on to the next layer).
using ForwardHook = std::function<Tensor(Module& module, const Tensor& input, const Tensor& output)>;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Runs forward() and then the forward hooks, in registration order.
  Tensor operator()(const Tensor& x);
  virtual Tensor forward(const Tensor& x) = 0;

  // "Conv2d", "Sequential", ... and a one-line description "Conv2d(3, 32, kernel=3, stride=1, pad=1)".
  const std::string& type_name() const { return type_name_; }
  virtual std::string describe() const { return type_name_; }

  // ---- tree ----
  // Every module below (and including, as "") this one, depth-first in registration order, with
  // dotted names: {"", root}, {"features", ...}, {"features.0", ...}, ...
  std::vector<std::pair<std::string, Module*>> named_modules();
  // Every parameter with its dotted name ("features.0.weight"), depth-first.
  std::vector<std::pair<std::string, Tensor>> named_parameters();
  std::vector<std::pair<std::string, Tensor>> named_buffers();
  std::vector<Tensor> parameters();
  // Parameters and buffers together: what a checkpoint holds.
  std::vector<std::pair<std::string, Tensor>> state();
  // The module at a dotted name. Unknown names throw an Error that lists every valid name.
  Module& find(const std::string& dotted_name);
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  // ---- modes ----
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool training() const { return training_; }
  void zero_grad();  // clears every parameter's .grad
  // Moves every parameter and buffer to `device` in place: each tensor keeps its identity (layers,
  // optimizers and hooks holding it see the moved data), its gradient moves too. Build optimizers
  // after moving: their state is created on the parameters' device.
  void to(Device device);
  int64_t num_parameters();  // total scalar count

  // ---- hooks ----
  [[nodiscard]] HookHandle register_forward_hook(ForwardHook hook);
  size_t num_forward_hooks() const { return forward_hooks_.size(); }

  // A printable tree of the model, one line per module with its parameter count.
  std::string summary();

 protected:
  // Registration, for subclasses' constructors. Names must be unique within this module.
  Tensor& register_parameter(const std::string& name, Tensor t);  // sets requires_grad
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  std::string type_name_;
  bool training_ = true;

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out);

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<int, ForwardHook>> forward_hooks_;
  int next_hook_id_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // lets a HookHandle outlive its module safely
};

// Forward hook on the module at a dotted name under `root` (error listing valid names if absent).
[[nodiscard]] HookHandle register_forward_hook(Module& root, const std::string& dotted_name, ForwardHook hook);

}  // namespace glimpse
