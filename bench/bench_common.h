// Helpers shared by the microbenchmarks: seeded random tensors, a relative-error check, and the
// validate-then-time pattern (STYLE.md: "benchmarks that validate before they time").
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/parallel.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace glimpse::bench {

// Every benchmark runs on the thread count of BENCHMARKS.md unless GLIMPSE_THREADS says otherwise.
inline int bench_threads() {
  const char* e = std::getenv("GLIMPSE_THREADS");
  return e ? std::max(1, std::atoi(e)) : 2;
}
inline void init_threads() { set_num_threads(bench_threads()); }

inline Tensor uniform(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  return Tensor::uniform(s, rng, -1.f, 1.f);
}

// |got - want| <= tol * (1 + |want|): a loose bound for float32 sums of a few thousand terms.
inline bool close(double got, double want, double tol = 1e-3) {
  return std::isfinite(got) && std::fabs(got - want) <= tol * (1.0 + std::fabs(want));
}

// Reports a validation failure: the benchmark is marked as an error and not timed.
inline bool fail(benchmark::State& state, const std::string& what) {
  state.SkipWithError(what.c_str());
  return false;
}

// FLOP/s counter (1 multiply-add = 2 FLOP): `flop` per iteration, divided by the wall time.
inline void set_flops(benchmark::State& state, double flop) {
  state.counters["GFLOP/s"] = benchmark::Counter(flop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace glimpse::bench
