// Every attribution method (attr::method_names()) for one 64x64 image on the W1 net
// (small_gap_net). Validated once before timing: the map has the input's size and finite values,
// and on this GAP -> linear net CAM == Grad-CAM * (h*w) (BENCHMARKS.md).
#include <cmath>

#include "attribution/attribution.h"
#include "bench/bench_common.h"
#include "layers/models.h"

using namespace glimpse;
using namespace glimpse::bench;

namespace {

struct W1 {
  std::shared_ptr<Model> net;
  Tensor img;
  W1() {
    Rng init(1);
    net = small_gap_net(3, 64, init);
    net->eval();
    img = uniform({1, 3, 64, 64}, 7);
  }
};
W1& w1() {
  static W1 w;
  return w;
}

bool validate_identity(benchmark::State& state) {
  attr::Options o;
  o.layer = "features.7";
  o.normalize = false;
  attr::AttributionMap c = attr::cam(*w1().net, w1().img, o);
  attr::AttributionMap g = attr::gradcam(*w1().net, w1().img, o);
  double num = 0, den = 0;
  for (int64_t i = 0; i < c.raw.numel(); ++i) {
    const double a = std::max(c.raw.data()[i], 0.f), b = g.raw.data()[i] * 256.0;
    num += (a - b) * (a - b);
    den += a * a;
  }
  const double e = std::sqrt(num / std::max(den, 1e-30));
  if (e > 1e-4) return fail(state, "CAM != Grad-CAM * hw, relative error " + std::to_string(e));
  return true;
}

void BM_Attribution(benchmark::State& state, const std::string& method) {
  init_threads();
  W1& w = w1();
  attr::Options opt;  // defaults: predicted class, the model's CAM layer, upsampled + normalized
  attr::AttributionMap r;
  try {
    r = attr::explain(method, *w.net, w.img, opt);
  } catch (const std::exception& e) {
    fail(state, method + " threw: " + e.what());
    return;
  }
  if (!r.map.defined() || r.map.shape() != Shape{1, 64, 64}) {
    fail(state, method + ": map is not [1, 64, 64]");
    return;
  }
  for (int64_t i = 0; i < r.map.numel(); ++i)
    if (!std::isfinite(r.map.data()[i])) {
      fail(state, method + ": non-finite value in the map");
      return;
    }
  if ((method == "cam" || method == "gradcam") && !validate_identity(state)) return;
  for (auto _ : state) {
    attr::AttributionMap m = attr::explain(method, *w.net, w.img, opt);
    benchmark::DoNotOptimize(m.map.data());
  }
}

// One benchmark per registered method, named after it.
const int registered = [] {
  for (const std::string& m : attr::method_names())
    benchmark::RegisterBenchmark(("BM_Attribution/" + m).c_str(), BM_Attribution, m)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
