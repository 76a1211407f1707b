// conv2d forward, backward-data and backward-filter at the W1 shapes (batch 32 and batch 1) and
// the distinct W2 (VGG16, batch 1, 224x224) shapes. Each benchmark validates its kernel once
// before timing against naive loops (double accumulation) on a few random entries. Forward and
// backward-data run three times: ".../winograd" by the default paths (Winograd F(2x2, 3x3) where it
// applies, else the direct kernel), ".../direct" with Winograd off (cpu::set_conv2d_winograd),
// ".../im2col" with both off (cpu::set_conv2d_direct too): a same-binary A/B. With GLIMPSE_THREADS=1
// the CPU column is the whole work, which a loaded machine disturbs far less than the wall time.
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "core/ops/conv2d.h"

using namespace glimpse;
using namespace glimpse::bench;

namespace {

struct ConvShape {
  const char* name;
  int64_t N, C, H, K;  // square input H x H, 3x3 filters, pad 1, stride 1
};

const std::vector<ConvShape> kShapes = {
    {"w1_conv1_b32", 32, 3, 64, 32},  {"w1_conv2_b32", 32, 32, 32, 64}, {"w1_conv3_b32", 32, 64, 16, 128},
    {"w1_conv1_b1", 1, 3, 64, 32},    {"w1_conv2_b1", 1, 32, 32, 64},   {"w1_conv3_b1", 1, 64, 16, 128},
    {"w2_conv1_1", 1, 3, 224, 64},    {"w2_conv1_2", 1, 64, 224, 64},   {"w2_conv2_1", 1, 64, 112, 128},
    {"w2_conv2_2", 1, 128, 112, 128}, {"w2_conv3_x", 1, 256, 56, 256},  {"w2_conv4_x", 1, 512, 28, 512},
    {"w2_conv5_x", 1, 512, 14, 512},
};

struct Problem {
  ConvShape s;
  Conv2dOptions opt = Conv2dOptions().padding(1);
  Tensor x, w, b, out, gout;
  explicit Problem(const ConvShape& sh) : s(sh) {
    x = uniform({s.N, s.C, s.H, s.H}, 1);
    w = uniform({s.K, s.C, 3, 3}, 2);
    w.scale_(0.1f);
    b = uniform({s.K}, 3);
    out = Tensor::empty({s.N, s.K, s.H, s.H});
    gout = uniform({s.N, s.K, s.H, s.H}, 4);
  }
  double flop() const { return 2.0 * s.N * s.K * s.C * 9 * s.H * s.H; }
  float xat(int64_t n, int64_t c, int64_t h, int64_t ww) const {
    if (h < 0 || h >= s.H || ww < 0 || ww >= s.H) return 0.f;
    return x.data()[((n * s.C + c) * s.H + h) * s.H + ww];
  }
};

// out[n,k,p,q] = b[k] + sum_{c,r,t} w[k,c,r,t] x[n,c,p+r-1,q+t-1]
double naive_out(const Problem& P, int64_t n, int64_t k, int64_t p, int64_t q) {
  double acc = P.b.data()[k];
  for (int64_t c = 0; c < P.s.C; ++c)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t t = 0; t < 3; ++t)
        acc += double(P.w.data()[((k * P.s.C + c) * 3 + r) * 3 + t]) * P.xat(n, c, p + r - 1, q + t - 1);
  return acc;
}
// gx[n,c,h,w] = sum_{k,r,t} gout[n,k,h-r+1,w-t+1] w[k,c,r,t]
double naive_gx(const Problem& P, int64_t n, int64_t c, int64_t h, int64_t ww) {
  double acc = 0;
  const int64_t H = P.s.H;
  for (int64_t k = 0; k < P.s.K; ++k)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t t = 0; t < 3; ++t) {
        const int64_t p = h - r + 1, q = ww - t + 1;
        if (p < 0 || p >= H || q < 0 || q >= H) continue;
        acc += double(P.gout.data()[((n * P.s.K + k) * H + p) * H + q]) * P.w.data()[((k * P.s.C + c) * 3 + r) * 3 + t];
      }
  return acc;
}
// gw[k,c,r,t] = sum_{n,p,q} gout[n,k,p,q] x[n,c,p+r-1,q+t-1]
double naive_gw(const Problem& P, int64_t k, int64_t c, int64_t r, int64_t t) {
  double acc = 0;
  const int64_t H = P.s.H;
  for (int64_t n = 0; n < P.s.N; ++n)
    for (int64_t p = 0; p < H; ++p)
      for (int64_t q = 0; q < H; ++q)
        acc += double(P.gout.data()[((n * P.s.K + k) * H + p) * H + q]) * P.xat(n, c, p + r - 1, q + t - 1);
  return acc;
}

// Entries to check: the corners (padding) and a few random ones.
template <typename F>
bool check_entries(benchmark::State& state, const char* what, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                   F got_want) {
  Rng pick(11);
  for (int i = 0; i < 12; ++i) {
    int64_t a = pick.below(d0), b = pick.below(d1), c = i < 4 ? (i & 1) * (d2 - 1) : pick.below(d2),
            e = i < 4 ? (i >> 1) * (d3 - 1) : pick.below(d3);
    auto [got, want] = got_want(a, b, c, e);
    if (!close(got, want, 2e-3))
      return fail(state, std::string(what) + ": entry (" + std::to_string(a) + "," + std::to_string(b) + "," +
                             std::to_string(c) + "," + std::to_string(e) + ") = " + std::to_string(got) + ", naive " +
                             std::to_string(want));
  }
  return true;
}

enum class Path { Winograd, Direct, Im2col };

void set_path(Path p) {
  cpu::set_conv2d_winograd(p == Path::Winograd);
  cpu::set_conv2d_direct(p != Path::Im2col);
}

void BM_ConvForward(benchmark::State& state, ConvShape s, Path path) {
  init_threads();
  set_path(path);
  Problem P(s);
  cpu::conv2d_forward(P.out, P.x, P.w, P.b, P.opt);
  const int64_t H = s.H;
  if (!check_entries(state, "forward", s.N, s.K, H, H, [&](int64_t n, int64_t k, int64_t p, int64_t q) {
        return std::pair<double, double>(P.out.data()[((n * s.K + k) * H + p) * H + q], naive_out(P, n, k, p, q));
      }))
    return;
  for (auto _ : state) {
    cpu::conv2d_forward(P.out, P.x, P.w, P.b, P.opt);
    benchmark::DoNotOptimize(P.out.data());
  }
  set_flops(state, P.flop());
}

void BM_ConvBackwardData(benchmark::State& state, ConvShape s, Path path) {
  init_threads();
  set_path(path);
  Problem P(s);
  Tensor gx = Tensor::zeros({s.N, s.C, s.H, s.H});
  cpu::conv2d_backward_data(gx, P.gout, P.w, P.opt);
  const int64_t H = s.H;
  if (!check_entries(state, "backward_data", s.N, s.C, H, H, [&](int64_t n, int64_t c, int64_t h, int64_t w) {
        return std::pair<double, double>(gx.data()[((n * s.C + c) * H + h) * H + w], naive_gx(P, n, c, h, w));
      }))
    return;
  for (auto _ : state) {
    cpu::conv2d_backward_data(gx, P.gout, P.w, P.opt);
    benchmark::DoNotOptimize(gx.data());
  }
  set_flops(state, P.flop());
}

void BM_ConvBackwardFilter(benchmark::State& state, ConvShape s) {
  init_threads();
  set_path(Path::Winograd);  // the default paths (backward-filter has only im2col + GEMM)
  Problem P(s);
  Tensor gw = Tensor::zeros({s.K, s.C, 3, 3}), gb = Tensor::zeros({s.K});
  cpu::conv2d_backward_filter(gw, gb, P.gout, P.x, P.opt);
  if (!check_entries(state, "backward_filter", s.K, s.C, 3, 3, [&](int64_t k, int64_t c, int64_t r, int64_t t) {
        return std::pair<double, double>(gw.data()[((k * s.C + c) * 3 + r) * 3 + t], naive_gw(P, k, c, r, t));
      }))
    return;
  for (auto _ : state) {
    cpu::conv2d_backward_filter(gw, gb, P.gout, P.x, P.opt);
    benchmark::DoNotOptimize(gw.data());
  }
  set_flops(state, P.flop());
}

const int registered = [] {
  for (const ConvShape& s : kShapes) {
    const std::string n = s.name;
    for (Path p : {Path::Winograd, Path::Direct, Path::Im2col}) {
      const std::string path = p == Path::Winograd ? "/winograd" : p == Path::Direct ? "/direct" : "/im2col";
      benchmark::RegisterBenchmark(("BM_ConvForward/" + n + path).c_str(), BM_ConvForward, s, p)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("BM_ConvBackwardData/" + n + path).c_str(), BM_ConvBackwardData, s, p)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark(("BM_ConvBackwardFilter/" + n).c_str(), BM_ConvBackwardFilter, s)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
