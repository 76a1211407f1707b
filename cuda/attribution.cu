// Attribution kernels, the GPU twins of the map arithmetic in attribution/ (cam.cpp: the CAM-family
// weighted sum and Grad-CAM's channel weights; maps.cpp: normalize_maps; regions.cpp: the
// thresholding step of threshold_map).
//
//   CAM / Grad-CAM map:  M[n, p] = ReLU?( sum_k w[n, k] A[n, k, p] )      (Zhou et al. 2016; Selvaraju et al. 2017)
//   Grad-CAM weights:    alpha[n, k] = (1/P) sum_p dy/dA[n, k, p]         (the gradient's spatial mean)
//   normalization:       (M - min) / (max - min) per map; zeros for a constant or non-finite map
//   threshold:           mask = M >= t
#include <cmath>

#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace glimpse::cuda {
namespace {

// One thread per output pixel: the k-loop reads A[n, :, p] with stride P, which neighbouring
// threads (neighbouring p) read coalesced. Channels with a zero weight are skipped as on the CPU.
__global__ void weighted_channel_sum_kernel(float* out, const float* A, const float* w, int64_t N, int64_t K, int64_t P,
                                            bool relu) {
  GLIMPSE_GRID_LOOP(i, N * P) {
    const int64_t n = i / P, p = i % P;
    float s = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float wk = w[n * K + k];
      if (wk != 0.f) s += wk * A[(n * K + k) * P + p];
    }
    out[i] = relu ? fmaxf(s, 0.f) : s;
  }
}

// One block per map: min, max and finiteness by block reductions, then the block writes the map.
__global__ void normalize_maps_kernel(float* out, const float* maps, int64_t N, int64_t per) {
  __shared__ float s_lo[detail::kThreads], s_hi[detail::kThreads];
  __shared__ int s_finite[detail::kThreads];
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* a = maps + n * per;
    float lo = INFINITY, hi = -INFINITY;
    int finite = 1;
    for (int64_t j = threadIdx.x; j < per; j += blockDim.x) {
      const float v = a[j];
      if (!isfinite(v)) finite = 0;
      lo = fminf(lo, v);
      hi = fmaxf(hi, v);
    }
    s_lo[threadIdx.x] = lo;
    s_hi[threadIdx.x] = hi;
    s_finite[threadIdx.x] = finite;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step >>= 1) {
      if (threadIdx.x < step) {
        s_lo[threadIdx.x] = fminf(s_lo[threadIdx.x], s_lo[threadIdx.x + step]);
        s_hi[threadIdx.x] = fmaxf(s_hi[threadIdx.x], s_hi[threadIdx.x + step]);
        s_finite[threadIdx.x] &= s_finite[threadIdx.x + step];
      }
      __syncthreads();
    }
    const float lo_f = s_lo[0];
    const double mn = lo_f, mx = s_hi[0];
    const double range = mx - mn, scale = fmax(fabs(mx), fabs(mn));
    // As the CPU: a map constant up to rounding (range <= 1e-6 of its magnitude) carries no location.
    const bool flat = !s_finite[0] || !(range > 1e-6 * scale) || range <= 0;
    for (int64_t j = threadIdx.x; j < per; j += blockDim.x)
      out[n * per + j] = flat ? 0.f : static_cast<float>((a[j] - lo_f) / range);  // float difference, as the CPU
    __syncthreads();  // the shared arrays are reused by this block's next map
  }
}

__global__ void threshold_kernel(uint8_t* mask, const float* map, int64_t n, float t) {
  GLIMPSE_GRID_LOOP(i, n) mask[i] = map[i] >= t ? 1 : 0;
}

}  // namespace

void weighted_channel_sum(float* out, const float* A, const float* w, int64_t N, int64_t K, int64_t P, bool relu,
                          cudaStream_t s) {
  GLIMPSE_CHECK(N >= 0 && K >= 0 && P >= 0, "cuda::weighted_channel_sum: bad sizes N=", N, " K=", K, " P=", P);
  detail::launch_elements("weighted_channel_sum_kernel", N * P, s, weighted_channel_sum_kernel, out, A, w, N, K, P, relu);
}

// The spatial mean of each row is exactly a global average pool (cuda/pool2d.cu).
void channel_spatial_mean(float* alpha, const float* G, int64_t rows, int64_t P, cudaStream_t s) {
  global_avg_pool_forward(alpha, G, rows, P, s);
}

void normalize_maps(float* out, const float* maps, int64_t N, int64_t per, cudaStream_t s) {
  GLIMPSE_CHECK(N >= 0 && per >= 0, "cuda::normalize_maps: bad sizes N=", N, " per=", per);
  detail::launch_rows("normalize_maps_kernel", per ? N : 0, s, normalize_maps_kernel, out, maps, N, per);
}

void threshold_map(uint8_t* mask, const float* map, int64_t n, float threshold, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::threshold_map: negative size ", n);
  detail::launch_elements("threshold_kernel", n, s, threshold_kernel, mask, map, n, threshold);
}

}  // namespace glimpse::cuda
