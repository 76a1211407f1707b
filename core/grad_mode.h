// Thread-local autograd switches: grad mode (NoGradGuard) and the backward rule of ReLU.
#pragma once
#include "core/ops/activation.h"

namespace glimpse {

// Whether ops record on the tape in this thread.
bool grad_enabled();
void set_grad_enabled(bool on);

// Scope in which nothing is recorded (inference, optimizer updates, evaluation).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// The backward rule ReLU uses (ReluRule, core/ops/activation.h), read when backward runs (not when
// forward ran), so attribution can re-run one backward pass under another rule.
ReluRule relu_rule();
void set_relu_rule(ReluRule rule);

class ReluRuleGuard {
 public:
  explicit ReluRuleGuard(ReluRule rule) : prev_(relu_rule()) { set_relu_rule(rule); }
  ~ReluRuleGuard() { set_relu_rule(prev_); }
  ReluRuleGuard(const ReluRuleGuard&) = delete;
  ReluRuleGuard& operator=(const ReluRuleGuard&) = delete;

 private:
  ReluRule prev_;
};

}  // namespace glimpse
