// 2-D convolution on the GPU: the Tensor-level twins of core/ops/conv2d.cpp on cuDNN (its algorithm
// choice, cache and workspace: cuda/cudnn_conv.h).
//
// The CUDA twin of core/ops/conv2d.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_conv2d).
#include "core/ops/conv2d.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/cudnn_conv.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace conv2d_slots {

ConvGeometry geometry(const Tensor& x, const Shape& w_shape, const Conv2dOptions& opt) {
  ConvGeometry g;
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.K = w_shape[0], g.R = w_shape[2], g.S = w_shape[3];
  g.opt = opt;
  return g;
}

// Empty inputs, which the CPU accepts and cuDNN refuses (it needs every size >= 1), never reach
// cuDNN: an empty batch has nothing to compute; an input with no channels or an empty plane
// (padding may still give an output) convolves only zeros, so y is the bias alone and the filter
// gradient gains nothing.
// relu = true: ReLU in place on the output (the fusion the CPU does per block, here one more pass).
void conv2d_forward(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt,
                    bool relu) {
  const auto guard = on_device_of(out);
  const ConvGeometry g = geometry(x, w.shape(), opt);
  GLIMPSE_CHECK(out.shape() == (Shape{g.N, g.K, g.P(), g.Q()}), "cuda::conv2d_forward: out has shape ",
                shape_str(out.shape()), ", the convolution gives [", g.N, ", ", g.K, ", ", g.P(), ", ", g.Q(), "]");
  if (out.numel() == 0) return;
  float* y = device_data(out);
  if (x.numel() == 0) {
    out.fill_(0.f);
    if (b.defined()) cuda::bias_add_forward(y, y, device_data(b), g.N, g.K, g.P() * g.Q());
  } else {
    cuda::conv2d_forward(y, device_data(x), device_data(w), device_data_or_null(b), g);
  }
  if (relu) cuda::relu_forward(y, y, out.numel());
}

void conv2d_backward_data(Tensor& gx, const Tensor& gout, const Tensor& w, const Conv2dOptions& opt) {
  const auto guard = on_device_of(gx);
  if (gx.numel() == 0) return;
  cuda::conv2d_backward_data(device_data(gx), device_data(gout), device_data(w), geometry(gx, w.shape(), opt));
}

// Without gw (only the bias gradient wanted) cuDNN is not needed: gb[k] = sum over n, p, q of gout.
// An empty x gives a zero filter gradient.
void conv2d_backward_filter(Tensor& gw, Tensor& gb, const Tensor& gout, const Tensor& x, const Conv2dOptions& opt) {
  const auto guard = on_device_of(gout);
  if (!gw.defined() || x.numel() == 0) {
    if (gw.defined()) gw.fill_(0.f);
    if (gb.defined())
      bias_add_backward(device_data(gb), device_data(gout), gout.size(0), gout.size(1), gout.size(2) * gout.size(3));
    return;
  }
  cuda::conv2d_backward_filter(device_data(gw), device_data_or_null(gb), device_data(gout), device_data(x),
                               geometry(x, gw.shape(), opt));
}

}  // namespace conv2d_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_conv2d(DeviceKernels& k) {
  k.conv2d_forward = &conv2d_slots::conv2d_forward;
  k.conv2d_backward_data = &conv2d_slots::conv2d_backward_data;
  k.conv2d_backward_filter = &conv2d_slots::conv2d_backward_filter;
}

}  // namespace glimpse::cuda
