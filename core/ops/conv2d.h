// 2-D convolution (cross-correlation, as every framework), CPU kernels. The CUDA twins live in
// core/ops/conv2d.cu under the same names in namespace glimpse::cuda; conv2d() dispatches.
//
// Shapes: x [N, C, H, W], w [K, C/G, R, S], b [K], out [N, K, P, Q] with G = groups and
//   P = floor((H + 2*pad_h - dil_h*(R-1) - 1) / stride_h) + 1   (Q likewise, see window_out_size)
// Math: out[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * x[n, g*C/G + c, p*sh - ph + r*dh, q*sw - pw + s*dw]
//   where g = k / (K/G), c runs over the C/G channels of group g and x is 0 outside [0,H)x[0,W).
//
// Method: im2col + GEMM. For one image and group, col [C/G*R*S, P*Q] holds the receptive fields, so
//   out_g [K/G, P*Q]   = w_g [K/G, C/G*R*S] * col
//   gcol               = w_g^T * gout_g        then col2im scatters gcol back onto gx
//   gw_g [K/G, CRS/G]  = sum over the batch of gout_g * col^T
// except, in builds with AVX2+FMA or AVX-512, the forward and backward-data of one-group convolutions
// with stride 1 along the width: a direct register-tiled kernel reads the input rows in place (no col),
// backward-data being the convolution of gout with the flipped, transposed filters (stride 1); and
// 3x3 stride-1 convolutions with >= 64 channels each way go through Winograd F(2x2, 3x3)
// (core/ops/conv2d_winograd.h), forward and backward-data.
//
// Contract: every tensor is on the CPU and contiguous with the shapes above; the caller (the
// autograd op) validates shapes. As every kernel (core/dispatch.h): forward overwrites `out`, the
// backward kernels overwrite the gradients they are given. `b`, `gw`, `gb` may be undefined.
//
// The differentiable ops conv2d and conv2d_relu are in core/ops/conv2d.cpp beside the kernels;
// the CUDA twins (cuDNN) in core/ops/conv2d.cu.
#pragma once

#include "core/ops/conv_options.h"
#include "core/tensor.h"

// ---- CPU kernels (the CUDA twins: core/ops/*.cu, namespace glimpse::cuda, same names) ----
namespace glimpse::cpu {

// relu = true applies max(., 0) after the bias in the same pass over each output block, while it is
// still in cache (the inference fusion of conv + ReLU; see conv2d_relu in autograd/functions.h).
void conv2d_forward(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt,
                    bool relu = false);

// gx [N, C, H, W] = d out / d x applied to gout [N, K, P, Q].
void conv2d_backward_data(Tensor& gx, const Tensor& gout, const Tensor& w, const Conv2dOptions& opt);

// gw [K, C/G, R, S] = sum_n gout_n * col(x_n)^T;  gb [K] = sum over n, p, q of gout.
void conv2d_backward_filter(Tensor& gw, Tensor& gb, const Tensor& gout, const Tensor& x, const Conv2dOptions& opt);

// The forward and backward-data kernels take a direct path (no im2col, no col2im) when built with
// AVX2+FMA or AVX-512 and the convolution has stride 1 along the width and one group (conv2d.cpp,
// "direct convolution"). false forces im2col + GEMM everywhere: for tests and same-binary A/B
// benchmarks only; not thread-safe against running convolutions.
void set_conv2d_direct(bool enabled);
// Likewise for Winograd F(2x2, 3x3), which the 3x3 stride-1 convolutions with at least 64 input and
// 64 output channels and 128 output tiles take in those builds (core/ops/conv2d_winograd.h); false leaves them to the
// direct kernel (or im2col, if that is switched off too).
void set_conv2d_winograd(bool enabled);

}  // namespace glimpse::cpu

// ---- the differentiable op(s) ----
namespace glimpse {

// x [N, C, H, W], weight [K, C/groups, R, S], bias [K] or undefined -> [N, K, P, Q].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});
// relu(conv2d(x, w, b)). When nothing is recorded (grad mode off, or no input requires grad) it is
// one kernel: bias and ReLU are applied to each output block while it is in cache, saving a full
// pass over the activation; otherwise it is exactly relu(conv2d(...)) on the tape.
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});

}  // namespace glimpse
