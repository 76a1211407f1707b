// GEMM through glimpse::gemm (Eigen, row-major) at 256^3 and 1024^3, plus the transposed forms the
// convolution backward uses. Validated against a naive double-precision dot product on a few
// entries. Compare the GFLOP/s with OpenBLAS sgemm (BENCHMARKS.md: 157 at 256^3, 184 at 1024^3 on
// 2 threads; bench/gemm_openblas.py measures it on this machine).
#include "bench/bench_common.h"
#include "core/ops/gemm.h"

using namespace glimpse;
using namespace glimpse::bench;

namespace {

void BM_Gemm(benchmark::State& state) {
  init_threads();
  const int64_t n = state.range(0);
  const bool ta = state.range(1) & 1, tb = state.range(1) & 2;
  Tensor a = uniform({n, n}, 1), b = uniform({n, n}, 2), c = Tensor::zeros({n, n});
  cpu::gemm(ta, tb, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  // Validate: a few entries against a naive product (a stored [M,K] or [K,M] when transposed).
  Rng pick(3);
  for (int t = 0; t < 16; ++t) {
    const int64_t i = pick.below(n), j = pick.below(n);
    double s = 0;
    for (int64_t k = 0; k < n; ++k)
      s += double(ta ? a.data()[k * n + i] : a.data()[i * n + k]) * (tb ? b.data()[j * n + k] : b.data()[k * n + j]);
    if (!close(c.data()[i * n + j], s, 1e-4)) {
      fail(state, "gemm: C[" + std::to_string(i) + "," + std::to_string(j) +
                      "] = " + std::to_string(c.data()[i * n + j]) + ", naive " + std::to_string(s));
      return;
    }
  }
  for (auto _ : state) {
    cpu::gemm(ta, tb, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * n * n * n);
}

}  // namespace

// range(1): bit 0 = A transposed, bit 1 = B transposed.
BENCHMARK(BM_Gemm)
    ->ArgNames({"n", "trans"})
    ->Args({256, 0})
    ->Args({1024, 0})
    ->Args({256, 1})
    ->Args({256, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
