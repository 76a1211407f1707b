// Optimizers with PyTorch's exact update rules (torch.optim.SGD / Adam / AdamW, foreach=False),
// so a run can be reproduced against PyTorch step by step.
//
// step() reads each parameter's .grad and updates its data in place, outside the tape
// (NoGradGuard). Parameters whose grad is undefined (never reached by backward) are skipped and
// their state does not advance -- as PyTorch skips p.grad is None. Parameters may live on any device
// whose backend registered the update kernels (core/dispatch.h); the state is created on the
// parameter's device, so move the model (Module::to) before building its optimizer. state_dict()
// copies to the CPU; load_state_dict() copies onto each parameter's device.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glimpse {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, float lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  void zero_grad();  // clears every parameter's .grad

  float lr() const { return lr_; }
  void set_lr(float lr);
  // The learning rate given at construction; schedules scale from it.
  float base_lr() const { return base_lr_; }
  const std::vector<Tensor>& params() const { return params_; }
  int64_t steps() const { return steps_; }  // step() calls so far

  // The running state, for checkpoints (layers/checkpoint.h), by name: "steps" ([1], the step()
  // count) and per parameter "<i>.<field>" with i its index in params() -- SGD: "<i>.momentum";
  // Adam/AdamW: "<i>.m", "<i>.v", "<i>.vmax" (AMSGrad) and "<i>.t" ([1], its own step count).
  // A parameter that has not stepped yet has no entries. Counts are stored as float32 (exact up to
  // 2^24 steps). The tensors are copies.
  std::map<std::string, Tensor> state_dict() const;
  // Restores what state_dict() gave, for the same parameters in the same order. Everything is
  // checked first (unknown or missing names, shapes, counts): a refused state changes nothing.
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  // Per-parameter fields of the subclass (name -> tensor), written into / read from a state dict.
  virtual void save_param_state(size_t i, std::map<std::string, Tensor>& out) const = 0;
  // Checks state's fields for parameter i (prefix "<i>.") without changing anything; returns the
  // names it accepts. Errors name the field and the shapes.
  virtual std::vector<std::string> check_param_state(size_t i, const std::map<std::string, Tensor>& state) const = 0;
  virtual void load_param_state(size_t i, const std::map<std::string, Tensor>& state) = 0;

  std::vector<Tensor> params_;
  float lr_, base_lr_;
  int64_t steps_ = 0;
};

struct SGDOptions {
  float lr = 0.01f;
  float momentum = 0.f;
  float dampening = 0.f;
  bool nesterov = false;
  float weight_decay = 0.f;
};

// With g = grad + weight_decay * p:
//   momentum == 0 : p -= lr * g
//   otherwise     : buf = g on the first step, else buf = momentum * buf + (1 - dampening) * g;
//                   d = nesterov ? g + momentum * buf : buf;   p -= lr * d
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  void step() override;
  const SGDOptions& options() const { return opt_; }

 protected:
  void save_param_state(size_t i, std::map<std::string, Tensor>& out) const override;
  std::vector<std::string> check_param_state(size_t i, const std::map<std::string, Tensor>& state) const override;
  void load_param_state(size_t i, const std::map<std::string, Tensor>& state) override;

 private:
  SGDOptions opt_;
  std::vector<Tensor> momentum_;  // per parameter, undefined until its first step
};

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;  // Adam: L2 added to the gradient; AdamW: decoupled (default 1e-2)
  bool amsgrad = false;
};

// Adam (Kingma & Ba 2015) in PyTorch's form, t = this parameter's step count:
//   g = grad (+ weight_decay * p for Adam);  AdamW first decays p *= 1 - lr * weight_decay
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2   (amsgrad: vmax = max(vmax, v), used for v)
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options);
  void step() override;
  const AdamOptions& options() const { return opt_; }

 protected:
  Adam(std::vector<Tensor> params, AdamOptions options, bool decoupled);
  void save_param_state(size_t i, std::map<std::string, Tensor>& out) const override;
  std::vector<std::string> check_param_state(size_t i, const std::map<std::string, Tensor>& state) const override;
  void load_param_state(size_t i, const std::map<std::string, Tensor>& state) override;

 private:
  AdamOptions opt_;
  bool decoupled_;
  struct State {
    int64_t t = 0;
    Tensor m, v, vmax;
  };
  std::vector<State> state_;
};

// Loshchilov & Hutter 2019: weight decay applied to the weights, not through the gradient moments.
class AdamW : public Adam {
 public:
  static AdamOptions defaults() {
    AdamOptions o;
    o.weight_decay = 1e-2f;
    return o;
  }
  AdamW(std::vector<Tensor> params, AdamOptions options = defaults());
};

}  // namespace glimpse
