// Batch norm (training statistics) forward and backward at a ResNet-like shape [32, 64, 32, 32].
// Validated once: each output channel has mean ~0 and biased variance ~1 (gamma = 1, beta = 0),
// and the backward's dbeta equals the sum of the output gradient per channel.
#include <cmath>
#include <string>

#include "bench/bench_common.h"
#include "core/ops/batch_norm.h"

using namespace glimpse;
using namespace glimpse::bench;

namespace {

constexpr int64_t N = 32, C = 64, H = 32;

void BM_BatchNormTrain(benchmark::State& state) {
  init_threads();
  Tensor x = uniform({N, C, H, H}, 1), y = Tensor::empty(x.shape());
  Tensor gamma = Tensor::ones({C}), beta = Tensor::zeros({C}), rm = Tensor::zeros({C}), rv = Tensor::ones({C});
  Tensor mean = Tensor::empty({C}), invstd = Tensor::empty({C});
  Tensor g = uniform(x.shape(), 2), gx = Tensor::zeros(x.shape()), gg = Tensor::zeros({C}), gbeta = Tensor::zeros({C});
  cpu::batch_norm_forward_train(y, mean, invstd, rm, rv, x, gamma, beta, 0.1f, 1e-5f);
  cpu::batch_norm_backward(gx, gg, gbeta, g, x, gamma, mean, invstd, true, 1e-5f);
  const int64_t M = N * H * H;
  for (int64_t c = 0; c < C; c += 7) {
    double s = 0, s2 = 0, gs = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < H * H; ++i) {
        const double v = y.data()[(n * C + c) * H * H + i];
        s += v, s2 += v * v, gs += g.data()[(n * C + c) * H * H + i];
      }
    if (std::fabs(s / M) > 1e-4 || std::fabs(s2 / M - 1) > 1e-3 || !close(gbeta.data()[c], gs, 1e-4)) {
      fail(state, "batch_norm: channel " + std::to_string(c) + " mean " + std::to_string(s / M) + ", var " +
                      std::to_string(s2 / M) + ", dbeta " + std::to_string(gbeta.data()[c]) + " vs " +
                      std::to_string(gs));
      return;
    }
  }
  for (auto _ : state) {
    cpu::batch_norm_forward_train(y, mean, invstd, rm, rv, x, gamma, beta, 0.1f, 1e-5f);
    cpu::batch_norm_backward(gx, gg, gbeta, g, x, gamma, mean, invstd, true, 1e-5f);
    benchmark::DoNotOptimize(gx.data());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4 * 5);
}
BENCHMARK(BM_BatchNormTrain)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
