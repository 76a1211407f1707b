// Softmax cross-entropy, the GPU twin of autograd/functions/loss.cpp, forward and backward side by
// side. With p = softmax(z_n) and class weights w (1 when none are given):
//   L = sum_n w_{y_n} (-log p_{n, y_n}) / sum_n w_{y_n}
//   dL/dz_n = w_{y_n} (p_n - onehot(y_n)) / sum_n w_{y_n}
// (PyTorch's weighted mean; without weights, the plain batch mean).
// Binary cross-entropy with logits, s = sigmoid(x), pos_weight q per column of the last dimension:
//   L = mean_i q y softplus(-x) + (1 - y) softplus(x),    dL/dx = s (q y + 1 - y) - q y
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda {
namespace {

// One block adds the N weighted terms in a fixed order (N is a batch size: one block is plenty, and
// a single block needs no second pass).
__global__ void cross_entropy_reduce_kernel(float* loss, float* wsum, const float* logp, const int64_t* targets,
                                            const float* class_weights, int64_t N, int64_t K) {
  double num = 0, den = 0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const int64_t y = targets[n];
    const double w = class_weights ? class_weights[y] : 1.0;
    num += -w * logp[n * K + y];
    den += w;
  }
  num = detail::block_sum(num);
  den = detail::block_sum(den);
  if (threadIdx.x == 0) {
    loss[0] = static_cast<float>(num / den);
    wsum[0] = static_cast<float>(den);
  }
}

__global__ void cross_entropy_backward_kernel(float* glogits, const float* gloss, const float* logp,
                                              const int64_t* targets, const float* class_weights, const float* wsum,
                                              int64_t N, int64_t K) {
  const float scale = gloss[0] / wsum[0];
  GLIMPSE_GRID_LOOP(i, N * K) {
    const int64_t n = i / K, k = i % K, y = targets[n];
    const float w = class_weights ? class_weights[y] : 1.f;
    glogits[i] = scale * w * (expf(logp[i]) - (k == y ? 1.f : 0.f));
  }
}

// One block, double terms and sum as the CPU's loop (n is a batch of labels: one block is plenty).
__device__ double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

__global__ void bce_with_logits_reduce_kernel(float* loss, const float* x, const float* y, const float* pos_weight,
                                              int64_t n, int64_t K) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double q = pos_weight ? pos_weight[i % K] : 1.0;
    acc += q * y[i] * softplus(-x[i]) + (1.0 - y[i]) * softplus(x[i]);
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(acc / n);
}

// float arithmetic in the CPU's order, so the two agree to rounding of expf.
__global__ void bce_with_logits_backward_kernel(float* glogits, const float* gloss, const float* x, const float* y,
                                                const float* pos_weight, int64_t n, int64_t K) {
  const float scale = gloss[0] / static_cast<float>(n);
  GLIMPSE_GRID_LOOP(i, n) {
    const float q = pos_weight ? pos_weight[i % K] : 1.f;
    const float s = 1.f / (1.f + expf(-x[i]));
    glogits[i] = scale * (s * (q * y[i] + 1.f - y[i]) - q * y[i]);
  }
}

}  // namespace

void cross_entropy_forward(float* loss, float* wsum, float* logp, const float* logits, const int64_t* targets,
                           const float* class_weights, int64_t N, int64_t K, cudaStream_t s) {
  GLIMPSE_CHECK(N > 0 && K > 0, "cuda::cross_entropy_forward: bad sizes N=", N, " K=", K);
  log_softmax_forward(logp, logits, N, K, 1, s);
  detail::launch_rows("cross_entropy_reduce_kernel", 1, s, cross_entropy_reduce_kernel, loss, wsum, logp, targets,
                      class_weights, N, K);
}

void cross_entropy_backward(float* glogits, const float* gloss, const float* logp, const int64_t* targets,
                            const float* class_weights, const float* wsum, int64_t N, int64_t K, cudaStream_t s) {
  GLIMPSE_CHECK(N > 0 && K > 0, "cuda::cross_entropy_backward: bad sizes N=", N, " K=", K);
  detail::launch_elements("cross_entropy_backward_kernel", N * K, s, cross_entropy_backward_kernel, glogits, gloss,
                          logp, targets, class_weights, wsum, N, K);
}

void bce_with_logits_forward(float* loss, const float* logits, const float* targets, const float* pos_weight,
                             int64_t n, int64_t K, cudaStream_t s) {
  GLIMPSE_CHECK(n > 0 && K > 0, "cuda::bce_with_logits_forward: bad sizes n=", n, " K=", K);
  detail::launch_rows("bce_with_logits_reduce_kernel", 1, s, bce_with_logits_reduce_kernel, loss, logits, targets,
                      pos_weight, n, K);
}

void bce_with_logits_backward(float* glogits, const float* gloss, const float* logits, const float* targets,
                              const float* pos_weight, int64_t n, int64_t K, cudaStream_t s) {
  GLIMPSE_CHECK(n > 0 && K > 0, "cuda::bce_with_logits_backward: bad sizes n=", n, " K=", K);
  detail::launch_elements("bce_with_logits_backward_kernel", n, s, bce_with_logits_backward_kernel, glogits, gloss,
                          logits, targets, pos_weight, n, K);
}

}  // namespace glimpse::cuda
