#include "core/ops/loss.h"

#include <cmath>

#include "core/ops/reduce.h"

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
