// Losses: CPU kernels, then the differentiable ops (math: core/ops/loss.h).
#include "core/ops/loss.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/softmax.h"
#include "core/tape.h"

// ==== CPU kernels ====
namespace glimpse::cpu {

namespace {
float weight_of(const float* class_weights, int64_t target) { return class_weights ? class_weights[target] : 1.f; }
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
}  // namespace

// Numerator and denominator in double: a batch of thousands of small terms keeps its last bits.
void cross_entropy_forward(Tensor& loss, Tensor& wsum, Tensor& logp, const Tensor& logits,
                           const std::vector<int64_t>& targets, const Tensor& class_weights) {
  const int64_t N = logits.size(0), K = logits.size(1);
  log_softmax_forward(logp, logits, DimSplit{N, K, 1});
  const float* cw = class_weights.defined() ? class_weights.data() : nullptr;
  const float* plp = logp.data();
  double num = 0, den = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float w = weight_of(cw, targets[n]);
    num += -static_cast<double>(w) * plp[n * K + targets[n]];
    den += w;
  }
  loss.data()[0] = den > 0 ? static_cast<float>(num / den) : 0.f;
  wsum.data()[0] = static_cast<float>(den);
}

void cross_entropy_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logp,
                            const std::vector<int64_t>& targets, const Tensor& class_weights, const Tensor& wsum) {
  const int64_t N = logp.size(0), K = logp.size(1);
  const float scale = gloss.item() / wsum.item();
  const float* cw = class_weights.defined() ? class_weights.data() : nullptr;
  float* o = glogits.data();
  const float* p = logp.data();
  for (int64_t n = 0; n < N; ++n) {
    const float w = weight_of(cw, targets[n]);
    for (int64_t k = 0; k < K; ++k) o[n * K + k] = scale * w * (std::exp(p[n * K + k]) - (k == targets[n] ? 1.f : 0.f));
  }
}

// pos_weight runs along the last dimension: element i has weight q[i % K].
void bce_with_logits_forward(Tensor& loss, const Tensor& logits, const Tensor& targets, const Tensor& pos_weight) {
  const int64_t n = logits.numel(), K = pos_weight.defined() ? pos_weight.numel() : 1;
  const float* px = logits.data();
  const float* py = targets.data();
  const float* q = pos_weight.defined() ? pos_weight.data() : nullptr;
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double qi = q ? q[i % K] : 1.0;
    acc += qi * py[i] * softplus(-px[i]) + (1.0 - py[i]) * softplus(px[i]);
  }
  loss.data()[0] = static_cast<float>(acc / n);
}

void bce_with_logits_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logits, const Tensor& targets,
                              const Tensor& pos_weight) {
  const int64_t n = logits.numel(), K = pos_weight.defined() ? pos_weight.numel() : 1;
  const float scale = gloss.item() / static_cast<float>(n);
  const float* px = logits.data();
  const float* py = targets.data();
  const float* q = pos_weight.defined() ? pos_weight.data() : nullptr;
  float* o = glogits.data();
  for (int64_t i = 0; i < n; ++i) {
    const float qi = q ? q[i % K] : 1.f;
    const float s = 1.f / (1.f + std::exp(-px[i]));
    o[i] = scale * (s * (qi * py[i] + 1.f - py[i]) - qi * py[i]);
  }
}

}  // namespace glimpse::cpu

// ==== the differentiable op: forward, and its backward on the tape ====
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
  dispatch("cross_entropy", dev, GLIMPSE_KERNEL(cross_entropy_forward), out, wsum, lp, logits.contiguous(), targets,
           cw);
  // On a GPU this reads wsum back (one synchronisation per loss, as reading the loss itself is).
  GLIMPSE_CHECK(wsum.item() > 0, "cross_entropy: the class weights of this batch sum to zero");
  return record("cross_entropy", out, {logits},
                [lp, targets, cw, wsum, N, K](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                  Tensor gx = Tensor::empty({N, K}, g.device());
                  dispatch("cross_entropy", g.device(), GLIMPSE_KERNEL(cross_entropy_backward), gx, g.contiguous(), lp,
                           targets, cw, wsum);
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
    GLIMPSE_CHECK(py[i] >= 0.f && py[i] <= 1.f, "bce_with_logits: target ", py[i], " at element ", i,
                  " is outside [0, 1]");
  Tensor out = Tensor::empty({}, dev);
  dispatch("bce_with_logits", dev, GLIMPSE_KERNEL(bce_with_logits_forward), out, x, y, q);
  return record(
      "bce_with_logits", out, {logits}, [x, y, q](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        Tensor gx = Tensor::empty(x.shape(), g.device());
        dispatch("bce_with_logits", g.device(), GLIMPSE_KERNEL(bce_with_logits_backward), gx, g.contiguous(), x, y, q);
        return {gx};
      });
}

}  // namespace glimpse
