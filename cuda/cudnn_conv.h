// 2-D convolution on the GPU through cuDNN: the twin of core/ops/conv2d.h (same shapes, same
// cross-correlation, same contract: every pass overwrites its outputs), with raw device pointers.
//
// Shapes: x [N, C, H, W], w [K, C/G, R, S], b [K], y [N, K, P, Q], G = groups, P and Q from
// window_out_size (core/ops/conv_options.h), checked against cuDNN's own output size
// (cudnnGetConvolution2dForwardOutputDim) on every call. Every size must be >= 1: the Tensor-level
// ops (cuda/tensor_ops.cpp) handle empty batches, channels and planes without cuDNN.
//
// Algorithm choice, per (pass, shape, options, settings, device), cached for the process:
//   - by default cuDNN's heuristics (cudnnGetConvolution*Algorithm_v7), best first;
//   - with ConvSettings::benchmark, cudnnFindConvolution*Algorithm times each algorithm once;
//   - with ConvSettings::deterministic, only algorithms cuDNN marks CUDNN_DETERMINISTIC;
//   - without ConvSettings::allow_tf32 (the default), the descriptor is set to CUDNN_FMA_MATH, so
//     no algorithm rounds the inputs to TF32 and results stay within 1e-4 of the CPU;
//   - an algorithm whose workspace exceeds ConvSettings::max_workspace_bytes (1 GiB by default), or
//     whose workspace size cuDNN cannot report, is skipped.
// The chosen algorithm's workspace comes from the calling thread's shared, growing workspace
// (cuda/resources.h). When that workspace cannot grow (out of GPU memory), the call falls back,
// for this call only, to the best acceptable algorithm needing no workspace; if there is none the
// out-of-memory error (size asked, size free) is thrown with a note saying so. An algorithm that
// cuDNN refuses at run time (CUDNN_STATUS_NOT_SUPPORTED) is dropped and the next one tried.
#pragma once
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>

#include "core/ops/conv_options.h"

namespace glimpse::cuda {

struct ConvGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t K = 0, R = 0, S = 0;         // filters: K of them, R x S, over C/groups channels
  Conv2dOptions opt;
  int64_t P() const { return window_out_size(H, R, opt.stride_h, opt.pad_h, opt.dilation_h); }
  int64_t Q() const { return window_out_size(W, S, opt.stride_w, opt.pad_w, opt.dilation_w); }
};

struct ConvSettings {
  bool benchmark = false;      // time the algorithms (cudnnFind*) instead of the heuristics
  bool deterministic = false;  // accept only deterministic algorithms (reproducible gradients)
  bool allow_tf32 = false;     // let cuDNN use TF32 tensor cores (faster; ~1e-3 relative error)
  // Algorithms that need a larger workspace are passed over for the next best one: a fast algorithm
  // that takes gigabytes would otherwise win and leave the model short of memory.
  size_t max_workspace_bytes = size_t(1) << 30;
};
// Process-wide; read at every call (a change selects, and caches, algorithms anew).
ConvSettings conv_settings();
void set_conv_settings(const ConvSettings& settings);

enum class ConvPass { Forward, BackwardData, BackwardFilter };

// y = conv(x, w) (+ b[k] when b is not null). Overwrites y.
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const ConvGeometry& g,
                    cudaStream_t stream = 0);
// gx = d y / d x applied to gy (overwrites, as core's conv2d_backward_data).
void conv2d_backward_data(float* gx, const float* gy, const float* w, const ConvGeometry& g, cudaStream_t stream = 0);
// gw = sum_n gy_n * col(x_n)^T;  gb[k] = sum over n, p, q of gy (overwrite; either may be null).
void conv2d_backward_filter(float* gw, float* gb, const float* gy, const float* x, const ConvGeometry& g,
                            cudaStream_t stream = 0);

// The algorithm the calls above use for this pass and shape under the current settings (selected
// and cached if not yet), for tests and reports.
struct ConvAlgoChoice {
  int algo = -1;  // a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t value
  size_t workspace_bytes = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  bool deterministic = false;
};
ConvAlgoChoice conv_algorithm(ConvPass pass, const ConvGeometry& g);
size_t conv_algo_cache_size();
void clear_conv_algo_cache();

}  // namespace glimpse::cuda
