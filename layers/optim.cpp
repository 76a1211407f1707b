#include "layers/optim.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/optim.h"

namespace glimpse {
namespace {

// The gradient of p as a contiguous tensor, or undefined if backward never reached p.
Tensor param_grad(const Tensor& p, const char* opt) {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  GLIMPSE_CHECK(g.shape() == p.shape(), opt, ": gradient shape ", shape_str(g.shape()),
                " differs from parameter shape ", shape_str(p.shape()));
  return g.contiguous();
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, float lr) : params_(std::move(params)), lr_(lr), base_lr_(lr) {
  GLIMPSE_CHECK(!params_.empty(), "Optimizer: the parameter list is empty");
  GLIMPSE_CHECK(std::isfinite(lr) && lr >= 0.f, "Optimizer: learning rate must be finite and >= 0, got ", lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    GLIMPSE_CHECK(params_[i].defined(), "Optimizer: parameter ", i, " is an undefined tensor");
    GLIMPSE_CHECK(params_[i].is_leaf(), "Optimizer: parameter ", i, " (shape ", shape_str(params_[i].shape()),
                  ") is not a leaf tensor; optimize the leaf, not a computed value");
    GLIMPSE_CHECK(params_[i].is_contiguous(), "Optimizer: parameter ", i, " is not contiguous");
    for (size_t j = 0; j < i; ++j)
      GLIMPSE_CHECK(!params_[i].same(params_[j]), "Optimizer: parameter ", i, " appears twice (also at ", j, ")");
  }
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

void Optimizer::set_lr(float lr) {
  GLIMPSE_CHECK(std::isfinite(lr) && lr >= 0.f, "Optimizer: learning rate must be finite and >= 0, got ", lr);
  lr_ = lr;
}

// ---- SGD -----------------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, SGDOptions o) : Optimizer(std::move(params), o.lr), opt_(o) {
  GLIMPSE_CHECK(o.momentum >= 0.f, "SGD: momentum must be >= 0, got ", o.momentum);
  GLIMPSE_CHECK(o.weight_decay >= 0.f, "SGD: weight_decay must be >= 0, got ", o.weight_decay);
  GLIMPSE_CHECK(!o.nesterov || (o.momentum > 0.f && o.dampening == 0.f),
                "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum=", o.momentum,
                ", dampening=", o.dampening);
  momentum_.resize(params_.size());
}

void SGD::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = param_grad(params_[i], "SGD");
    if (!g.defined()) continue;
    Tensor& p = params_[i];
    const bool first = !momentum_[i].defined();
    if (first && opt_.momentum != 0.f) momentum_[i] = Tensor::empty(p.shape(), p.device());
    dispatch("SGD", p.device(), &cpu::sgd_step, &DeviceKernels::sgd_step, p, momentum_[i], g, lr_, opt_.momentum,
             opt_.dampening, opt_.nesterov, opt_.weight_decay, first);
  }
  ++steps_;
}

// ---- Adam / AdamW --------------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(std::move(params), o, false) {}

Adam::Adam(std::vector<Tensor> params, AdamOptions o, bool decoupled)
    : Optimizer(std::move(params), o.lr), opt_(o), decoupled_(decoupled) {
  const char* name = decoupled ? "AdamW" : "Adam";
  GLIMPSE_CHECK(o.beta1 >= 0.f && o.beta1 < 1.f, name, ": beta1 must be in [0, 1), got ", o.beta1);
  GLIMPSE_CHECK(o.beta2 >= 0.f && o.beta2 < 1.f, name, ": beta2 must be in [0, 1), got ", o.beta2);
  GLIMPSE_CHECK(o.eps >= 0.f, name, ": eps must be >= 0, got ", o.eps);
  GLIMPSE_CHECK(o.weight_decay >= 0.f, name, ": weight_decay must be >= 0, got ", o.weight_decay);
  state_.resize(params_.size());
}

void Adam::step() {
  NoGradGuard ng;
  const char* name = decoupled_ ? "AdamW" : "Adam";
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = param_grad(params_[i], name);
    if (!g.defined()) continue;
    Tensor& p = params_[i];
    State& s = state_[i];
    if (s.t == 0) {
      s.m = Tensor::zeros(p.shape(), p.device());
      s.v = Tensor::zeros(p.shape(), p.device());
      if (opt_.amsgrad) s.vmax = Tensor::zeros(p.shape(), p.device());
    }
    ++s.t;
    dispatch(name, p.device(), &cpu::adam_step, &DeviceKernels::adam_step, p, s.m, s.v, s.vmax, g, lr_, opt_.beta1,
             opt_.beta2, opt_.eps, opt_.weight_decay, decoupled_, s.t);
  }
  ++steps_;
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options) : Adam(std::move(params), options, true) {}

// ---- state for checkpoints -----------------------------------------------------------------------

namespace {

std::string field(size_t i, const char* name) { return std::to_string(i) + "." + name; }

Tensor scalar_tensor(double v) { return Tensor::full({1}, static_cast<float>(v)); }

// A private copy on the CPU, for a state dict (checkpoints are written from the CPU).
Tensor cpu_copy(const Tensor& t) { return t.device().is_cpu() ? t.clone() : t.to(Device::cpu()); }

// A private copy of a saved state tensor, on its parameter's device.
Tensor on_device_of(const Tensor& saved, const Tensor& param) { return saved.contiguous().clone().to(param.device()); }

// A non-negative whole count stored as a [1] float tensor.
int64_t read_count(const std::map<std::string, Tensor>& state, const std::string& name) {
  const Tensor& t = state.at(name);
  GLIMPSE_CHECK(t.shape() == Shape{1}, "optimizer state: '", name, "' must have shape [1], got ", shape_str(t.shape()));
  const float v = t.data()[0];
  GLIMPSE_CHECK(std::isfinite(v) && v >= 0 && v == std::floor(v) && v <= 16777216.f, "optimizer state: '", name,
                "' must be a whole count in [0, 2^24], got ", v);
  return static_cast<int64_t>(v);
}

void check_like(const std::map<std::string, Tensor>& state, const std::string& name, const Tensor& param) {
  auto it = state.find(name);
  GLIMPSE_CHECK(it != state.end(), "optimizer state: '", name, "' is missing");
  GLIMPSE_CHECK(it->second.shape() == param.shape(), "optimizer state: '", name, "' has shape ",
                shape_str(it->second.shape()), " but its parameter has ", shape_str(param.shape()));
}

}  // namespace

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  out["steps"] = scalar_tensor(static_cast<double>(steps_));
  for (size_t i = 0; i < params_.size(); ++i) save_param_state(i, out);
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  GLIMPSE_CHECK(state.count("steps"), "optimizer state: 'steps' is missing");
  const int64_t steps = read_count(state, "steps");
  std::set<std::string> accepted = {"steps"};
  for (size_t i = 0; i < params_.size(); ++i)
    for (std::string& n : check_param_state(i, state)) accepted.insert(std::move(n));
  for (const auto& [name, t] : state)
    GLIMPSE_CHECK(accepted.count(name), "optimizer state: unexpected entry '", name, "' (", params_.size(),
                  " parameter(s); is it the state of another optimizer or model?)");
  for (size_t i = 0; i < params_.size(); ++i) load_param_state(i, state);
  steps_ = steps;
}

void SGD::save_param_state(size_t i, std::map<std::string, Tensor>& out) const {
  if (momentum_[i].defined()) out[field(i, "momentum")] = cpu_copy(momentum_[i]);
}
std::vector<std::string> SGD::check_param_state(size_t i, const std::map<std::string, Tensor>& state) const {
  const std::string name = field(i, "momentum");
  if (!state.count(name)) return {};
  check_like(state, name, params_[i]);
  return {name};
}
void SGD::load_param_state(size_t i, const std::map<std::string, Tensor>& state) {
  auto it = state.find(field(i, "momentum"));
  momentum_[i] = it == state.end() ? Tensor() : on_device_of(it->second, params_[i]);
}

void Adam::save_param_state(size_t i, std::map<std::string, Tensor>& out) const {
  const State& s = state_[i];
  if (s.t == 0) return;
  out[field(i, "t")] = scalar_tensor(static_cast<double>(s.t));
  out[field(i, "m")] = cpu_copy(s.m);
  out[field(i, "v")] = cpu_copy(s.v);
  if (s.vmax.defined()) out[field(i, "vmax")] = cpu_copy(s.vmax);
}
std::vector<std::string> Adam::check_param_state(size_t i, const std::map<std::string, Tensor>& state) const {
  const std::string t = field(i, "t");
  if (!state.count(t)) return {};
  GLIMPSE_CHECK(read_count(state, t) > 0, "optimizer state: '", t, "' is 0 but moments are stored");
  std::vector<std::string> names = {t, field(i, "m"), field(i, "v")};
  if (opt_.amsgrad) names.push_back(field(i, "vmax"));
  for (size_t k = 1; k < names.size(); ++k) check_like(state, names[k], params_[i]);
  return names;
}
void Adam::load_param_state(size_t i, const std::map<std::string, Tensor>& state) {
  State fresh;
  if (state.count(field(i, "t"))) {
    fresh.t = read_count(state, field(i, "t"));
    fresh.m = on_device_of(state.at(field(i, "m")), params_[i]);
    fresh.v = on_device_of(state.at(field(i, "v")), params_[i]);
    if (opt_.amsgrad) fresh.vmax = on_device_of(state.at(field(i, "vmax")), params_[i]);
  }
  state_[i] = std::move(fresh);
}

}  // namespace glimpse
