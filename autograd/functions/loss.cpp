// Losses, forward and backward side by side (cross-entropy kernels: core/ops/loss.h).
//
// Softmax cross-entropy, with p = softmax(z_n) and optional class weights w:
//   L = sum_n w_{y_n} (-log p_{n,y_n}) / sum_n w_{y_n}
//   dL/dz_n = w_{y_n} (p_n - onehot(y_n)) / sum_n w_{y_n}
// (without weights w = 1, the plain batch mean; this matches PyTorch's weighted mean).
//
// Binary cross-entropy with logits, s = sigmoid(x), pos_weight q per column:
//   l = -[q y log s + (1 - y) log(1 - s)] = q y softplus(-x) + (1 - y) softplus(x)
//   dl/dx = s (q y + 1 - y) - q y,    L = mean over all elements.
#include <cmath>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/loss.h"

namespace glimpse {
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets, const Tensor& class_weights) {
  GLIMPSE_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, K], got ", shape_str(logits.shape()));
  const int64_t N = logits.size(0), K = logits.size(1);
  GLIMPSE_CHECK(static_cast<int64_t>(targets.size()) == N, "cross_entropy: ", targets.size(), " targets for ", N,
                " rows of logits ", shape_str(logits.shape()));
  GLIMPSE_CHECK(N > 0, "cross_entropy: empty batch");
  if (class_weights.defined()) {
    GLIMPSE_CHECK(class_weights.dim() == 1 && class_weights.size(0) == K, "cross_entropy: class weights ",
                  shape_str(class_weights.shape()), " do not match ", K, " classes");
    check_same_device(logits, class_weights, "cross_entropy");
  }
  // Checked here, on the host: a device kernel cannot refuse a bad index.
  for (int64_t n = 0; n < N; ++n)
    GLIMPSE_CHECK(targets[n] >= 0 && targets[n] < K, "cross_entropy: target ", targets[n], " of sample ", n,
                  " is not a class index in [0, ", K, ")");
  const Device dev = logits.device();
  Tensor out = Tensor::empty({}, dev), wsum = Tensor::empty({}, dev), lp = Tensor::empty(logits.shape(), dev);
  const Tensor cw = class_weights.defined() ? class_weights.contiguous().detach() : Tensor();
  dispatch("cross_entropy", dev, &cpu::cross_entropy_forward, &DeviceKernels::cross_entropy_forward, out, wsum, lp,
           logits.contiguous(), targets, cw);
  // On a GPU this reads wsum back (one synchronisation per loss, as reading the loss itself is).
  GLIMPSE_CHECK(wsum.item() > 0, "cross_entropy: the class weights of this batch sum to zero");
  return record("cross_entropy", out, {logits},
                [lp, targets, cw, wsum, N, K](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  Tensor gx = Tensor::empty({N, K}, g.device());
                  dispatch("cross_entropy", g.device(), &cpu::cross_entropy_backward,
                           &DeviceKernels::cross_entropy_backward, gx, g.contiguous(), lp, targets, cw, wsum);
                  return {gx};
                });
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight) {
  GLIMPSE_CHECK(logits.shape() == targets.shape(), "bce_with_logits: logits ", shape_str(logits.shape()),
                " and targets ", shape_str(targets.shape()), " differ");
  const int64_t n = logits.numel();
  GLIMPSE_CHECK(n > 0, "bce_with_logits: empty input");
  const int64_t K = logits.dim() >= 1 ? logits.size(-1) : 1;
  if (pos_weight.defined())
    GLIMPSE_CHECK(pos_weight.numel() == K, "bce_with_logits: pos_weight ", shape_str(pos_weight.shape()),
                  " does not match the last dimension ", K, " of ", shape_str(logits.shape()));
  const Device dev = logits.device();
  const Tensor x = logits.contiguous().detach(), y = targets.contiguous().detach();
  const Tensor q = pos_weight.defined() ? pos_weight.contiguous().detach() : Tensor();
  // Targets checked here, on the host (a device kernel cannot refuse a value): on a GPU this copies
  // them back once per loss. Devices compared first, since the host copy would hide a mismatch.
  check_same_device(logits, targets, "bce_with_logits");
  const Tensor yh = y.to(Device::cpu());
  const float* py = yh.data();
  for (int64_t i = 0; i < n; ++i)
    GLIMPSE_CHECK(py[i] >= 0.f && py[i] <= 1.f, "bce_with_logits: target ", py[i], " at element ", i, " is outside [0, 1]");
  Tensor out = Tensor::empty({}, dev);
  dispatch("bce_with_logits", dev, &cpu::bce_with_logits_forward, &DeviceKernels::bce_with_logits_forward, out, x, y,
           q);
  return record("bce_with_logits", out, {logits}, [x, y, q](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor gx = Tensor::empty(x.shape(), g.device());
    dispatch("bce_with_logits", g.device(), &cpu::bce_with_logits_backward, &DeviceKernels::bce_with_logits_backward,
             gx, g.contiguous(), x, y, q);
    return {gx};
  });
}

}  // namespace glimpse
