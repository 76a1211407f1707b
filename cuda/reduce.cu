// Reductions and softmax, the GPU twins of core/ops/reduce.cpp (sum / mean over all elements or one
// dimension; max over one dimension; softmax and log-softmax along one dimension), forward and backward side by side.
// A tensor is seen as [outer, len, inner] around the reduced dimension. Sums accumulate in double,
// as the CPU does, and in a fixed order (no atomics), so results are reproducible bit for bit.
#include <cmath>

#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"

namespace glimpse::cuda {
namespace {

constexpr int kSumBlocks = 256;  // partial sums of the first pass

// Pass 1: block b sums x[i] for i = b*blockDim + t, strided by the whole grid, into partial[b].
__global__ void sum_partials_kernel(double* partial, const float* x, int64_t n) {
  double s = 0;
  GLIMPSE_GRID_LOOP(i, n) s += x[i];
  s = detail::block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// Pass 2: one block adds the partials in index order of its tree.
__global__ void sum_finish_kernel(float* out, const double* partial, int count, float scale) {
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = detail::block_sum(s);
  if (threadIdx.x == 0) out[0] = static_cast<float>(s * static_cast<double>(scale));
}

__global__ void sum_all_backward_kernel(float* gx, const float* gout, int64_t n, float scale) {
  const float v = gout[0] * scale;
  GLIMPSE_GRID_LOOP(i, n) gx[i] = v;
}

// One thread per (a, c): the len values are strided by inner, so neighbouring threads (neighbouring
// c) read neighbouring addresses.
__global__ void sum_dim_kernel(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, float scale) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t a = r / inner, c = r % inner;
    const float* p = x + a * len * inner + c;
    double s = 0;
    for (int64_t l = 0; l < len; ++l) s += p[l * inner];
    out[r] = static_cast<float>(s * static_cast<double>(scale));
  }
}

__global__ void sum_dim_backward_kernel(float* gx, const float* gout, int64_t n, int64_t len, int64_t inner,
                                        float scale) {
  GLIMPSE_GRID_LOOP(i, n) gx[i] = scale * gout[(i / (len * inner)) * inner + i % inner];
}

// The maximum of row (a, c) along len (the shift that keeps exp from overflowing).
__device__ inline float row_max(const float* x, int64_t base, int64_t len, int64_t inner) {
  float m = -INFINITY;
  for (int64_t l = 0; l < len; ++l) m = fmaxf(m, x[base + l * inner]);
  return m;
}

// Softmax along len for row (a, c): y = exp(x - max) / sum exp(x - max), the sum in double.
__global__ void softmax_forward_kernel(float* y, const float* x, int64_t outer, int64_t len, int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    const float m = row_max(x, base, len, inner);
    double z = 0;
    for (int64_t l = 0; l < len; ++l) {
      const float e = expf(x[base + l * inner] - m);
      y[base + l * inner] = e;
      z += e;
    }
    const float inv = static_cast<float>(1.0 / z);
    for (int64_t l = 0; l < len; ++l) y[base + l * inner] *= inv;
  }
}

// gx = y (g - sum_l g y).
__global__ void softmax_backward_kernel(float* gx, const float* gy, const float* y, int64_t outer, int64_t len,
                                        int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    double dot = 0;
    for (int64_t l = 0; l < len; ++l) dot += gy[base + l * inner] * y[base + l * inner];
    const float d = static_cast<float>(dot);
    for (int64_t l = 0; l < len; ++l) gx[base + l * inner] = y[base + l * inner] * (gy[base + l * inner] - d);
  }
}

// y = x - (max + log sum exp(x - max)).
__global__ void log_softmax_forward_kernel(float* y, const float* x, int64_t outer, int64_t len, int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    const float m = row_max(x, base, len, inner);
    double z = 0;
    for (int64_t l = 0; l < len; ++l) z += exp(static_cast<double>(x[base + l * inner] - m));
    const float lse = m + static_cast<float>(log(z));
    for (int64_t l = 0; l < len; ++l) y[base + l * inner] = x[base + l * inner] - lse;
  }
}

// gx = g - exp(y) sum_l g.
__global__ void log_softmax_backward_kernel(float* gx, const float* gy, const float* y, int64_t outer, int64_t len,
                                            int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * len * inner + r % inner;
    double s = 0;
    for (int64_t l = 0; l < len; ++l) s += gy[base + l * inner];
    const float sf = static_cast<float>(s);
    for (int64_t l = 0; l < len; ++l) gx[base + l * inner] = gy[base + l * inner] - expf(y[base + l * inner]) * sf;
  }
}

// The index along len of the max of column (a, c): the first NaN, else the first maximum (the CPU's
// rule in core/ops/reduce.cpp, comparison for comparison).
__device__ int64_t first_argmax(const float* x, int64_t a, int64_t c, int64_t len, int64_t inner) {
  int64_t best = 0;
  float bv = x[a * len * inner + c];
  for (int64_t l = 1; l < len; ++l) {
    const float v = x[(a * len + l) * inner + c];
    if (v > bv || (isnan(v) && !isnan(bv))) {
      bv = v;
      best = l;
    }
  }
  return best;
}

// One thread per (a, c), like sum_dim_kernel.
__global__ void max_dim_forward_kernel(float* out, const float* x, int64_t outer, int64_t len, int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t a = r / inner, c = r % inner;
    out[r] = x[(a * len + first_argmax(x, a, c, len, inner)) * inner + c];
  }
}

// The thread of column (a, c) writes the whole column (g at the argmax, 0 elsewhere): an overwrite
// with no separate zero fill, and no two threads touch one cell.
__global__ void max_dim_backward_kernel(float* gx, const float* gout, const float* x, int64_t outer, int64_t len,
                                        int64_t inner) {
  GLIMPSE_GRID_LOOP(r, outer * inner) {
    const int64_t a = r / inner, c = r % inner;
    const int64_t best = first_argmax(x, a, c, len, inner);
    for (int64_t l = 0; l < len; ++l) gx[(a * len + l) * inner + c] = l == best ? gout[r] : 0.f;
  }
}

void check_split(int64_t outer, int64_t len, int64_t inner, const char* op) {
  GLIMPSE_CHECK(outer >= 0 && len >= 0 && inner >= 0, "cuda::", op, ": bad sizes outer=", outer, " len=", len,
                " inner=", inner);
}

// One thread per column (a, c) of [outer, len, inner], the sizes passed last; none when len is 0.
template <typename... Params, typename... Args>
void launch_columns(detail::KernelSite op, cudaStream_t s, void (*kernel)(Params...), int64_t outer, int64_t len,
                    int64_t inner, Args... args) {
  check_split(outer, len, inner, op.name);
  detail::launch_elements(op, len ? outer * inner : 0, s, kernel, args..., outer, len, inner);
}

}  // namespace

void sum_all_forward(float* out, const float* x, int64_t n, float scale, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::sum_all_forward: negative size ", n);
  require_default_stream(s, "sum_all_forward");  // `partial` below returns to the cache at scope exit
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  const int blocks = static_cast<int>(std::min<int64_t>(kSumBlocks, std::max<int64_t>(1, (n + detail::kThreads - 1) / detail::kThreads)));
  DeviceBuffer partial(blocks * sizeof(double), device);
  sum_partials_kernel<<<blocks, detail::kThreads, 0, s>>>(partial.as<double>(), x, n);
  GLIMPSE_CHECK_LAUNCH("sum_partials_kernel");
  sum_finish_kernel<<<1, detail::kThreads, 0, s>>>(out, partial.as<double>(), blocks, scale);
  GLIMPSE_CHECK_LAUNCH("sum_finish_kernel");
  // `partial` returns to the cache here; work queued later on this stream is ordered after the
  // kernels above. On another stream it would need an event first (see cuda/allocator.h).
}

void sum_all_backward(float* gx, const float* gout, int64_t n, float scale, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::sum_all_backward: negative size ", n);
  detail::launch_elements("sum_all_backward_kernel", n, s, sum_all_backward_kernel, gx, gout, n, scale);
}

void sum_dim_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, float scale,
                     cudaStream_t s) {
  check_split(outer, len, inner, "sum_dim_forward");
  detail::launch_elements("sum_dim_kernel", outer * inner, s, sum_dim_kernel, out, x, outer, len, inner, scale);
}

void sum_dim_backward(float* gx, const float* gout, int64_t outer, int64_t len, int64_t inner, float scale,
                      cudaStream_t s) {
  check_split(outer, len, inner, "sum_dim_backward");
  const int64_t n = outer * len * inner;
  detail::launch_elements("sum_dim_backward_kernel", n, s, sum_dim_backward_kernel, gx, gout, n, len, inner, scale);
}

// One thread per row (a, c) of the four softmax kernels; nothing to do for an empty dimension.
void softmax_forward(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t s) {
  check_split(outer, len, inner, "softmax_forward");
  detail::launch_elements("softmax_forward_kernel", len ? outer * inner : 0, s, softmax_forward_kernel, y, x, outer,
                          len, inner);
}

void softmax_backward(float* gx, const float* gy, const float* y, int64_t outer, int64_t len, int64_t inner,
                      cudaStream_t s) {
  check_split(outer, len, inner, "softmax_backward");
  detail::launch_elements("softmax_backward_kernel", len ? outer * inner : 0, s, softmax_backward_kernel, gx, gy, y,
                          outer, len, inner);
}

void log_softmax_forward(float* y, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t s) {
  check_split(outer, len, inner, "log_softmax_forward");
  detail::launch_elements("log_softmax_forward_kernel", len ? outer * inner : 0, s, log_softmax_forward_kernel, y, x,
                          outer, len, inner);
}

void log_softmax_backward(float* gx, const float* gy, const float* y, int64_t outer, int64_t len, int64_t inner,
                          cudaStream_t s) {
  check_split(outer, len, inner, "log_softmax_backward");
  detail::launch_elements("log_softmax_backward_kernel", len ? outer * inner : 0, s, log_softmax_backward_kernel, gx,
                          gy, y, outer, len, inner);
}

// len == 0 has no maximum: the autograd op refuses it before any launch; here it launches nothing.
void max_dim_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t s) {
  launch_columns("max_dim_forward", s, max_dim_forward_kernel, outer, len, inner, out, x);
}

void max_dim_backward(float* gx, const float* gout, const float* x, int64_t outer, int64_t len, int64_t inner,
                      cudaStream_t s) {
  launch_columns("max_dim_backward", s, max_dim_backward_kernel, outer, len, inner, gx, gout, x);
}

}  // namespace glimpse::cuda
