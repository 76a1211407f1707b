// Threads for the CPU kernels: the thread count, and glimpse's own parallel_for.
//
// Why not plain OpenMP for the heavy kernels: an OpenMP region ends in a barrier that waits for
// every thread of the team, including one the OS has not scheduled yet. On a machine shared with
// other work (BENCHMARKS.md's machines, a laptop with a browser open) every such join costs a
// scheduler time slice, and a single-image forward has a dozen of them (bench/NOTES.md measured
// 5.5 ms on 1 thread against 160 ms on 2). parallel_for instead hands out work items through an
// atomic counter: the calling thread takes items too, and it waits only for items another thread
// has actually started. A helper that wakes up late finds nothing left and goes back to sleep, so
// the worst case is the serial speed, never a stall.
//
// Eigen's own parallel GEMM (which busy-waits between its threads) is switched off: glimpse splits
// its GEMMs itself (core/ops/gemm.cpp, conv2d.cpp), so a program asking for n threads gets at most
// n busy threads, never n x n.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>

namespace glimpse {

// n >= 1 threads for parallel_for (every CPU kernel runs on it); n <= 0 means "the number of
// processors". Eigen's own threading stays off. Until this is called: GLIMPSE_NUM_THREADS, else
// OMP_NUM_THREADS, else the processor count. (glimpse uses no OpenMP: an idle libgomp thread spins
// for milliseconds after every region and took a core from the working threads -- single-image
// Grad-CAM on 2 threads measured 5.5 ms without OpenMP loops against 91 ms with them, bench/NOTES.md.)
void set_num_threads(int n);
int num_threads();

namespace detail {
using ItemFn = void (*)(void* ctx, int64_t item);
void parallel_for_impl(int64_t count, int max_threads, ItemFn fn, void* ctx);
}  // namespace detail

// Calls fn(i) once for every i in [0, count), on up to max_threads threads (default: num_threads()),
// the caller included; returns when all calls have returned. Which thread runs which item is not
// fixed: fn must not depend on it (reductions: give each of a fixed number of items its own
// accumulator). fn must not throw. Called from inside a parallel_for, it runs serially.
template <typename Fn>
void parallel_for(int64_t count, Fn&& fn, int max_threads = 0) {
  auto call = [](void* ctx, int64_t i) { (*static_cast<std::remove_reference_t<Fn>*>(ctx))(i); };
  detail::parallel_for_impl(count, max_threads, call, const_cast<void*>(static_cast<const void*>(&fn)));
}

// fn(begin, end) over [0, n) cut into chunks of at least `grain` elements, one chunk per thread at
// most: the replacement for `#pragma omp parallel for if (n > grain)` in element-wise kernels.
template <typename Fn>
void parallel_for_range(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  int64_t chunks = std::min<int64_t>(num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
  if (chunks <= 1) {
    fn(int64_t(0), n);
    return;
  }
  parallel_for(chunks, [&](int64_t c) { fn(n * c / chunks, n * (c + 1) / chunks); });
}

}  // namespace glimpse
