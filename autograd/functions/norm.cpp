// batch_norm: normalization over N, H, W per channel. Math, both modes and the gradient formulas in
// core/ops/batch_norm.h.
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/batch_norm.h"

namespace glimpse {
namespace {

void check_channel_vector(const Tensor& t, const Tensor& x, const char* what) {
  if (!t.defined()) return;
  check_same_device(x, t, "batch_norm");
  GLIMPSE_CHECK(t.dim() == 1 && t.size(0) == x.size(1), "batch_norm: ", what, " has shape ", shape_str(t.shape()),
                " but input ", shape_str(x.shape()), " has ", x.size(1), " channels; it must be [", x.size(1), "]");
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps) {
  GLIMPSE_CHECK(x.defined(), "batch_norm: the input is undefined");
  GLIMPSE_CHECK(x.dim() >= 2, "batch_norm: input must be [N, C, ...], got shape ", shape_str(x.shape()));
  check_channel_vector(gamma, x, "gamma");
  check_channel_vector(beta, x, "beta");
  check_channel_vector(running_mean, x, "running_mean");
  check_channel_vector(running_var, x, "running_var");
  GLIMPSE_CHECK(eps > 0.f, "batch_norm: eps must be positive, got ", eps);
  GLIMPSE_CHECK(running_mean.defined() == running_var.defined(),
                "batch_norm: running_mean and running_var must both be given or both be undefined");
  GLIMPSE_CHECK(training || running_mean.defined(),
                "batch_norm: eval mode needs running_mean and running_var (got undefined tensors)");
  // The running statistics are buffers updated in place: they must not be part of a graph.
  GLIMPSE_CHECK(!running_mean.defined() || (!running_mean.requires_grad() && !running_var.requires_grad()),
                "batch_norm: running_mean / running_var must not require a gradient");
  GLIMPSE_CHECK(!running_mean.defined() || (running_mean.is_contiguous() && running_var.is_contiguous()),
                "batch_norm: running_mean / running_var must be contiguous (they are updated in place)");

  const int64_t C = x.size(1);
  const Tensor xc = x.contiguous();
  const Tensor gc = gamma.defined() ? gamma.contiguous() : Tensor();
  const Tensor bc = beta.defined() ? beta.contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.device());
  Tensor mean = Tensor::empty({C}, x.device()), invstd = Tensor::empty({C}, x.device());
  if (training)
    dispatch("batch_norm", x.device(), &cpu::batch_norm_forward_train, &DeviceKernels::batch_norm_forward_train, out,
             mean, invstd, running_mean, running_var, xc, gc, bc, momentum, eps);
  else
    dispatch("batch_norm", x.device(), &cpu::batch_norm_forward_eval, &DeviceKernels::batch_norm_forward_eval, out,
             mean, invstd, xc, gc, bc, running_mean, running_var, eps);

  if (!grad_enabled() || !any_requires_grad({x, gamma, beta})) return out;
  const Tensor x_saved = xc.detach();
  const Tensor g_saved = gc.defined() ? gc.detach() : Tensor();
  return record("batch_norm", out, {x, gamma, beta},
                [x_saved, g_saved, mean, invstd, training, eps](const Tensor& grad_out, const std::vector<bool>& needs) {
                  const Tensor g = grad_out.contiguous();
                  std::vector<Tensor> grads(3);
                  const Shape cs{x_saved.size(1)};
                  // The kernel overwrites every gradient it is given (core/dispatch.h).
                  if (needs[0]) grads[0] = Tensor::empty(x_saved.shape(), g.device());
                  if (needs[1]) grads[1] = Tensor::empty(cs, g.device());
                  if (needs[2]) grads[2] = Tensor::empty(cs, g.device());
                  dispatch("batch_norm", g.device(), &cpu::batch_norm_backward, &DeviceKernels::batch_norm_backward,
                           grads[0], grads[1], grads[2], g, x_saved, g_saved, mean, invstd, training, eps);
                  return grads;
                });
}

}  // namespace glimpse
