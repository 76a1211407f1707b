// Softmax cross-entropy, the GPU twin of autograd/functions/loss.cpp, forward and backward side by
// side. With p = softmax(z_n) and class weights w (1 when none are given):
//   L = sum_n w_{y_n} (-log p_{n, y_n}) / sum_n w_{y_n}
//   dL/dz_n = w_{y_n} (p_n - onehot(y_n)) / sum_n w_{y_n}
// (PyTorch's weighted mean; without weights, the plain batch mean).
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

}  // namespace glimpse::cuda
