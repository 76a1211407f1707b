// cuDNN batch normalization (spatial mode): forward training / inference and backward side by side,
// semantics of cuda/cudnn_batch_norm.h (the twin of core/ops/batch_norm.cpp). cuDNN covers the
// training passes and inference forward; the two small kernels here fill in what cuDNN does not
// have (the saved statistics of an inference forward, and the backward of an inference forward).
#include "cuda/cudnn_batch_norm.h"

#include <cmath>

#include "core/error.h"
#include "cuda/check.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"

namespace glimpse::cuda {
namespace {

__global__ void fill_kernel(float* p, int64_t n, float v) {
  GLIMPSE_GRID_LOOP(i, n) p[i] = v;
}

// Eval forward's saved statistics, as the CPU writes them: mean = running_mean,
// invstd = 1/sqrt(running_var + eps) in float.
__global__ void eval_stats_kernel(float* save_mean, float* save_invstd, const float* rm, const float* rv, int64_t C,
                                  float eps) {
  GLIMPSE_GRID_LOOP(c, C) {
    save_mean[c] = rm[c];
    save_invstd[c] = 1.f / sqrtf(rv[c] + eps);
  }
}

// Backward of an inference forward (statistics are constants): one block per channel.
//   dgamma += sum g xhat;  dbeta += sum g;  dx += g gamma invstd.
__global__ void eval_backward_kernel(float* gx, float* ggamma, float* gbeta, const float* g, const float* x,
                                     const float* gamma, const float* mean, const float* invstd, int64_t N, int64_t C,
                                     int64_t L) {
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const float mu = mean[c], is = invstd[c];
    if (ggamma || gbeta) {
      double sg = 0, sgx = 0;
      for (int64_t j = threadIdx.x; j < N * L; j += blockDim.x) {
        const int64_t i = ((j / L) * C + c) * L + j % L;
        sg += g[i];
        sgx += static_cast<double>(g[i]) * ((x[i] - mu) * is);
      }
      sg = detail::block_sum(sg);
      sgx = detail::block_sum(sgx);
      if (threadIdx.x == 0) {
        if (ggamma) ggamma[c] += static_cast<float>(sgx);
        if (gbeta) gbeta[c] += static_cast<float>(sg);
      }
    }
    if (gx) {
      const float a = is * (gamma ? gamma[c] : 1.f);
      for (int64_t j = threadIdx.x; j < N * L; j += blockDim.x) {
        const int64_t i = ((j / L) * C + c) * L + j % L;
        gx[i] += a * g[i];
      }
    }
  }
}

void check_dims(int64_t N, int64_t C, int64_t L, float eps, const char* op) {
  GLIMPSE_CHECK(N > 0 && C > 0 && L > 0, "cuda::", op, ": sizes must be positive, got N=", N, " C=", C, " L=", L);
  GLIMPSE_CHECK(eps >= static_cast<float>(CUDNN_BN_MIN_EPSILON), "cuda::", op, ": eps = ", eps,
                " is below cuDNN's minimum ", CUDNN_BN_MIN_EPSILON);
}

int current_device() {
  int d = 0;
  CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

// A [n] buffer of `value` on the stream, for the gamma = 1 / beta = 0 that cuDNN always wants.
DeviceBuffer constant(int64_t n, float value, int device, cudaStream_t s) {
  DeviceBuffer b(n * sizeof(float), device);
  fill_kernel<<<detail::blocks_for(n), detail::kThreads, 0, s>>>(b.as<float>(), n, value);
  GLIMPSE_CHECK_LAUNCH("fill_kernel");
  return b;
}

// The descriptors of one call: data [N, C, L, 1], per-channel parameters [1, C, 1, 1].
struct BnDescs {
  TensorDescriptor data, param;
  BnDescs(int64_t N, int64_t C, int64_t L) : data(N, C, L, 1), param(1, C, 1, 1) {}
};

cudnnHandle_t handle_on(int device, cudaStream_t s) {
  cudnnHandle_t h = cudnn_handle(device);
  CUDNN_CHECK(cudnnSetStream(h, s));
  return h;
}

}  // namespace

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                              const float* x, const float* gamma, const float* beta, int64_t N, int64_t C, int64_t L,
                              float momentum, float eps, cudaStream_t s) {
  check_dims(N, C, L, eps, "batch_norm_forward_train");
  GLIMPSE_CHECK(N * L > 1, "cuda::batch_norm_forward_train: training needs more than one value per channel, got N=", N,
                " L=", L);
  GLIMPSE_CHECK((running_mean == nullptr) == (running_var == nullptr),
                "cuda::batch_norm_forward_train: give both running statistics or neither");
  const int device = current_device();
  cudnnHandle_t h = handle_on(device, s);
  BnDescs d(N, C, L);
  DeviceBuffer ones, zeros;
  if (!gamma) gamma = (ones = constant(C, 1.f, device, s)).as<float>();
  if (!beta) beta = (zeros = constant(C, 0.f, device, s)).as<float>();
  const float one = 1.f, zero = 0.f;
  // exponentialAverageFactor = momentum: running = (1 - momentum) running + momentum batch, with the
  // unbiased batch variance, which is PyTorch's (and core's) rule.
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.data.get(), x,
                                                     d.data.get(), y, d.param.get(), gamma, beta,
                                                     static_cast<double>(momentum), running_mean, running_var,
                                                     static_cast<double>(eps), save_mean, save_invstd));
}

void batch_norm_forward_eval(float* y, float* save_mean, float* save_invstd, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, int64_t N,
                             int64_t C, int64_t L, float eps, cudaStream_t s) {
  check_dims(N, C, L, eps, "batch_norm_forward_eval");
  const int device = current_device();
  cudnnHandle_t h = handle_on(device, s);
  BnDescs d(N, C, L);
  DeviceBuffer ones, zeros;
  if (!gamma) gamma = (ones = constant(C, 1.f, device, s)).as<float>();
  if (!beta) beta = (zeros = constant(C, 0.f, device, s)).as<float>();
  const float one = 1.f, zero = 0.f;
  CUDNN_CHECK(cudnnBatchNormalizationForwardInference(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.data.get(), x,
                                                      d.data.get(), y, d.param.get(), gamma, beta, running_mean,
                                                      running_var, static_cast<double>(eps)));
  if (save_mean && save_invstd) {
    eval_stats_kernel<<<detail::blocks_for(C), detail::kThreads, 0, s>>>(save_mean, save_invstd, running_mean,
                                                                         running_var, C, eps);
    GLIMPSE_CHECK_LAUNCH("eval_stats_kernel");
  }
}

void batch_norm_backward(float* gx, float* ggamma, float* gbeta, const float* gout, const float* x, const float* gamma,
                         const float* save_mean, const float* save_invstd, int64_t N, int64_t C, int64_t L,
                         bool training, float eps, cudaStream_t s) {
  check_dims(N, C, L, eps, "batch_norm_backward");
  if (!gx && !ggamma && !gbeta) return;
  const int device = current_device();
  if (!training) {
    eval_backward_kernel<<<static_cast<unsigned>(std::min<int64_t>(C, detail::kMaxBlocks)), detail::kThreads, 0, s>>>(
        gx, ggamma, gbeta, gout, x, gamma, save_mean, save_invstd, N, C, L);
    GLIMPSE_CHECK_LAUNCH("eval_backward_kernel");
    return;
  }
  cudnnHandle_t h = handle_on(device, s);
  BnDescs d(N, C, L);
  // cuDNN writes all three results: scratch for the ones the caller does not want.
  DeviceBuffer ones, gx_scratch, gg_scratch, gb_scratch;
  if (!gamma) gamma = (ones = constant(C, 1.f, device, s)).as<float>();
  const float one = 1.f, zero = 0.f;
  const float* beta_data = gx ? &one : &zero;  // accumulate into gx (+=), or overwrite the scratch
  if (!gx) gx = (gx_scratch = DeviceBuffer(N * C * L * sizeof(float), device)).as<float>();
  const float* beta_param = &one;
  if (!ggamma || !gbeta) {
    // cudnnBatchNormalizationBackward has one beta for both parameter gradients: give scratch for
    // the missing one, zeroed so that accumulating into it is harmless.
    if (!ggamma) ggamma = (gg_scratch = constant(C, 0.f, device, s)).as<float>();
    if (!gbeta) gbeta = (gb_scratch = constant(C, 0.f, device, s)).as<float>();
  }
  CUDNN_CHECK(cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &one, beta_data, &one, beta_param,
                                              d.data.get(), x, d.data.get(), gout, d.data.get(), gx, d.param.get(),
                                              gamma, ggamma, gbeta, static_cast<double>(eps), save_mean, save_invstd));
}

}  // namespace glimpse::cuda
