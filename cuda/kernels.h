// The hand-written CUDA kernels, one host launcher per op, each the GPU twin of the CPU op of the
// same name (core/ops/<op>.h). Each op's launchers are defined in its CUDA twin, core/ops/<op>.cu,
// beside the CPU code; this header declares them for the twins that share one (conv2d uses
// bias_add and relu) and for the tests. cuDNN convolution and batch norm are in cuda/cudnn_conv.h
// and cuda/cudnn_batch_norm.h.
//
// Contract of every launcher:
//   - pointers are device pointers on the current device (cuda/runtime.h: DeviceGuard), float32,
//     contiguous NCHW (row-major) unless stated; outputs come first in the argument list;
//   - the work is queued on `stream`, which must be 0, the legacy default stream (any other is
//     refused: cuda/check.h require_default_stream says why), and the launcher returns without
//     synchronising; a launch error throws glimpse::Error naming the kernel and its launcher's line;
//     a fault inside a kernel surfaces at the next checked call, whose message says it came earlier;
//   - forward launchers overwrite their outputs and backward launchers overwrite every element of
//     the gradients they write, as their CPU twins (the kernel contract, core/dispatch.h);
//   - the caller validates shapes (as the autograd ops do for the CPU kernels); launchers check
//     only what would otherwise be undefined behaviour on the device (negative sizes, rank > 8).
//   - reductions are deterministic: fixed thread-to-element assignment and fixed tree order, no
//     floating-point atomics, so the same input gives the same bits on every run.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/ops/activation.h"    // ReluRule
#include "core/ops/conv_options.h"  // Pool2dOptions, window_out_size
#include "core/ops/elementwise.h"   // BinaryOp, UnaryOp
#include "core/shape.h"

namespace glimpse::cuda {

// ---- element-wise (core/ops/elementwise.cu) ----------------------------
// out [out_shape] = a (op) b, a [a_shape] and b [b_shape] contiguous and broadcastable to out_shape
// (NumPy rules, aligned at the trailing dimension; rank <= 8). Broadcast dimensions read with
// stride 0, so [N,C,H,W] (op) [1,C,1,1] needs no copy of the smaller operand.
void binary_forward(float* out, const Shape& out_shape, const float* a, const Shape& a_shape, const float* b,
                    const Shape& b_shape, BinaryOp op, cudaStream_t stream = 0);
void unary_forward(float* out, const float* x, int64_t n, UnaryOp op, cudaStream_t stream = 0);
void affine_forward(float* out, const float* x, int64_t n, float scale, float shift, cudaStream_t stream = 0);
// out [out_shape] = sum of in [in_shape] over the dimensions in which out is broadcast to in (the
// backward of broadcasting: d(a + b)/da = sum_to(g, a_shape)). Overwrites out.
void reduce_sum_to(float* out, const Shape& out_shape, const float* in, const Shape& in_shape, cudaStream_t stream = 0);
// Bias add over channels: y[n,c,l] = x[n,c,l] + b[c] (x [N, C, L], L = H*W, or L = 1 for [N, C]).
// y may equal x (in place). Backward: gb[c] = sum_{n,l} gy[n,c,l]; gx = gy needs no kernel. Any
// size may be 0.
void bias_add_forward(float* y, const float* x, const float* b, int64_t N, int64_t C, int64_t L,
                      cudaStream_t stream = 0);
void bias_add_backward(float* gb, const float* gy, int64_t N, int64_t C, int64_t L, cudaStream_t stream = 0);

// ---- activations (core/ops/activation.cu) -------------------------------
// relu: y = max(x, 0). Backward (overwrites gx), rules as in core/ops/activation.h:
//   Standard: g [x > 0];  Deconvnet: g [g > 0];  Guided: g [x > 0] [g > 0].
void relu_forward(float* y, const float* x, int64_t n, cudaStream_t stream = 0);
void relu_backward(float* gx, const float* gout, const float* x, int64_t n, ReluRule rule, cudaStream_t stream = 0);
// leaky: y = x > 0 ? x : slope x;  gx = x > 0 ? g : slope g (overwrites).
void leaky_relu_forward(float* y, const float* x, int64_t n, float slope, cudaStream_t stream = 0);
void leaky_relu_backward(float* gx, const float* gout, const float* x, int64_t n, float slope, cudaStream_t stream = 0);

// ---- pooling (core/ops/pool2d.cu) ------------------------------------------
// x [N, C, H, W] -> out [N, C, P, Q] with P, Q = window_out_size(...) (floor mode), semantics of
// core/ops/pool2d.h. Max pool writes, when `argmax` is not null, the offset within the H*W plane of
// the first maximal cell of each window (a NaN wins; -1 for an empty window); its backward routes
// gout through those offsets. Backward launchers write every cell of gx, and gather (one thread per
// input cell sums the windows that cover it) rather than scatter, so they need no atomics and are
// deterministic even with overlapping windows.
void max_pool2d_forward(float* out, int32_t* argmax, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                        const Pool2dOptions& opt, cudaStream_t stream = 0);
void max_pool2d_backward(float* gx, const float* gout, const int32_t* argmax, int64_t N, int64_t C, int64_t H,
                         int64_t W, const Pool2dOptions& opt, cudaStream_t stream = 0);
// relu then 2x2/2 max pool, fused (core/ops/pool2d.h relu_max_pool2x2): x [planes, H, W] ->
// out [planes, H/2, W/2] = the max of each window's relu'd cells (relu(NaN) = 0: a NaN never hides a
// positive neighbour). Backward OVERWRITES every cell of gx, as the CPU twin: the window's gradient
// goes to its first maximal relu'd cell under the ReLU rule, 0 elsewhere. The window rule is shared
// with the CPU and tested on the host: core/ops/pool2d.h.
void relu_max_pool2x2_forward(float* out, const float* x, int64_t planes, int64_t H, int64_t W,
                              cudaStream_t stream = 0);
void relu_max_pool2x2_backward(float* gx, const float* gout, const float* x, int64_t planes, int64_t H, int64_t W,
                               ReluRule rule, cudaStream_t stream = 0);
// avg: padded cells count in the divisor kh*kw (count_include_pad=True).
void avg_pool2d_forward(float* out, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                        const Pool2dOptions& opt, cudaStream_t stream = 0);
void avg_pool2d_backward(float* gx, const float* gout, int64_t N, int64_t C, int64_t H, int64_t W,
                         const Pool2dOptions& opt, cudaStream_t stream = 0);
// Global average pool: x [NC planes of L = H*W values] -> out [NC]; gx = gout / L.
void global_avg_pool_forward(float* out, const float* x, int64_t NC, int64_t L, cudaStream_t stream = 0);
void global_avg_pool_backward(float* gx, const float* gout, int64_t NC, int64_t L, cudaStream_t stream = 0);

// ---- bilinear resize (core/ops/upsample.cu) ------------------------------
// x [NC, H, W] -> out [NC, OH, OW], source coordinates and taps exactly as core/ops/upsample.h
// (align_corners both ways, float scales as PyTorch). Backward writes every cell of gx [NC, H, W], by
// gathering over the outputs that read each input cell (deterministic, no atomics).
void upsample_bilinear_forward(float* out, const float* x, int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                               bool align_corners, cudaStream_t stream = 0);
void upsample_bilinear_backward(float* gx, const float* gout, int64_t NC, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                bool align_corners, cudaStream_t stream = 0);

// ---- reductions and softmax (core/ops/reduce.cu, core/ops/softmax.cu) ----
// A tensor seen as [outer, len, inner] around the reduced dimension (core/ops/reduce.h DimSplit).
// out (a device scalar) = scale * sum of x[0..n); scale = 1 for sum, 1/n for mean. Two passes:
// per-block partial sums in double, then one block adds the partials in a fixed order.
void sum_all_forward(float* out, const float* x, int64_t n, float scale = 1.f, cudaStream_t stream = 0);
// gx[i] = scale * gout[0] (gout a device scalar).
void sum_all_backward(float* gx, const float* gout, int64_t n, float scale = 1.f, cudaStream_t stream = 0);
// out[a, c] = scale * sum_l x[a, l, c] (double accumulation, like the CPU); scale 1/len for mean.
void sum_dim_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, float scale = 1.f,
                     cudaStream_t stream = 0);
// gx[a, l, c] = scale * gout[a, c] (overwrites, as the CPU twin).
void sum_dim_backward(float* gx, const float* gout, int64_t outer, int64_t len, int64_t inner, float scale = 1.f,
                      cudaStream_t stream = 0);
// y = softmax(x) along len; gx = y (g - sum(g y)) (overwrites).
void softmax_forward(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t stream = 0);
void softmax_backward(float* gx, const float* gy, const float* y, int64_t outer, int64_t len, int64_t inner,
                      cudaStream_t stream = 0);
// y = x - logsumexp(x) along len; gx = g - exp(y) sum(g) (overwrites).
void log_softmax_forward(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t stream = 0);
void log_softmax_backward(float* gx, const float* gy, const float* y, int64_t outer, int64_t len, int64_t inner,
                          cudaStream_t stream = 0);
// out[a, c] = max_l x[a, l, c]: the first NaN, else the first maximum (len > 0, checked by the caller).
// Backward: gx = gout at that argmax, found again from x, and 0 elsewhere (overwrites all of gx).
void max_dim_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t stream = 0);
void max_dim_backward(float* gx, const float* gout, const float* x, int64_t outer, int64_t len, int64_t inner,
                      cudaStream_t stream = 0);

// ---- losses (core/ops/loss.cu) -------------------------------------
// Softmax cross-entropy of logits [N, K] against targets [N] (int64 class indices on the device,
// validated by the caller: the device cannot throw), optional class_weights [K] (null: all 1):
//   logp = log_softmax(logits),  wsum = sum_n w_{y_n},  loss = sum_n w_{y_n} (-logp[n, y_n]) / wsum
// All three outputs are device memory; wsum is kept for backward (and is 0 when the batch's
// weights sum to zero, which the caller may check: the CPU op refuses such a batch).
void cross_entropy_forward(float* loss, float* wsum, float* logp, const float* logits, const int64_t* targets,
                           const float* class_weights, int64_t N, int64_t K, cudaStream_t stream = 0);
// glogits[n, k] = gloss[0] / wsum * w_{y_n} (exp(logp[n, k]) - [k == y_n])  (overwrites).
void cross_entropy_backward(float* glogits, const float* gloss, const float* logp, const int64_t* targets,
                            const float* class_weights, const float* wsum, int64_t N, int64_t K,
                            cudaStream_t stream = 0);

// Binary cross-entropy with logits x and targets y (n values, y in [0, 1] validated by the caller),
// pos_weight q [K] along the last dimension (null: all 1; element i has q[i % K]), s = sigmoid(x):
//   loss (a device scalar) = (1/n) sum_i q y softplus(-x) + (1 - y) softplus(x)   (one block, in double)
//   glogits = gloss[0] / n (s (q y + 1 - y) - q y)   (overwrites)
void bce_with_logits_forward(float* loss, const float* logits, const float* targets, const float* pos_weight, int64_t n,
                             int64_t K, cudaStream_t stream = 0);
void bce_with_logits_backward(float* glogits, const float* gloss, const float* logits, const float* targets,
                              const float* pos_weight, int64_t n, int64_t K, cudaStream_t stream = 0);

// ---- block copies (core/ops/shape.cu) -----------------------------------------
// concat: x [outer, len, inner] is the block of out [outer, total, inner] that starts at `at` along the
// middle dimension.  forward: out[a, at + l, c] = x[a, l, c];  backward: gx[a, l, c] = gout[a, at + l, c]
// (overwrites gx). Both check at + len <= total.
void concat_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, int64_t total, int64_t at,
                    cudaStream_t stream = 0);
void concat_backward(float* gx, const float* gout, int64_t outer, int64_t len, int64_t inner, int64_t total, int64_t at,
                     cudaStream_t stream = 0);
// pad2d: x [planes, H, W] at (top, left) of out [planes, OH, OW], `value` elsewhere (writes every cell).
// Backward: gx[p, h, w] = gout[p, top + h, left + w] (overwrites).
void pad2d_forward(float* out, const float* x, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                   int64_t top, int64_t left, float value, cudaStream_t stream = 0);
void pad2d_backward(float* gx, const float* gout, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                    int64_t top, int64_t left, cudaStream_t stream = 0);

// ---- optimizers (core/ops/optim.cu; rules: layers/optim.h) --------------------------------------------
// One fused pass over a parameter's n values, with layers/optim.h's exact update rules.
// SGD, d = g + weight_decay p:
//   momentum == 0: p -= lr d
//   else: buf = first_step ? d : momentum buf + (1 - dampening) d;  p -= lr (nesterov ? d + momentum buf : buf)
// momentum_buf may be null when momentum == 0.
void sgd_step(float* p, float* momentum_buf, const float* g, int64_t n, float lr, float momentum, float dampening,
              bool nesterov, float weight_decay, bool first_step, cudaStream_t stream = 0);
// Adam / AdamW (decoupled), t = this parameter's step count after this step (1 on the first):
//   g' = g (+ weight_decay p for Adam);  AdamW first p *= 1 - lr weight_decay
//   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;  amsgrad (vmax not null): vmax = max(vmax, v), used for v
//   p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The bias corrections are computed on the host in double, then float, exactly as the CPU does.
void adam_step(float* p, float* m, float* v, float* vmax, const float* g, int64_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, bool decoupled, int64_t t, cudaStream_t stream = 0);

}  // namespace glimpse::cuda
