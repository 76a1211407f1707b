// conv2d: the differentiable 2-D convolution. Kernels in core/ops/conv2d.h (math and shapes there).
//
//   forward : out = conv(x, w) + b                       x [N,C,H,W], w [K,C/G,R,S], b [K]
//   backward: gx = conv_transpose(gout, w)               (conv2d_backward_data)
//             gw = sum_n gout_n * im2col(x_n)^T, gb = sum_{n,p,q} gout   (conv2d_backward_filter)
// Only the gradients asked for are computed: Grad-CAM wants gx alone and pays for no gw.
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/conv2d.h"

namespace glimpse {
namespace {

void check_conv_args(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  GLIMPSE_CHECK(x.defined(), "conv2d: the input is undefined");
  GLIMPSE_CHECK(w.defined(), "conv2d: the weight is undefined");
  GLIMPSE_CHECK(x.dim() == 4, "conv2d: input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(w.dim() == 4, "conv2d: weight must be [K, C/groups, R, S], got shape ", shape_str(w.shape()));
  check_same_device(x, w, "conv2d");
  GLIMPSE_CHECK(opt.groups >= 1, "conv2d: groups must be >= 1, got ", opt.groups);
  GLIMPSE_CHECK(opt.stride_h >= 1 && opt.stride_w >= 1, "conv2d: stride must be >= 1, got (", opt.stride_h, ", ",
                opt.stride_w, ")");
  GLIMPSE_CHECK(opt.dilation_h >= 1 && opt.dilation_w >= 1, "conv2d: dilation must be >= 1, got (", opt.dilation_h,
                ", ", opt.dilation_w, ")");
  GLIMPSE_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0, "conv2d: padding must be >= 0, got (", opt.pad_h, ", ", opt.pad_w,
                ")");
  const int64_t C = x.size(1), K = w.size(0), G = opt.groups;
  GLIMPSE_CHECK(C % G == 0, "conv2d: input channels ", C, " (input ", shape_str(x.shape()),
                ") are not divisible by groups=", G);
  GLIMPSE_CHECK(K % G == 0, "conv2d: output channels ", K, " (weight ", shape_str(w.shape()),
                ") are not divisible by groups=", G);
  GLIMPSE_CHECK(w.size(1) * G == C, "conv2d: input has ", C, " channels but weight ", shape_str(w.shape()),
                " expects ", w.size(1) * G, " (groups=", G, ")");
  GLIMPSE_CHECK(w.size(2) >= 1 && w.size(3) >= 1 && K >= 1, "conv2d: empty weight ", shape_str(w.shape()));
  if (b.defined()) {
    check_same_device(x, b, "conv2d");
    GLIMPSE_CHECK(b.dim() == 1 && b.size(0) == K, "conv2d: bias has shape ", shape_str(b.shape()), " but weight ",
                  shape_str(w.shape()), " has ", K, " output channels; bias must be [", K, "]");
  }
  const int64_t P = window_out_size(x.size(2), w.size(2), opt.stride_h, opt.pad_h, opt.dilation_h);
  const int64_t Q = window_out_size(x.size(3), w.size(3), opt.stride_w, opt.pad_w, opt.dilation_w);
  GLIMPSE_CHECK(P >= 1 && Q >= 1, "conv2d: input ", shape_str(x.shape()), " with padding (", opt.pad_h, ", ",
                opt.pad_w, ") is smaller than the kernel ", w.size(2), "x", w.size(3), " at dilation (",
                opt.dilation_h, ", ", opt.dilation_w, ")");
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  check_conv_args(x, weight, bias, opt);
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const int64_t P = window_out_size(x.size(2), weight.size(2), opt.stride_h, opt.pad_h, opt.dilation_h);
  const int64_t Q = window_out_size(x.size(3), weight.size(3), opt.stride_w, opt.pad_w, opt.dilation_w);
  Tensor out = Tensor::empty({x.size(0), weight.size(0), P, Q}, x.device());
  dispatch("conv2d", x.device(), &cpu::conv2d_forward, &DeviceKernels::conv2d_forward, out, xc, wc, bc, opt,
           /*relu=*/false);

  if (!grad_enabled() || !any_requires_grad({x, weight, bias})) return out;
  // Save only what a wanted gradient reads: gx reads w, gw reads x, gb reads neither.
  const Tensor x_saved = weight.requires_grad() ? xc.detach() : Tensor();
  const Tensor w_saved = x.requires_grad() ? wc.detach() : Tensor();
  const Shape x_shape = x.shape(), w_shape = weight.shape();
  const bool has_bias = bias.defined();
  return record("conv2d", out, {x, weight, bias},
                [x_saved, w_saved, x_shape, w_shape, has_bias, opt](const Tensor& grad_out,
                                                                   const std::vector<bool>& needs) {
                  const Tensor g = grad_out.contiguous();
                  std::vector<Tensor> grads(3);
                  if (needs[0]) {
                    grads[0] = Tensor::empty(x_shape, g.device());  // kernels overwrite (core/dispatch.h)
                    dispatch("conv2d", g.device(), &cpu::conv2d_backward_data, &DeviceKernels::conv2d_backward_data,
                             grads[0], g, w_saved, opt);
                  }
                  const bool want_b = has_bias && needs[2];
                  if (needs[1] || want_b) {
                    Tensor gw = needs[1] ? Tensor::empty(w_shape, g.device()) : Tensor();
                    Tensor gb = want_b ? Tensor::empty({w_shape[0]}, g.device()) : Tensor();
                    dispatch("conv2d", g.device(), &cpu::conv2d_backward_filter,
                             &DeviceKernels::conv2d_backward_filter, gw, gb, g, x_saved, opt);
                    grads[1] = gw;
                    grads[2] = gb;
                  }
                  return grads;
                });
}

Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  if (grad_enabled() && any_requires_grad({x, weight, bias})) return relu(conv2d(x, weight, bias, opt));
  check_conv_args(x, weight, bias, opt);
  const int64_t P = window_out_size(x.size(2), weight.size(2), opt.stride_h, opt.pad_h, opt.dilation_h);
  const int64_t Q = window_out_size(x.size(3), weight.size(3), opt.stride_w, opt.pad_w, opt.dilation_w);
  Tensor out = Tensor::empty({x.size(0), weight.size(0), P, Q}, x.device());
  dispatch("conv2d_relu", x.device(), &cpu::conv2d_forward, &DeviceKernels::conv2d_forward, out, x.contiguous(),
           weight.contiguous(), bias.defined() ? bias.contiguous() : Tensor(), opt, /*relu=*/true);
  return out;
}

}  // namespace glimpse
