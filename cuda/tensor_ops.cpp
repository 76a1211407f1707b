// The Tensor-level CUDA twins of core/ops (see cuda/tensor_ops.h), and their registration into
// core's dispatch table. In the order of core/dispatch.h's slots.
#include "cuda/tensor_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/reduce.h"
#include "cuda/check.h"
#include "cuda/cudnn_batch_norm.h"
#include "cuda/cudnn_conv.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"

namespace glimpse::cuda {

float* device_data(const Tensor& t) {
  GLIMPSE_CHECK(t.defined() && t.device().is_cuda(), "cuda: expected a tensor on a CUDA device, got ",
                t.defined() ? t.device().str() : std::string("an undefined tensor"));
  GLIMPSE_CHECK(t.is_contiguous(), "cuda: the tensor of shape ", shape_str(t.shape()), " is not contiguous");
  return t.impl()->storage->data() + t.impl()->offset;
}

float* device_data_or_null(const Tensor& t) { return t.defined() ? device_data(t) : nullptr; }

namespace {

// ---- element-wise (kernels: cuda/elementwise.cu) ----
void binary_forward(Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) {
  const auto guard = on_device_of(out);
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  cuda::binary_forward(device_data(out), out.shape(), device_data(ac), ac.shape(), device_data(bc), bc.shape(), op);
}

void unary_forward(Tensor& out, const Tensor& x, UnaryOp op) {
  const auto guard = on_device_of(out);
  cuda::unary_forward(device_data(out), device_data(x.contiguous()), out.numel(), op);
}

void affine_forward(Tensor& out, const Tensor& x, float scale, float shift) {
  const auto guard = on_device_of(out);
  cuda::affine_forward(device_data(out), device_data(x.contiguous()), out.numel(), scale, shift);
}

void reduce_sum_to(Tensor& out, const Tensor& in) {
  // The CPU twin refuses a shape `in` does not broadcast from; so does this, before any launch.
  GLIMPSE_CHECK(broadcast_shapes(out.shape(), in.shape(), "sum_to") == in.shape(), "sum_to: cannot reduce ",
                shape_str(in.shape()), " to ", shape_str(out.shape()));
  const auto guard = on_device_of(out);
  const Tensor ic = in.contiguous();
  cuda::reduce_sum_to(device_data(out), out.shape(), device_data(ic), ic.shape());
}

// ---- activations (cuda/activation.cu) ----
void relu_forward(Tensor& out, const Tensor& x) {
  const auto guard = on_device_of(out);
  cuda::relu_forward(device_data(out), device_data(x), out.numel());
}

void relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  const auto guard = on_device_of(gx);
  cuda::relu_backward(device_data(gx), device_data(gout), device_data(x), gx.numel(), rule);
}

void leaky_relu_forward(Tensor& out, const Tensor& x, float slope) {
  const auto guard = on_device_of(out);
  cuda::leaky_relu_forward(device_data(out), device_data(x), out.numel(), slope);
}

void leaky_relu_backward(Tensor& gx, const Tensor& gout, const Tensor& x, float slope) {
  const auto guard = on_device_of(gx);
  cuda::leaky_relu_backward(device_data(gx), device_data(gout), device_data(x), gx.numel(), slope);
}

// ---- reductions and softmax (cuda/reduce.cu) ----
// A sum over the whole tensor (one output) runs the two-pass block reduction; one thread per output
// would add every value on a single GPU thread.
void sum_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(out);
  if (s.outer * s.inner == 1) cuda::sum_all_forward(device_data(out), device_data(x), s.len);
  else cuda::sum_dim_forward(device_data(out), device_data(x), s.outer, s.len, s.inner);
}

void sum_dim_backward(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale) {
  const auto guard = on_device_of(gx);
  cuda::sum_dim_backward(device_data(gx), device_data(gout), s.outer, s.len, s.inner, scale);
}

// softmax and log_softmax: the same launcher shapes, y = f(x) and gx = f'(gy, y) along the dim.
template <auto launcher>
void along_dim_forward(Tensor& y, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(y);
  launcher(device_data(y), device_data(x), s.outer, s.len, s.inner, 0);
}

template <auto launcher>
void along_dim_backward(Tensor& gx, const Tensor& gy, const Tensor& y, const DimSplit& s) {
  const auto guard = on_device_of(gx);
  launcher(device_data(gx), device_data(gy), device_data(y), s.outer, s.len, s.inner, 0);
}

void max_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(out);
  cuda::max_dim_forward(device_data(out), device_data(x), s.outer, s.len, s.inner);
}

void max_dim_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(gx);
  cuda::max_dim_backward(device_data(gx), device_data(gout), device_data(x), s.outer, s.len, s.inner);
}

// ---- convolution (cuDNN: cuda/cudnn_conv.cu) ----
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

// ---- batch norm (cuDNN: cuda/cudnn_batch_norm.cu) ----
// x [N, C, *] as the [N, C, L] the wrapper takes (L = 1 for [N, C]).
int64_t bn_plane(const Tensor& x) {
  int64_t L = 1;
  for (int64_t d = 2; d < x.dim(); ++d) L *= x.size(d);
  return L;
}

void batch_norm_forward_train(Tensor& y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                              Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              float momentum, float eps) {
  const auto guard = on_device_of(y);
  cuda::batch_norm_forward_train(device_data(y), device_data(save_mean), device_data(save_invstd),
                                 device_data_or_null(running_mean), device_data_or_null(running_var), device_data(x),
                                 device_data_or_null(gamma), device_data_or_null(beta), x.size(0), x.size(1),
                                 bn_plane(x), momentum, eps);
}

void batch_norm_forward_eval(Tensor& y, Tensor& save_mean, Tensor& save_invstd, const Tensor& x, const Tensor& gamma,
                             const Tensor& beta, const Tensor& running_mean, const Tensor& running_var, float eps) {
  const auto guard = on_device_of(y);
  cuda::batch_norm_forward_eval(device_data(y), device_data(save_mean), device_data(save_invstd), device_data(x),
                                device_data_or_null(gamma), device_data_or_null(beta), device_data(running_mean),
                                device_data(running_var), x.size(0), x.size(1), bn_plane(x), eps);
}

void batch_norm_backward(Tensor& gx, Tensor& ggamma, Tensor& gbeta, const Tensor& gout, const Tensor& x,
                         const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd, bool training,
                         float eps) {
  const auto guard = on_device_of(gout);
  cuda::batch_norm_backward(device_data_or_null(gx), device_data_or_null(ggamma), device_data_or_null(gbeta),
                            device_data(gout), device_data(x), device_data_or_null(gamma), device_data(save_mean),
                            device_data(save_invstd), x.size(0), x.size(1), bn_plane(x), training, eps);
}

// ---- pooling (cuda/pool2d.cu) ----
void max_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt) {
  const auto guard = on_device_of(out);
  cuda::max_pool2d_forward(device_data(out), nullptr, device_data(x), x.size(0), x.size(1), x.size(2), x.size(3), opt);
}

// The window argmax of x (first maximal cell), recomputed as the CPU twin recomputes it.
DeviceBuffer window_argmax(const Tensor& x, const Shape& out_shape, const Pool2dOptions& opt) {
  const int64_t n_out = shape_numel(out_shape);
  DeviceBuffer argmax(static_cast<size_t>(n_out) * sizeof(int32_t), x.device().index);
  DeviceBuffer scratch(static_cast<size_t>(n_out) * sizeof(float), x.device().index);
  cuda::max_pool2d_forward(scratch.as<float>(), argmax.as<int32_t>(), device_data(x), x.size(0), x.size(1), x.size(2),
                           x.size(3), opt);
  return argmax;
}

void max_pool2d_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const Pool2dOptions& opt) {
  const auto guard = on_device_of(gx);
  const DeviceBuffer argmax = window_argmax(x, gout.shape(), opt);
  cuda::max_pool2d_backward(device_data(gx), device_data(gout), argmax.as<int32_t>(), x.size(0), x.size(1), x.size(2),
                            x.size(3), opt);
}

// One fused kernel each way, with the CPU's window rule (cuda/pool2d.cu).
void relu_max_pool2x2_forward(Tensor& out, const Tensor& x) {
  const auto guard = on_device_of(out);
  cuda::relu_max_pool2x2_forward(device_data(out), device_data(x), x.size(0) * x.size(1), x.size(2), x.size(3));
}

void relu_max_pool2x2_backward(Tensor& gx, const Tensor& gout, const Tensor& x, ReluRule rule) {
  const auto guard = on_device_of(gx);
  cuda::relu_max_pool2x2_backward(device_data(gx), device_data(gout), device_data(x), x.size(0) * x.size(1), x.size(2),
                                  x.size(3), rule);
}

void avg_pool2d_forward(Tensor& out, const Tensor& x, const Pool2dOptions& opt) {
  const auto guard = on_device_of(out);
  cuda::avg_pool2d_forward(device_data(out), device_data(x), x.size(0), x.size(1), x.size(2), x.size(3), opt);
}

void avg_pool2d_backward(Tensor& gx, const Tensor& gout, const Pool2dOptions& opt) {
  const auto guard = on_device_of(gx);
  cuda::avg_pool2d_backward(device_data(gx), device_data(gout), gx.size(0), gx.size(1), gx.size(2), gx.size(3), opt);
}

void global_avg_pool_forward(Tensor& out, const Tensor& x) {
  const auto guard = on_device_of(out);
  cuda::global_avg_pool_forward(device_data(out), device_data(x), x.size(0) * x.size(1), x.size(2) * x.size(3));
}

void global_avg_pool_backward(Tensor& gx, const Tensor& gout) {
  const auto guard = on_device_of(gx);
  cuda::global_avg_pool_backward(device_data(gx), device_data(gout), gx.size(0) * gx.size(1), gx.size(2) * gx.size(3));
}

// ---- bilinear resize (cuda/upsample.cu) ----
void upsample_bilinear_forward(Tensor& out, const Tensor& x, bool align_corners) {
  const auto guard = on_device_of(out);
  cuda::upsample_bilinear_forward(device_data(out), device_data(x), x.size(0) * x.size(1), x.size(2), x.size(3),
                                  out.size(2), out.size(3), align_corners);
}

void upsample_bilinear_backward(Tensor& gx, const Tensor& gout, bool align_corners) {
  const auto guard = on_device_of(gx);
  cuda::upsample_bilinear_backward(device_data(gx), device_data(gout), gx.size(0) * gx.size(1), gx.size(2),
                                   gx.size(3), gout.size(2), gout.size(3), align_corners);
}

// ---- cross-entropy (cuda/loss.cu) ----
// The class indices on the device (validated on the host by the autograd op).
DeviceBuffer upload_targets(const std::vector<int64_t>& targets, int device) {
  DeviceBuffer buf(targets.size() * sizeof(int64_t), device);
  CUDA_CHECK(cudaMemcpy(buf.data(), targets.data(), targets.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  return buf;
}

void cross_entropy_forward(Tensor& loss, Tensor& wsum, Tensor& logp, const Tensor& logits,
                           const std::vector<int64_t>& targets, const Tensor& class_weights) {
  const auto guard = on_device_of(logits);
  const DeviceBuffer t = upload_targets(targets, logits.device().index);
  cuda::cross_entropy_forward(device_data(loss), device_data(wsum), device_data(logp), device_data(logits),
                              t.as<int64_t>(), device_data_or_null(class_weights), logits.size(0), logits.size(1));
}

void cross_entropy_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logp,
                            const std::vector<int64_t>& targets, const Tensor& class_weights, const Tensor& wsum) {
  const auto guard = on_device_of(glogits);
  const DeviceBuffer t = upload_targets(targets, logp.device().index);
  cuda::cross_entropy_backward(device_data(glogits), device_data(gloss), device_data(logp), t.as<int64_t>(),
                               device_data_or_null(class_weights), device_data(wsum), logp.size(0), logp.size(1));
}

// ---- binary cross-entropy (cuda/loss.cu) ----
int64_t pos_weight_period(const Tensor& pos_weight) { return pos_weight.defined() ? pos_weight.numel() : 1; }

void bce_with_logits_forward(Tensor& loss, const Tensor& logits, const Tensor& targets, const Tensor& pos_weight) {
  const auto guard = on_device_of(logits);
  cuda::bce_with_logits_forward(device_data(loss), device_data(logits), device_data(targets),
                                device_data_or_null(pos_weight), logits.numel(), pos_weight_period(pos_weight));
}

void bce_with_logits_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logits, const Tensor& targets,
                              const Tensor& pos_weight) {
  const auto guard = on_device_of(glogits);
  cuda::bce_with_logits_backward(device_data(glogits), device_data(gloss), device_data(logits), device_data(targets),
                                 device_data_or_null(pos_weight), logits.numel(), pos_weight_period(pos_weight));
}

// ---- block copies for concat and pad2d (cuda/shape.cu) ----
// x (forward) or gx (backward) is [outer, len, inner] around dim, a block of the concatenation
// [outer, total, inner].
void concat_forward(Tensor& out, const Tensor& x, int64_t dim, int64_t at) {
  const auto guard = on_device_of(out);
  const DimSplit s = split_at(x.shape(), dim, "concat");
  cuda::concat_forward(device_data(out), device_data(x), s.outer, s.len, s.inner, out.size(dim), at);
}

void concat_backward(Tensor& gx, const Tensor& gout, int64_t dim, int64_t at) {
  const auto guard = on_device_of(gx);
  const DimSplit s = split_at(gx.shape(), dim, "concat");
  cuda::concat_backward(device_data(gx), device_data(gout), s.outer, s.len, s.inner, gout.size(dim), at);
}

// Planes counted on the padded tensor: x may have empty planes (H or W = 0) whose padding still
// has to be written.
int64_t padded_planes(const Tensor& padded) {
  return padded.numel() / std::max<int64_t>(padded.size(-2) * padded.size(-1), 1);
}

void pad2d_forward(Tensor& out, const Tensor& x, int64_t top, int64_t left, float value) {
  const auto guard = on_device_of(out);
  cuda::pad2d_forward(device_data(out), device_data(x), padded_planes(out), x.size(-2), x.size(-1), out.size(-2),
                      out.size(-1), top, left, value);
}

void pad2d_backward(Tensor& gx, const Tensor& gout, int64_t top, int64_t left) {
  const auto guard = on_device_of(gx);
  cuda::pad2d_backward(device_data(gx), device_data(gout), padded_planes(gout), gx.size(-2), gx.size(-1),
                       gout.size(-2), gout.size(-1), top, left);
}

// ---- optimizers (cuda/optim.cu) ----
void sgd_step(Tensor& p, Tensor& momentum_buf, const Tensor& g, float lr, float momentum, float dampening,
              bool nesterov, float weight_decay, bool first_step) {
  const auto guard = on_device_of(p);
  cuda::sgd_step(device_data(p), momentum == 0.f ? nullptr : device_data(momentum_buf), device_data(g), p.numel(), lr,
                 momentum, dampening, nesterov, weight_decay, first_step);
}

void adam_step(Tensor& p, Tensor& m, Tensor& v, Tensor& vmax, const Tensor& g, float lr, float beta1, float beta2,
               float eps, float weight_decay, bool decoupled, int64_t t) {
  const auto guard = on_device_of(p);
  cuda::adam_step(device_data(p), device_data(m), device_data(v), device_data_or_null(vmax), device_data(g),
                  p.numel(), lr, beta1, beta2, eps, weight_decay, decoupled, t);
}

}  // namespace

// Each assignment picks the Tensor-level overload by the slot's type, so a signature that drifts
// from the CPU twin's stops the build here.
void register_kernels() {
  DeviceKernels& k = cuda_kernels();
  k.binary_forward = &binary_forward;
  k.unary_forward = &unary_forward;
  k.affine_forward = &affine_forward;
  k.reduce_sum_to = &reduce_sum_to;
  k.add_scaled = &add_scaled;
  k.relu_forward = &relu_forward;
  k.relu_backward = &relu_backward;
  k.leaky_relu_forward = &leaky_relu_forward;
  k.leaky_relu_backward = &leaky_relu_backward;
  k.sum_dim_forward = &sum_dim_forward;
  k.sum_dim_backward = &sum_dim_backward;
  k.softmax_forward = &along_dim_forward<&cuda::softmax_forward>;
  k.softmax_backward = &along_dim_backward<&cuda::softmax_backward>;
  k.log_softmax_forward = &along_dim_forward<&cuda::log_softmax_forward>;
  k.log_softmax_backward = &along_dim_backward<&cuda::log_softmax_backward>;
  k.max_dim_forward = &max_dim_forward;
  k.max_dim_backward = &max_dim_backward;
  k.matmul_forward = &matmul_forward;
  k.matmul_backward = &matmul_backward;
  k.linear_forward = &linear_forward;
  k.linear_backward = &linear_backward;
  k.conv2d_forward = &conv2d_forward;
  k.conv2d_backward_data = &conv2d_backward_data;
  k.conv2d_backward_filter = &conv2d_backward_filter;
  k.batch_norm_forward_train = &batch_norm_forward_train;
  k.batch_norm_forward_eval = &batch_norm_forward_eval;
  k.batch_norm_backward = &batch_norm_backward;
  k.max_pool2d_forward = &max_pool2d_forward;
  k.max_pool2d_backward = &max_pool2d_backward;
  k.relu_max_pool2x2_forward = &relu_max_pool2x2_forward;
  k.relu_max_pool2x2_backward = &relu_max_pool2x2_backward;
  k.avg_pool2d_forward = &avg_pool2d_forward;
  k.avg_pool2d_backward = &avg_pool2d_backward;
  k.global_avg_pool_forward = &global_avg_pool_forward;
  k.global_avg_pool_backward = &global_avg_pool_backward;
  k.upsample_bilinear_forward = &upsample_bilinear_forward;
  k.upsample_bilinear_backward = &upsample_bilinear_backward;
  k.cross_entropy_forward = &cross_entropy_forward;
  k.cross_entropy_backward = &cross_entropy_backward;
  k.bce_with_logits_forward = &bce_with_logits_forward;
  k.bce_with_logits_backward = &bce_with_logits_backward;
  k.concat_forward = &concat_forward;
  k.concat_backward = &concat_backward;
  k.pad2d_forward = &pad2d_forward;
  k.pad2d_backward = &pad2d_backward;
  k.sgd_step = &sgd_step;
  k.adam_step = &adam_step;
}

}  // namespace glimpse::cuda
