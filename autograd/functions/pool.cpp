// Pooling and resizing ops: max_pool2d, avg_pool2d, global_avg_pool, upsample_bilinear.
// Kernels (math, shapes, tie and padding rules) in core/ops/pool2d.h and core/ops/upsample.h.
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/pool2d.h"
#include "core/ops/upsample.h"

namespace glimpse {
namespace {

// Validates x and the window; returns the output shape [N, C, P, Q].
Shape pool_out_shape(const Tensor& x, const Pool2dOptions& opt, const char* op) {
  GLIMPSE_CHECK(x.defined(), op, ": the input is undefined");
  GLIMPSE_CHECK(x.dim() == 4, op, ": input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(opt.kernel_h >= 1 && opt.kernel_w >= 1, op, ": kernel must be >= 1, got ", opt.kernel_h, "x",
                opt.kernel_w);
  GLIMPSE_CHECK(opt.stride_h >= 1 && opt.stride_w >= 1, op, ": stride must be >= 1, got (", opt.stride_h, ", ",
                opt.stride_w, ")");
  // PyTorch's rule: a window must always hold at least one real cell.
  GLIMPSE_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0 && 2 * opt.pad_h <= opt.kernel_h && 2 * opt.pad_w <= opt.kernel_w,
                op, ": padding (", opt.pad_h, ", ", opt.pad_w, ") must be >= 0 and at most half the kernel ",
                opt.kernel_h, "x", opt.kernel_w);
  const int64_t P = window_out_size(x.size(2), opt.kernel_h, opt.stride_h, opt.pad_h);
  const int64_t Q = window_out_size(x.size(3), opt.kernel_w, opt.stride_w, opt.pad_w);
  GLIMPSE_CHECK(P >= 1 && Q >= 1, op, ": input ", shape_str(x.shape()), " with padding (", opt.pad_h, ", ",
                opt.pad_w, ") is smaller than the kernel ", opt.kernel_h, "x", opt.kernel_w);
  return {x.size(0), x.size(1), P, Q};
}

}  // namespace

// y = max over each window; the gradient goes to the window's first maximal cell.
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  const Shape os = pool_out_shape(x, opt, "max_pool2d");
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(os, x.device());
  dispatch("max_pool2d", x.device(), &cpu::max_pool2d_forward, &DeviceKernels::max_pool2d_forward, out, xc, opt);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Tensor x_saved = xc.detach();
  return record("max_pool2d", out, {x}, [x_saved, opt](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_saved.shape(), x_saved.device());
    dispatch("max_pool2d", x_saved.device(), &cpu::max_pool2d_backward, &DeviceKernels::max_pool2d_backward, gx,
             grad_out.contiguous(), x_saved, opt);
    return std::vector<Tensor>{gx};
  });
}

// The fused pair (core/ops/pool2d.h): saves x only; the ReLU rule is read when backward runs, as
// relu() does, so deconvnet and guided backprop see the same gradients as through the two ops.
Tensor relu_max_pool2x2(const Tensor& x) {
  const Pool2dOptions opt = Pool2dOptions::square(2, 2);
  const Shape os = pool_out_shape(x, opt, "relu_max_pool2x2");
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(os, x.device());
  dispatch("relu_max_pool2x2", x.device(), &cpu::relu_max_pool2x2_forward, &DeviceKernels::relu_max_pool2x2_forward,
           out, xc);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Tensor x_saved = xc.detach();
  return record("relu_max_pool2x2", out, {x}, [x_saved](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_saved.shape(), x_saved.device());
    dispatch("relu_max_pool2x2", x_saved.device(), &cpu::relu_max_pool2x2_backward,
             &DeviceKernels::relu_max_pool2x2_backward, gx, grad_out.contiguous(), x_saved, relu_rule());
    return std::vector<Tensor>{gx};
  });
}

// y = (sum over the window) / (kh*kw), padded cells counting; gx spreads gy/(kh*kw) over each window.
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  const Shape os = pool_out_shape(x, opt, "avg_pool2d");
  Tensor out = Tensor::empty(os, x.device());
  dispatch("avg_pool2d", x.device(), &cpu::avg_pool2d_forward, &DeviceKernels::avg_pool2d_forward, out, x.contiguous(),
           opt);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Shape x_shape = x.shape();
  const Device dev = x.device();
  return record("avg_pool2d", out, {x}, [x_shape, dev, opt](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_shape, dev);  // the kernel writes every cell
    dispatch("avg_pool2d", dev, &cpu::avg_pool2d_backward, &DeviceKernels::avg_pool2d_backward, gx,
             grad_out.contiguous(), opt);
    return std::vector<Tensor>{gx};
  });
}

// [N, C, H, W] -> [N, C]: y = mean over H, W; gx = gy / (H*W) everywhere.
Tensor global_avg_pool(const Tensor& x) {
  GLIMPSE_CHECK(x.defined(), "global_avg_pool: the input is undefined");
  GLIMPSE_CHECK(x.dim() == 4, "global_avg_pool: input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(x.size(2) * x.size(3) > 0, "global_avg_pool: input ", shape_str(x.shape()), " has no pixels");
  Tensor out = Tensor::empty({x.size(0), x.size(1)}, x.device());
  dispatch("global_avg_pool", x.device(), &cpu::global_avg_pool_forward, &DeviceKernels::global_avg_pool_forward, out,
           x.contiguous());
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Shape x_shape = x.shape();
  const Device dev = x.device();
  return record("global_avg_pool", out, {x}, [x_shape, dev](const Tensor& grad_out, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x_shape, dev);  // the kernel writes every cell
    dispatch("global_avg_pool", dev, &cpu::global_avg_pool_backward, &DeviceKernels::global_avg_pool_backward, gx,
             grad_out.contiguous());
    return std::vector<Tensor>{gx};
  });
}

// Bilinear resize (PyTorch's F.interpolate(mode='bilinear', size=...)); gx scatters gy with the
// same interpolation weights.
Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  GLIMPSE_CHECK(x.defined(), "upsample_bilinear: the input is undefined");
  GLIMPSE_CHECK(x.dim() == 4, "upsample_bilinear: input must be [N, C, H, W], got shape ", shape_str(x.shape()));
  GLIMPSE_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "upsample_bilinear: input ", shape_str(x.shape()),
                " has no pixels");
  GLIMPSE_CHECK(out_h >= 1 && out_w >= 1, "upsample_bilinear: output size must be positive, got ", out_h, "x", out_w,
                " for input ", shape_str(x.shape()));
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.device());
  dispatch("upsample_bilinear", x.device(), &cpu::upsample_bilinear_forward, &DeviceKernels::upsample_bilinear_forward,
           out, x.contiguous(), align_corners);
  if (!grad_enabled() || !x.requires_grad()) return out;
  const Shape x_shape = x.shape();
  const Device dev = x.device();
  return record("upsample_bilinear", out, {x},
                [x_shape, dev, align_corners](const Tensor& grad_out, const std::vector<bool>&) {
                  Tensor gx = Tensor::empty(x_shape, dev);  // the kernel writes every cell
                  dispatch("upsample_bilinear", dev, &cpu::upsample_bilinear_backward,
                           &DeviceKernels::upsample_bilinear_backward, gx, grad_out.contiguous(), align_corners);
                  return std::vector<Tensor>{gx};
                });
}

}  // namespace glimpse
