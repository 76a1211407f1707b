#include "layers/optim.h"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.h"
#include "core/error.h"

namespace glimpse {
namespace {

// The gradient of p as a contiguous CPU tensor, or undefined if backward never reached p.
Tensor cpu_grad(const Tensor& p, const char* opt) {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  GLIMPSE_CHECK(p.device().is_cpu() && g.device().is_cpu(), opt, ": parameters on ", p.device().str(),
                " are not supported yet; optimizers update CPU tensors");
  GLIMPSE_CHECK(g.shape() == p.shape(), opt, ": gradient shape ", shape_str(g.shape()), " differs from parameter shape ",
                shape_str(p.shape()));
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
  const float lr = lr_, mu = opt_.momentum, wd = opt_.weight_decay, damp = 1.f - opt_.dampening;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = cpu_grad(params_[i], "SGD");
    if (!g.defined()) continue;
    float* p = params_[i].data();
    const float* gp = g.data();
    const int64_t n = params_[i].numel();
    if (mu == 0.f) {
      for (int64_t k = 0; k < n; ++k) p[k] -= lr * (gp[k] + wd * p[k]);
      continue;
    }
    const bool first = !momentum_[i].defined();
    if (first) momentum_[i] = Tensor::empty(params_[i].shape());
    float* buf = momentum_[i].data();
    for (int64_t k = 0; k < n; ++k) {
      const float d = gp[k] + wd * p[k];
      buf[k] = first ? d : mu * buf[k] + damp * d;
      p[k] -= lr * (opt_.nesterov ? d + mu * buf[k] : buf[k]);
    }
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
  const float lr = lr_, b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps, wd = opt_.weight_decay;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = cpu_grad(params_[i], decoupled_ ? "AdamW" : "Adam");
    if (!g.defined()) continue;
    State& s = state_[i];
    if (s.t == 0) {
      s.m = Tensor::zeros(params_[i].shape());
      s.v = Tensor::zeros(params_[i].shape());
      if (opt_.amsgrad) s.vmax = Tensor::zeros(params_[i].shape());
    }
    ++s.t;
    const float bc1 = 1.f - static_cast<float>(std::pow(static_cast<double>(b1), static_cast<double>(s.t)));
    const float bc2 = 1.f - static_cast<float>(std::pow(static_cast<double>(b2), static_cast<double>(s.t)));
    const float step_size = lr / bc1;
    const float bc2_sqrt = std::sqrt(bc2);
    float* p = params_[i].data();
    const float* gp = g.data();
    float* m = s.m.data();
    float* v = s.v.data();
    float* vmax = opt_.amsgrad ? s.vmax.data() : nullptr;
    const int64_t n = params_[i].numel();
    const float decay = decoupled_ ? 1.f - lr * wd : 1.f;
    for (int64_t k = 0; k < n; ++k) {
      float gk = gp[k];
      if (decoupled_) p[k] *= decay;
      else gk += wd * p[k];
      m[k] = b1 * m[k] + (1.f - b1) * gk;
      v[k] = b2 * v[k] + (1.f - b2) * gk * gk;
      float vk = v[k];
      if (vmax) vk = vmax[k] = std::max(vmax[k], vk);
      p[k] -= step_size * m[k] / (std::sqrt(vk) / bc2_sqrt + eps);
    }
  }
  ++steps_;
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options) : Adam(std::move(params), options, true) {}

}  // namespace glimpse
