// Reductions and softmax, the GPU twins of core/ops/reduce.cpp (sum / mean over all elements or one
// dimension; max over one dimension; softmax and log-softmax along one dimension), forward and backward side by side.
// A tensor is seen as [outer, len, inner] around the reduced dimension. Sums accumulate in double,
// as the CPU does, and in a fixed order (no atomics), so results are reproducible bit for bit.
//
// The CUDA twin of core/ops/reduce.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_reduce).
#include "core/ops/reduce.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

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

// One thread per column (a, c) of [outer, len, inner], the sizes passed last; none when len is 0.
template <typename... Params, typename... Args>
void launch_columns(detail::KernelSite op, cudaStream_t s, void (*kernel)(Params...), int64_t outer, int64_t len,
                    int64_t inner, Args... args) {
  detail::check_split(outer, len, inner, op.name);
  detail::launch_elements(op, len ? outer * inner : 0, s, kernel, args..., outer, len, inner);
}

}  // namespace

void sum_all_forward(float* out, const float* x, int64_t n, float scale, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::sum_all_forward: negative size ", n);
  require_default_stream(s, "sum_all_forward");  // `partial` below returns to the cache at scope exit
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  const int blocks = static_cast<int>(
      std::min<int64_t>(kSumBlocks, std::max<int64_t>(1, (n + detail::kThreads - 1) / detail::kThreads)));
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
  detail::check_split(outer, len, inner, "sum_dim_forward");
  detail::launch_elements("sum_dim_kernel", outer * inner, s, sum_dim_kernel, out, x, outer, len, inner, scale);
}

void sum_dim_backward(float* gx, const float* gout, int64_t outer, int64_t len, int64_t inner, float scale,
                      cudaStream_t s) {
  detail::check_split(outer, len, inner, "sum_dim_backward");
  const int64_t n = outer * len * inner;
  detail::launch_elements("sum_dim_backward_kernel", n, s, sum_dim_backward_kernel, gx, gout, n, len, inner, scale);
}

// len == 0 has no maximum: the autograd op refuses it before any launch; here it launches nothing.
void max_dim_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, cudaStream_t s) {
  launch_columns("max_dim_forward", s, max_dim_forward_kernel, outer, len, inner, out, x);
}

void max_dim_backward(float* gx, const float* gout, const float* x, int64_t outer, int64_t len, int64_t inner,
                      cudaStream_t s) {
  launch_columns("max_dim_backward", s, max_dim_backward_kernel, outer, len, inner, gx, gout, x);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace reduce_slots {

// A sum over the whole tensor (one output) runs the two-pass block reduction; one thread per output
// would add every value on a single GPU thread.
void sum_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(out);
  if (s.outer * s.inner == 1)
    cuda::sum_all_forward(device_data(out), device_data(x), s.len);
  else
    cuda::sum_dim_forward(device_data(out), device_data(x), s.outer, s.len, s.inner);
}

void sum_dim_backward(Tensor& gx, const Tensor& gout, const DimSplit& s, float scale) {
  const auto guard = on_device_of(gx);
  cuda::sum_dim_backward(device_data(gx), device_data(gout), s.outer, s.len, s.inner, scale);
}

void max_dim_forward(Tensor& out, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(out);
  cuda::max_dim_forward(device_data(out), device_data(x), s.outer, s.len, s.inner);
}

void max_dim_backward(Tensor& gx, const Tensor& gout, const Tensor& x, const DimSplit& s) {
  const auto guard = on_device_of(gx);
  cuda::max_dim_backward(device_data(gx), device_data(gout), device_data(x), s.outer, s.len, s.inner);
}

}  // namespace reduce_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_reduce(DeviceKernels& k) {
  k.sum_dim_forward = &reduce_slots::sum_dim_forward;
  k.sum_dim_backward = &reduce_slots::sum_dim_backward;
  k.max_dim_forward = &reduce_slots::max_dim_forward;
  k.max_dim_backward = &reduce_slots::max_dim_backward;
}

}  // namespace glimpse::cuda
