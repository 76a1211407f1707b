#include "core/grad_mode.h"

namespace glimpse {
namespace {
thread_local bool g_grad_enabled = true;
thread_local ReluRule g_relu_rule = ReluRule::Standard;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }
ReluRule relu_rule() { return g_relu_rule; }
void set_relu_rule(ReluRule rule) { g_relu_rule = rule; }

}  // namespace glimpse
