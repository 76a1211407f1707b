// The differentiable operations of glimpse. Each one computes its output and records on the tape
// (autograd/node.h) the closure of its backward, written right beside its forward in
// autograd/functions/<family>.cpp; the heavy numeric kernels live in core/ops/ (CPU) and, under the
// same names, in cuda/ (GPU).
//
// Conventions: images are NCHW; shape errors name the op and both shapes; no op works in place
// (an in-place op under a hook is how other frameworks lose gradients).
#pragma once
#include <vector>

#include "core/ops/conv_options.h"  // Conv2dOptions, Pool2dOptions
#include "core/rng.h"
#include "core/tensor.h"

namespace glimpse {

// ---- element-wise arithmetic, NumPy broadcasting (e.g. [N,C,H,W] with [1,C,1,1]) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor square(const Tensor& a);
Tensor abs(const Tensor& a);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator*(const Tensor& a, float s) { return mul_scalar(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator+(const Tensor& a, float s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// Sums `grad` over the broadcast dimensions so that it has `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& grad, const Shape& shape);

// ---- activations ----
Tensor relu(const Tensor& x);  // backward follows relu_rule() (autograd/grad_mode.h)
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p); identity if !training.
Tensor dropout(const Tensor& x, float p, bool training, Rng& rng = global_rng());

// ---- shape ----
Tensor reshape(const Tensor& x, const Shape& shape);  // one dim may be -1
Tensor flatten(const Tensor& x);                      // [N, ...] -> [N, prod(...)]
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Constant padding of the last two dimensions (H, W) of an NCHW tensor.
Tensor pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right, float value = 0.f);
// Rows [begin, end) of dim 0, with gradient (Tensor::slice is the tape-free view).
Tensor narrow0(const Tensor& x, int64_t begin, int64_t end);

// ---- reductions ----
Tensor sum(const Tensor& x);   // all elements -> scalar (shape [])
Tensor mean(const Tensor& x);
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);  // gradient to the first argmax
Tensor max(const Tensor& x);
std::vector<int64_t> argmax_rows(const Tensor& x);  // [N, K] -> argmax of each row (no gradient)

// ---- linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);  // [M,K] x [K,N] -> [M,N]
// y = x W^T + b with x [N, in], W [out, in], b [out] (b may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- convolution and pooling (NCHW) ----
// x [N, C, H, W], weight [K, C/groups, R, S], bias [K] or undefined -> [N, K, P, Q].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});
// relu(conv2d(x, w, b)). When nothing is recorded (grad mode off, or no input requires grad) it is
// one kernel: bias and ReLU are applied to each output block while it is in cache, saving a full
// pass over the activation; otherwise it is exactly relu(conv2d(...)) on the tape.
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt);
// max_pool2d(relu(x), 2x2, stride 2) as one op: the same values and gradients (under every ReLU
// rule), without materialising or saving relu(x) -- one memory pass less each way.
Tensor relu_max_pool2x2(const Tensor& x);
// Average over the window; padded cells count in the divisor (PyTorch's count_include_pad=True).
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
// [N, C, H, W] -> [N, C], the mean over H and W.
Tensor global_avg_pool(const Tensor& x);
// Bilinear resize of H and W to (out_h, out_w); align_corners as in PyTorch.
Tensor upsample_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners = false);

// ---- normalization ----
// Batch norm over N, H, W per channel. training: uses batch statistics and updates running_mean /
// running_var in place (running = (1-momentum)*running + momentum*batch, unbiased variance);
// eval: uses the running statistics. gamma/beta [C] may be undefined (no affine transform).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f);

// ---- losses (mean over the batch) ----
// Softmax cross-entropy of logits [N, K] against class indices; class_weights [K] optional, in
// which case the mean is weighted as in PyTorch (sum w_y * loss / sum w_y).
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets,
                     const Tensor& class_weights = Tensor());
// Binary cross-entropy with logits, element-wise against targets in [0, 1], mean over elements;
// pos_weight [K] optional (weights the positive term per column).
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight = Tensor());

}  // namespace glimpse
