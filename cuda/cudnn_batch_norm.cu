// cuDNN batch normalization (spatial mode): forward training / inference and backward side by side,
// semantics of cuda/cudnn_batch_norm.h (the twin of core/ops/batch_norm.cpp). cuDNN covers the
// training passes and inference forward; the two small kernels here fill in what cuDNN does not
// have (the saved statistics of an inference forward, and the backward of an inference forward).
#include "cuda/cudnn_batch_norm.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "cuda/check.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"

namespace glimpse::cuda {
namespace {

__global__ void fill_kernel(float* p, int64_t n, float v) { GLIMPSE_GRID_LOOP(i, n) p[i] = v; }

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
//   dgamma = sum g xhat;  dbeta = sum g;  dx = g gamma invstd (each overwritten).
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
        if (ggamma) ggamma[c] = static_cast<float>(sgx);
        if (gbeta) gbeta[c] = static_cast<float>(sg);
      }
    }
    if (gx) {
      const float a = is * (gamma ? gamma[c] : 1.f);
      for (int64_t j = threadIdx.x; j < N * L; j += blockDim.x) {
        const int64_t i = ((j / L) * C + c) * L + j % L;
        gx[i] = a * g[i];
      }
    }
  }
}

// Sizes may be 0, as on the CPU; the calls below keep empty tensors away from cuDNN, which refuses
// an empty descriptor.
void check_dims(int64_t N, int64_t C, int64_t L, float eps, const char* op) {
  GLIMPSE_CHECK(N >= 0 && C >= 0 && L >= 0, "cuda::", op, ": negative size, got N=", N, " C=", C, " L=", L);
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
  detail::launch_elements("fill_kernel", n, s, fill_kernel, b.as<float>(), n, value);
  return b;
}

// What every cuDNN batch-norm call sets up: this thread's handle on the stream, the descriptors
// (data [N, C, L, 1], per-channel parameters [1, C, 1, 1]), and constant stand-ins for the gamma (1),
// beta (0) or parameter gradients the caller leaves out: cuDNN always reads and writes them.
struct BnCall {
  int device;
  cudnnHandle_t handle;
  TensorDescriptor data, param;
  int64_t C;
  cudaStream_t stream;
  std::vector<DeviceBuffer> scratch;

  BnCall(int64_t N, int64_t c, int64_t L, cudaStream_t s)
      : device(current_device()), handle(cudnn_handle(device)), data(N, c, L, 1), param(1, c, 1, 1), C(c), stream(s) {
    require_default_stream(s, "batch_norm");  // the scratch buffers return to the cache at scope exit
    CUDNN_CHECK(cudnnSetStream(handle, s));
  }
  // p, or a [C] buffer of `value` when p is null.
  template <typename T>
  T* or_constant(T* p, float value) {
    if (p) return p;
    scratch.push_back(constant(C, value, device, stream));
    return scratch.back().as<float>();
  }
};

}  // namespace

void batch_norm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                              const float* x, const float* gamma, const float* beta, int64_t N, int64_t C, int64_t L,
                              float momentum, float eps, cudaStream_t s) {
  check_dims(N, C, L, eps, "batch_norm_forward_train");
  GLIMPSE_CHECK(N * L > 1, "cuda::batch_norm_forward_train: training needs more than one value per channel, got N=", N,
                " L=", L);
  if (C == 0) return;  // no channel, nothing to normalize
  GLIMPSE_CHECK((running_mean == nullptr) == (running_var == nullptr),
                "cuda::batch_norm_forward_train: give both running statistics or neither");
  BnCall call(N, C, L, s);
  const float one = 1.f, zero = 0.f;
  // exponentialAverageFactor = momentum: running = (1 - momentum) running + momentum batch, with the
  // unbiased batch variance, which is PyTorch's (and core's) rule.
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      call.handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, call.data.get(), x, call.data.get(), y, call.param.get(),
      call.or_constant(gamma, 1.f), call.or_constant(beta, 0.f), static_cast<double>(momentum), running_mean,
      running_var, static_cast<double>(eps), save_mean, save_invstd));
}

void batch_norm_forward_eval(float* y, float* save_mean, float* save_invstd, const float* x, const float* gamma,
                             const float* beta, const float* running_mean, const float* running_var, int64_t N,
                             int64_t C, int64_t L, float eps, cudaStream_t s) {
  check_dims(N, C, L, eps, "batch_norm_forward_eval");
  if (N * C * L > 0) {  // an empty batch normalizes nothing, but its statistics are still written (the CPU's)
    BnCall call(N, C, L, s);
    const float one = 1.f, zero = 0.f;
    CUDNN_CHECK(cudnnBatchNormalizationForwardInference(call.handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                                        call.data.get(), x, call.data.get(), y, call.param.get(),
                                                        call.or_constant(gamma, 1.f), call.or_constant(beta, 0.f),
                                                        running_mean, running_var, static_cast<double>(eps)));
  }
  if (save_mean && save_invstd) {
    detail::launch_elements("eval_stats_kernel", C, s, eval_stats_kernel, save_mean, save_invstd, running_mean,
                            running_var, C, eps);
  }
}

void batch_norm_backward(float* gx, float* ggamma, float* gbeta, const float* gout, const float* x, const float* gamma,
                         const float* save_mean, const float* save_invstd, int64_t N, int64_t C, int64_t L,
                         bool training, float eps, cudaStream_t s) {
  check_dims(N, C, L, eps, "batch_norm_backward");
  if (!gx && !ggamma && !gbeta) return;
  if (N * C * L == 0) {  // an empty batch or plane: zero parameter gradients (gx has no element)
    if (ggamma) CUDA_CHECK(cudaMemsetAsync(ggamma, 0, C * sizeof(float), s));
    if (gbeta) CUDA_CHECK(cudaMemsetAsync(gbeta, 0, C * sizeof(float), s));
    return;
  }
  if (!training) {
    detail::launch_rows("eval_backward_kernel", C, s, eval_backward_kernel, gx, ggamma, gbeta, gout, x, gamma,
                        save_mean, save_invstd, N, C, L);
    return;
  }
  BnCall call(N, C, L, s);
  const float one = 1.f, zero = 0.f;
  // Every gradient is overwritten (beta 0, the kernel contract); cuDNN writes all three, so one the
  // caller does not want goes to scratch.
  DeviceBuffer gx_scratch;
  if (!gx) gx = (gx_scratch = DeviceBuffer(N * C * L * sizeof(float), call.device)).as<float>();
  CUDNN_CHECK(cudnnBatchNormalizationBackward(
      call.handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, call.data.get(), x, call.data.get(), gout,
      call.data.get(), gx, call.param.get(), call.or_constant(gamma, 1.f), call.or_constant(ggamma, 0.f),
      call.or_constant(gbeta, 0.f), static_cast<double>(eps), save_mean, save_invstd));
}

}  // namespace glimpse::cuda
