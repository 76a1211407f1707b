// The SGD step (lr 0.01, momentum 0.9) over the W1 net's parameters (BENCHMARKS.md's optimizer).
// Validated once against the update written out by hand: buf = g on the first step, p -= lr * buf.
#include <string>

#include "bench/bench_common.h"
#include "layers/models.h"
#include "layers/optim.h"

using namespace glimpse;
using namespace glimpse::bench;

namespace {

void BM_SgdStep(benchmark::State& state) {
  init_threads();
  Rng init(1);
  auto net = small_gap_net(3, 64, init);
  std::vector<Tensor> params = net->parameters();
  uint64_t seed = 100;
  for (Tensor& p : params) p.impl()->grad = uniform(p.shape(), seed++).impl_ptr();
  std::vector<std::vector<float>> before;
  for (Tensor& p : params) before.push_back(p.to_vector());
  SGDOptions o;
  o.lr = 0.01f;
  o.momentum = 0.9f;
  SGD opt(params, o);
  opt.step();
  for (size_t i = 0; i < params.size(); ++i) {
    const float* g = params[i].grad().data();
    for (int64_t k = 0; k < params[i].numel(); k += 97)
      if (!close(params[i].data()[k], before[i][k] - 0.01f * g[k], 1e-6)) {
        fail(state, "SGD: parameter " + std::to_string(i) + " entry " + std::to_string(k) + " not updated as p - lr*g");
        return;
      }
  }
  int64_t n = 0;
  for (Tensor& p : params) n += p.numel();
  for (auto _ : state) opt.step();
  state.counters["params"] = double(n);
  state.SetBytesProcessed(state.iterations() * n * 4 * 4);
}
BENCHMARK(BM_SgdStep)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
