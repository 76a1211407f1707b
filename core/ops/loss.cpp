#include "core/ops/loss.h"

#include <cmath>

#include "core/ops/reduce.h"

namespace glimpse::cpu {
namespace {
float weight_of(const float* class_weights, int64_t target) { return class_weights ? class_weights[target] : 1.f; }
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

}  // namespace glimpse::cpu
