// Softmax cross-entropy, the GPU twin of core/ops/loss.cpp, forward and backward side by
// side. With p = softmax(z_n) and class weights w (1 when none are given):
//   L = sum_n w_{y_n} (-log p_{n, y_n}) / sum_n w_{y_n}
//   dL/dz_n = w_{y_n} (p_n - onehot(y_n)) / sum_n w_{y_n}
// (PyTorch's weighted mean; without weights, the plain batch mean).
// Binary cross-entropy with logits, s = sigmoid(x), pos_weight q per column of the last dimension:
//   L = mean_i q y softplus(-x) + (1 - y) softplus(x),    dL/dx = s (q y + 1 - y) - q y
//
// The CUDA twin of core/ops/loss.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_loss).
#include "core/ops/loss.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

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
__device__ double softplus(double x) { return x > 0 ? x + ::log1p(::exp(-x)) : ::log1p(::exp(x)); }

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

void bce_with_logits_forward(float* loss, const float* logits, const float* targets, const float* pos_weight, int64_t n,
                             int64_t K, cudaStream_t s) {
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

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace loss_slots {

// The class indices on the device (validated on the host by the autograd op).
DeviceBuffer upload_targets(const std::vector<int64_t>& targets, int device) {
  DeviceBuffer buf(targets.size() * sizeof(int64_t), device);
  CUDA_CHECK(cudaMemcpy(buf.data(), targets.data(), targets.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  return buf;
}

void cross_entropy_forward(Tensor& loss, Tensor& wsum, Tensor& logp, const Tensor& logits,
                           const std::vector<int64_t>& targets, const Tensor& class_weights) {
  const auto guard = on_device_of(logits);
  const DeviceBuffer t = upload_targets(targets, logits.device().index);
  cuda::cross_entropy_forward(device_data(loss), device_data(wsum), device_data(logp), device_data(logits),
                              t.as<int64_t>(), device_data_or_null(class_weights), logits.size(0), logits.size(1));
}

void cross_entropy_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logp,
                            const std::vector<int64_t>& targets, const Tensor& class_weights, const Tensor& wsum) {
  const auto guard = on_device_of(glogits);
  const DeviceBuffer t = upload_targets(targets, logp.device().index);
  cuda::cross_entropy_backward(device_data(glogits), device_data(gloss), device_data(logp), t.as<int64_t>(),
                               device_data_or_null(class_weights), device_data(wsum), logp.size(0), logp.size(1));
}

// ---- binary cross-entropy ----
int64_t pos_weight_period(const Tensor& pos_weight) { return pos_weight.defined() ? pos_weight.numel() : 1; }

void bce_with_logits_forward(Tensor& loss, const Tensor& logits, const Tensor& targets, const Tensor& pos_weight) {
  const auto guard = on_device_of(logits);
  cuda::bce_with_logits_forward(device_data(loss), device_data(logits), device_data(targets),
                                device_data_or_null(pos_weight), logits.numel(), pos_weight_period(pos_weight));
}

void bce_with_logits_backward(Tensor& glogits, const Tensor& gloss, const Tensor& logits, const Tensor& targets,
                              const Tensor& pos_weight) {
  const auto guard = on_device_of(glogits);
  cuda::bce_with_logits_backward(device_data(glogits), device_data(gloss), device_data(logits), device_data(targets),
                                 device_data_or_null(pos_weight), logits.numel(), pos_weight_period(pos_weight));
}

}  // namespace loss_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_loss(DeviceKernels& k) {
  k.cross_entropy_forward = &loss_slots::cross_entropy_forward;
  k.cross_entropy_backward = &loss_slots::cross_entropy_backward;
  k.bce_with_logits_forward = &loss_slots::bce_with_logits_forward;
  k.bce_with_logits_backward = &loss_slots::bce_with_logits_backward;
}

}  // namespace glimpse::cuda
