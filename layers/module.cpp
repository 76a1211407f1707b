// Module: the tree of named layers (see module.h).
#include "layers/module.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "core/error.h"

namespace glimpse {
namespace {

std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Names are path components: non-empty and without the separator.
void check_local_name(const std::string& name, const std::string& owner, const char* what) {
  GLIMPSE_CHECK(!name.empty(), owner, ": a ", what, " needs a non-empty name");
  GLIMPSE_CHECK(name.find('.') == std::string::npos, owner, ": ", what, " name '", name,
                "' contains '.', which separates the levels of a dotted name");
}

// "a, b, c" (or "(none)"), for error messages that list the valid choices.
template <typename Pairs>
std::string list_names(const Pairs& pairs, bool quote_empty_as_root) {
  std::ostringstream os;
  bool first = true;
  for (const auto& [name, _] : pairs) {
    if (!first) os << ", ";
    first = false;
    os << (name.empty() && quote_empty_as_root ? std::string("\"\" (the root)") : "'" + name + "'");
  }
  if (first) os << "(none)";
  return os.str();
}

}  // namespace

// ---- calling -----------------------------------------------------------------------------------

Tensor Module::operator()(const Tensor& x) {
  Tensor y = forward(x);
  if (forward_hooks_.empty()) return y;
  // A hook may remove itself (or others) while running: iterate over a snapshot of the ids and
  // look each one up again before calling it.
  std::vector<int> ids;
  ids.reserve(forward_hooks_.size());
  for (const auto& h : forward_hooks_) ids.push_back(h.first);
  for (int id : ids) {
    auto it = std::find_if(forward_hooks_.begin(), forward_hooks_.end(), [id](const auto& h) { return h.first == id; });
    if (it == forward_hooks_.end()) continue;
    ForwardHook hook = it->second;  // copy: the hook may unregister itself while it runs
    Tensor r = hook(*this, x, y);
    if (r.defined()) y = r;
  }
  return y;
}

// ---- tree ----------------------------------------------------------------------------------------

void Module::collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out) {
  out.emplace_back(prefix, this);
  for (auto& [name, child] : children_) child->collect_modules(join_name(prefix, name), out);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [prefix, m] : named_modules())
    for (auto& [name, t] : m->params_) out.emplace_back(join_name(prefix, name), t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [prefix, m] : named_modules())
    for (auto& [name, t] : m->buffers_) out.emplace_back(join_name(prefix, name), t);
  return out;
}

std::vector<Tensor> Module::parameters() {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

// Module by module, parameters then buffers: the order of PyTorch's state_dict().
std::vector<std::pair<std::string, Tensor>> Module::state() {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [prefix, m] : named_modules()) {
    for (auto& [name, t] : m->params_) out.emplace_back(join_name(prefix, name), t);
    for (auto& [name, t] : m->buffers_) out.emplace_back(join_name(prefix, name), t);
  }
  return out;
}

// Swaps the storage under each tensor's handle, not the handle: Conv2d::weight, an optimizer's
// parameter list and the module's own table all share the TensorImpl, so all of them follow.
void Module::to(Device device) {
  for (auto& [name, t] : state()) {
    TensorImpl* impl = t.impl();
    if (t.device() == device) continue;
    Tensor moved = t.to(device);
    impl->storage = moved.impl()->storage;
    impl->offset = moved.impl()->offset;
    impl->strides = moved.impl()->strides;
    if (impl->grad) impl->grad = Tensor(impl->grad).to(device).impl_ptr();
  }
}

Module& Module::find(const std::string& dotted_name) {
  if (dotted_name.empty()) return *this;
  Module* m = this;
  size_t begin = 0;
  while (m) {
    const size_t dot = dotted_name.find('.', begin);
    const std::string part = dotted_name.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    Module* next = nullptr;
    for (auto& [name, child] : m->children_)
      if (name == part) next = child.get();
    m = next;
    if (!m || dot == std::string::npos) break;
    begin = dot + 1;
  }
  if (m) return *m;
  auto all = named_modules();
  GLIMPSE_FAIL("find(): no module named '", dotted_name, "' under this ", type_name_,
               ". Valid names: ", list_names(all, true));
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_local_name(name, type_name_, "child module");
  GLIMPSE_CHECK(m != nullptr, type_name_, ": child module '", name, "' is null");
  GLIMPSE_CHECK(m.get() != this, type_name_, ": a module cannot be its own child ('", name, "')");
  for (auto* list : {&params_, &buffers_})
    for (auto& [n, _] : *list)
      GLIMPSE_CHECK(n != name, type_name_, ": child name '", name, "' is already a parameter or buffer");
  for (auto& [n, _] : children_)
    GLIMPSE_CHECK(n != name, type_name_, ": a child named '", name, "' is already registered");
  children_.emplace_back(name, std::move(m));
}

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  check_local_name(name, type_name_, "parameter");
  GLIMPSE_CHECK(t.defined(), type_name_, ": parameter '", name, "' is an undefined tensor");
  GLIMPSE_CHECK(t.is_leaf(), type_name_, ": parameter '", name, "' must be a leaf tensor; pass x.detach()");
  for (auto* list : {&params_, &buffers_})
    for (auto& [n, _] : *list) GLIMPSE_CHECK(n != name, type_name_, ": '", name, "' is already a parameter or buffer");
  for (auto& [n, _] : children_) GLIMPSE_CHECK(n != name, type_name_, ": '", name, "' is already a child module");
  t.set_requires_grad(true);
  params_.emplace_back(name, std::move(t));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  check_local_name(name, type_name_, "buffer");
  GLIMPSE_CHECK(t.defined(), type_name_, ": buffer '", name, "' is an undefined tensor");
  for (auto* list : {&params_, &buffers_})
    for (auto& [n, _] : *list) GLIMPSE_CHECK(n != name, type_name_, ": '", name, "' is already a parameter or buffer");
  for (auto& [n, _] : children_) GLIMPSE_CHECK(n != name, type_name_, ": '", name, "' is already a child module");
  buffers_.emplace_back(name, std::move(t));
  return buffers_.back().second;
}

// ---- modes ---------------------------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

// ---- hooks ---------------------------------------------------------------------------------------

HookHandle Module::register_forward_hook(ForwardHook hook) {
  GLIMPSE_CHECK(static_cast<bool>(hook), type_name_, ": register_forward_hook() got an empty function");
  const int id = next_hook_id_++;
  forward_hooks_.emplace_back(id, std::move(hook));
  // The handle may outlive this module (a Grad-CAM object kept after the model is dropped): the
  // weak token tells it whether `this` is still there before it touches the hook list.
  std::weak_ptr<int> alive = alive_;
  return HookHandle([this, id, alive] {
    if (alive.expired()) return;
    auto& hooks = forward_hooks_;
    hooks.erase(std::remove_if(hooks.begin(), hooks.end(), [id](const auto& h) { return h.first == id; }), hooks.end());
  });
}

HookHandle register_forward_hook(Module& root, const std::string& dotted_name, ForwardHook hook) {
  return root.find(dotted_name).register_forward_hook(std::move(hook));
}

// ---- printing ------------------------------------------------------------------------------------

// name | description | own parameters, indented by depth, then the total.
std::string Module::summary() {
  auto mods = named_modules();
  std::vector<std::string> names, descs, counts;
  size_t wn = 4, wd = 5;
  for (auto& [name, m] : mods) {
    const int64_t depth = name.empty() ? 0 : 1 + std::count(name.begin(), name.end(), '.');
    names.push_back(std::string(2 * depth, ' ') + (name.empty() ? "(root)" : name));
    descs.push_back(m->describe());
    int64_t own = 0;
    for (auto& [n, p] : m->params_) own += p.numel();
    counts.push_back(own ? std::to_string(own) : "-");
    wn = std::max(wn, names.back().size());
    wd = std::max(wd, descs.back().size());
  }
  std::ostringstream os;
  os << std::left << std::setw(static_cast<int>(wn)) << "name"
     << "  " << std::setw(static_cast<int>(wd)) << "layer"
     << "  " << std::right << std::setw(12) << "params"
     << "\n";
  os << std::string(wn + wd + 16, '-') << "\n";
  for (size_t i = 0; i < mods.size(); ++i)
    os << std::left << std::setw(static_cast<int>(wn)) << names[i] << "  " << std::setw(static_cast<int>(wd))
       << descs[i] << "  " << std::right << std::setw(12) << counts[i] << "\n";
  os << std::string(wn + wd + 16, '-') << "\n";
  int64_t buffers = 0;
  for (auto& [n, b] : named_buffers()) buffers += b.numel();
  os << "total parameters: " << num_parameters() << " (buffers: " << buffers << ")\n";
  return os.str();
}

}  // namespace glimpse
