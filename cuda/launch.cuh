// Internal helpers of the hand-written kernels (cuda/*.cu only; not part of the public API):
// launch geometry, a launch check that names the kernel, and a deterministic block reduction.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/check.h"

namespace glimpse::cuda::detail {

constexpr int kThreads = 256;
// Grids are capped and every element kernel is a grid-stride loop, so any count fits and a huge
// tensor does not need a huge grid (which only adds scheduling overhead).
constexpr int64_t kMaxBlocks = 65535;

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, kMaxBlocks));
}

// Checks the launch just made, naming the kernel and the caller's file and line. A launch error (bad
// configuration, no kernel image for this GPU) belongs to this launch. A fault of a kernel that ran
// earlier (asynchronously) also surfaces here, at the first check after it: the message says so and
// how to find the kernel at fault, rather than blame this one.
inline void check_launch(const char* file, int line, const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return;
  if (is_async_fault(err))
    ::glimpse::detail::fail(file, line, kernel,
                            ::glimpse::detail::concat("CUDA error ", cudaGetErrorName(err), ": ",
                                                      cudaGetErrorString(err), ", reported at the launch of ", kernel,
                                                      " but raised by a kernel that ran before it (kernel faults "
                                                      "arrive asynchronously). Run with CUDA_LAUNCH_BLOCKING=1 to stop "
                                                      "at the kernel at fault. ",
                                                      hint_for(err)));
  ::glimpse::detail::fail(file, line, kernel,
                          ::glimpse::detail::concat("CUDA kernel launch failed: ", cudaGetErrorName(err), ": ",
                                                    cudaGetErrorString(err), ". ", hint_for(err)));
}

// A kernel's name with the file and line of the launcher that names it: a string literal converts
// implicitly, and the default arguments are evaluated at that call site, so errors point at the
// launcher in cuda/*.cu, not at this header.
struct KernelSite {
  const char* name;
  const char* file;
  int line;
  KernelSite(const char* kernel, const char* f = __builtin_FILE(), int l = __builtin_LINE())  // NOLINT: implicit
      : name(kernel), file(f), line(l) {}
};

// The [outer, len, inner] view of a reduction or softmax (core/ops/reduce.h DimSplit): sizes >= 0.
inline void check_split(int64_t outer, int64_t len, int64_t inner, const char* op) {
  GLIMPSE_CHECK(outer >= 0 && len >= 0 && inner >= 0, "cuda::", op, ": bad sizes outer=", outer, " len=", len,
                " inner=", inner);
}

// Launches `kernel(args...)` on `stream` with enough threads for one per element of `n` (the kernel
// grid-strides over n); nothing when n <= 0. Checks the launch, naming the kernel and its launcher.
template <typename... Params, typename... Args>
void launch_elements(KernelSite site, int64_t n, cudaStream_t stream, void (*kernel)(Params...), Args... args) {
  require_default_stream(stream, site.name);
  if (n <= 0) return;
  kernel<<<blocks_for(n), kThreads, 0, stream>>>(static_cast<Params>(args)...);
  check_launch(site.file, site.line, site.name);
}

// The same with one block per row of `rows` (for kernels that reduce a row with block_sum; the kernel
// strides over rows by gridDim.x).
template <typename... Params, typename... Args>
void launch_rows(KernelSite site, int64_t rows, cudaStream_t stream, void (*kernel)(Params...), Args... args) {
  require_default_stream(stream, site.name);
  if (rows <= 0) return;
  kernel<<<static_cast<unsigned>(std::min(rows, kMaxBlocks)), kThreads, 0, stream>>>(static_cast<Params>(args)...);
  check_launch(site.file, site.line, site.name);
}

// Sum of `v` over the block, returned to thread 0 (other threads get partial sums). The tree order
// is fixed by thread index, so the result is the same on every run (no atomics). blockDim.x must
// be a multiple of 32 and at most 1024.
template <typename T>
__device__ inline T block_sum(T v) {
  __shared__ T warp_sums[32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = threadIdx.x < warps ? warp_sums[threadIdx.x] : T(0);
  if (warp == 0)
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  __syncthreads();  // warp_sums may be reused by the next call
  return v;
}

}  // namespace glimpse::cuda::detail

#define GLIMPSE_CHECK_LAUNCH(kernel) ::glimpse::cuda::detail::check_launch(__FILE__, __LINE__, kernel)

// for (i = this thread's first index; i < n; i += all threads of the grid)
#define GLIMPSE_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)
