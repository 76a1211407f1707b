// Pooling at the W1 shapes (batch 32) and W2's first pool: max pool 2x2/2 forward and backward,
// global average pooling forward and backward. Validated once against naive loops.
#include <algorithm>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "core/ops/activation.h"
#include "core/ops/pool2d.h"

using namespace glimpse;
using namespace glimpse::bench;

namespace {

struct PoolShape {
  const char* name;
  int64_t N, C, H;
};
const std::vector<PoolShape> kShapes = {
    {"w1_pool1_b32", 32, 32, 64}, {"w1_pool2_b32", 32, 64, 32}, {"w2_pool1", 1, 64, 224}, {"w1_gap_b32", 32, 128, 16}};

// max of the 2x2 window (p, q) of plane (n, c).
float naive_max(const Tensor& x, int64_t plane, int64_t H, int64_t p, int64_t q) {
  const float* b = x.data() + plane * H * H;
  return std::max(std::max(b[2 * p * H + 2 * q], b[2 * p * H + 2 * q + 1]),
                  std::max(b[(2 * p + 1) * H + 2 * q], b[(2 * p + 1) * H + 2 * q + 1]));
}

void BM_MaxPoolForward(benchmark::State& state, PoolShape s) {
  init_threads();
  const Pool2dOptions opt = Pool2dOptions::square(2, 2);
  Tensor x = uniform({s.N, s.C, s.H, s.H}, 1), out = Tensor::empty({s.N, s.C, s.H / 2, s.H / 2});
  cpu::max_pool2d_forward(out, x, opt);
  const int64_t P = s.H / 2;
  for (int64_t i = 0; i < s.N * s.C; i += std::max<int64_t>(1, s.N * s.C / 7))
    for (int64_t p = 0; p < P; p += 5)
      for (int64_t q = 0; q < P; q += 3)
        if (out.data()[(i * P + p) * P + q] != naive_max(x, i, s.H, p, q)) {
          fail(state, "max_pool2d_forward differs from the naive max at plane " + std::to_string(i));
          return;
        }
  for (auto _ : state) {
    cpu::max_pool2d_forward(out, x, opt);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4);
}

void BM_MaxPoolBackward(benchmark::State& state, PoolShape s) {
  init_threads();
  const Pool2dOptions opt = Pool2dOptions::square(2, 2);
  const int64_t P = s.H / 2;
  Tensor x = uniform({s.N, s.C, s.H, s.H}, 1), g = uniform({s.N, s.C, P, P}, 2), gx = Tensor::zeros(x.shape());
  cpu::max_pool2d_backward(gx, g, x, opt);
  // Every window passes its gradient to exactly its maximal cell: sums match, and the cell is the max.
  for (int64_t i = 0; i < s.N * s.C; i += std::max<int64_t>(1, s.N * s.C / 7))
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < P; ++q) {
        const float m = naive_max(x, i, s.H, p, q);
        double sum = 0;
        bool hit = false;
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t t = 0; t < 2; ++t) {
            const int64_t off = i * s.H * s.H + (2 * p + r) * s.H + 2 * q + t;
            sum += gx.data()[off];
            if (gx.data()[off] != 0.f && x.data()[off] == m) hit = true;
          }
        if (!close(sum, g.data()[(i * P + p) * P + q], 1e-6) || (!hit && g.data()[(i * P + p) * P + q] != 0.f)) {
          fail(state, "max_pool2d_backward: window (" + std::to_string(p) + "," + std::to_string(q) + ") of plane " +
                          std::to_string(i) + " is wrong");
          return;
        }
      }
  // One pass writes every cell (the kernel contract): no zero fill first.
  for (auto _ : state) {
    cpu::max_pool2d_backward(gx, g, x, opt);
    benchmark::DoNotOptimize(gx.data());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4);
}

// ReLU + 2x2 max pool, forward and backward of a training step: fused = 1 runs
// relu_max_pool2x2_{forward,backward}; 0 runs the two ops (relu, pool, pool backward, relu backward).
void BM_ReluMaxPool(benchmark::State& state, PoolShape s) {
  init_threads();
  const bool fused = state.range(0) != 0;
  const Pool2dOptions opt = Pool2dOptions::square(2, 2);
  const int64_t P = s.H / 2;
  Tensor x = uniform({s.N, s.C, s.H, s.H}, 3), g = uniform({s.N, s.C, P, P}, 4);
  Tensor r = Tensor::empty(x.shape()), out = Tensor::empty(g.shape()), gr = Tensor::empty(x.shape()),
         gx = Tensor::empty(x.shape());
  auto two_ops = [&] {
    cpu::relu_forward(r, x);
    cpu::max_pool2d_forward(out, r, opt);
    cpu::max_pool2d_backward(gr, g, r, opt);
    cpu::relu_backward(gx, gr, x, ReluRule::Standard);
  };
  auto one_op = [&] {
    cpu::relu_max_pool2x2_forward(out, x);
    cpu::relu_max_pool2x2_backward(gx, g, x, ReluRule::Standard);
  };
  two_ops();
  const std::vector<float> want_out = out.to_vector(), want_gx = gx.to_vector();
  one_op();
  if (out.to_vector() != want_out || gx.to_vector() != want_gx) {
    fail(state, "relu_max_pool2x2 differs from relu then max_pool2d");
    return;
  }
  for (auto _ : state) {
    if (fused)
      one_op();
    else
      two_ops();
    benchmark::DoNotOptimize(gx.data());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4);
}

void BM_GlobalAvgPool(benchmark::State& state, PoolShape s) {
  init_threads();
  Tensor x = uniform({s.N, s.C, s.H, s.H}, 1), out = Tensor::empty({s.N, s.C});
  cpu::global_avg_pool_forward(out, x);
  for (int64_t i = 0; i < s.N * s.C; i += 13) {
    double m = 0;
    for (int64_t j = 0; j < s.H * s.H; ++j) m += x.data()[i * s.H * s.H + j];
    if (!close(out.data()[i], m / (s.H * s.H), 1e-5)) {
      fail(state, "global_avg_pool_forward: plane " + std::to_string(i));
      return;
    }
  }
  Tensor gx = Tensor::zeros(x.shape());
  for (auto _ : state) {
    cpu::global_avg_pool_forward(out, x);
    cpu::global_avg_pool_backward(gx, out);
    benchmark::DoNotOptimize(gx.data());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 8);
}

const int registered = [] {
  for (const PoolShape& s : kShapes) {
    const std::string n = s.name;
    if (n.find("gap") != std::string::npos) {
      benchmark::RegisterBenchmark(("BM_GlobalAvgPool/" + n).c_str(), BM_GlobalAvgPool, s)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      continue;
    }
    benchmark::RegisterBenchmark(("BM_MaxPoolForward/" + n).c_str(), BM_MaxPoolForward, s)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("BM_MaxPoolBackward/" + n).c_str(), BM_MaxPoolBackward, s)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("BM_ReluMaxPool/" + n).c_str(), BM_ReluMaxPool, s)
        ->ArgName("fused")
        ->Arg(0)
        ->Arg(1)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
