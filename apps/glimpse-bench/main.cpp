// glimpse-bench: the standard workloads W1 and W2 of BENCHMARKS.md, timed the same way as
// bench/compare_pytorch.py times PyTorch (same JSON keys), so bench/compare.sh can print same-run
// ratios.
//
// Protocol (identical in compare_pytorch.py):
//   inputs U(-1, 1) from fixed seeds; models built from a fixed seed; every workload first runs
//   its warm-up iterations, then `blocks` timed blocks of `iters` iterations; a block's figure is
//   images/s (throughput metrics) or ms per call (latency metrics); reported: the median over the
//   blocks, with min and max.
//
//   w1_train_ips       batch 32, forward + softmax-CE + backward + SGD(lr 0.01, momentum 0.9) step;
//                      a block is one pass over 20 distinct random batches
//   w1_infer_ips       batch 32, forward + softmax under no-grad; a block is 20 batches
//   w1_cam_ms          one image: attr::cam (forward, argmax, sum_k W[c,k] A_k, bilinear to 64x64)
//   w1_gradcam_ms      one image: attr::gradcam (backward from y_c stops at A = features.7)
//   w1_gradcam_full_ms one image: Grad-CAM with y_c.backward() through the whole network (all
//                      parameter gradients), A's gradient read by a hook -- what hook-based
//                      libraries do
//   w2_fwd_ms, w2_gradcam_ms, w2_gradcam_full_ms: VGG16-GAP, batch 1, 224x224, A = features.29
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "attribution/attribution.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/atomic_file.h"
#include "core/parallel.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "layers/optim.h"

using namespace glimpse;

namespace {

using Clock = std::chrono::steady_clock;

struct Stat {
  double median = 0, min = 0, max = 0;
  std::string unit;
};

struct Plan {
  int warmup, blocks, iters;
};

// Runs `fn` plan.warmup times, then plan.blocks blocks of plan.iters calls. per_block(seconds)
// turns a block's wall time into its figure.
Stat measure(const Plan& plan, const std::function<void()>& fn, const std::function<double(double)>& per_block,
             const std::string& unit) {
  for (int i = 0; i < plan.warmup; ++i) fn();
  std::vector<double> v;
  for (int b = 0; b < plan.blocks; ++b) {
    auto t0 = Clock::now();
    for (int i = 0; i < plan.iters; ++i) fn();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    v.push_back(per_block(s));
  }
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  Stat st;
  st.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  st.min = v.front();
  st.max = v.back();
  st.unit = unit;
  return st;
}

Stat measure_ms(const Plan& p, const std::function<void()>& fn) {
  return measure(
      p, fn, [&](double s) { return 1e3 * s / p.iters; }, "ms");
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // kilobytes on Linux
}

Tensor random_images(int64_t n, int64_t side, Rng& rng) { return Tensor::uniform({n, 3, side, side}, rng, -1.f, 1.f); }

// Grad-CAM with the backward through the whole network, as a hook-based library computes it:
// a forward hook keeps A (on the tape, retain_grad), y_c.backward() then fills every parameter's
// .grad and A's gradient on the way; w_k = mean of dA, map = ReLU(sum_k w_k A_k) upsampled.
Tensor gradcam_full(Model& model, const Tensor& x, const std::string& layer) {
  Tensor A;
  Tensor logits;
  {
    HookHandle h = register_forward_hook(model, layer, [&](Module&, const Tensor&, const Tensor& y) {
      A = y;
      A.retain_grad();
      return Tensor();
    });
    logits = model(x);
  }
  const int64_t c = argmax_rows(logits)[0];
  model.zero_grad();
  Tensor onehot = Tensor::zeros(logits.shape());
  onehot.data()[c] = 1.f;
  logits.backward(onehot);
  const Tensor G = A.grad();
  const int64_t K = A.size(1), h = A.size(2), w = A.size(3), hw = h * w;
  Tensor m = Tensor::zeros({1, 1, h, w});
  float* mp = m.data();
  const float* ap = A.data();
  const float* gp = G.data();
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t p = 0; p < hw; ++p) s += gp[k * hw + p];
    const float wk = static_cast<float>(s / hw);
    for (int64_t p = 0; p < hw; ++p) mp[p] += wk * ap[k * hw + p];
  }
  for (int64_t p = 0; p < hw; ++p) mp[p] = std::max(mp[p], 0.f);
  NoGradGuard ng;
  return upsample_bilinear(m, x.size(2), x.size(3));
}

// CAM == Grad-CAM * (h*w) on a GAP -> linear head (BENCHMARKS.md): compared on the library's raw
// maps (CAM signed, Grad-CAM after ReLU, so compare ReLU(CAM)). Returns the relative error.
double cam_gradcam_identity(Model& model, const Tensor& x, const std::string& layer, int64_t hw) {
  attr::Options o;
  o.layer = layer;
  o.normalize = false;
  attr::AttributionMap c = attr::cam(model, x, o);
  attr::AttributionMap g = attr::gradcam(model, x, o);
  double num = 0, den = 0;
  for (int64_t i = 0; i < c.raw.numel(); ++i) {
    const double a = std::max(c.raw.data()[i], 0.f), b = g.raw.data()[i] * hw;
    num += (a - b) * (a - b);
    den += a * a;
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void print_row(const std::string& key, const Stat& s) {
  std::printf("  %-20s %12.3f %-5s  [%.3f .. %.3f]\n", key.c_str(), s.median, s.unit.c_str(), s.min, s.max);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"glimpse-bench: the standard workloads W1 and W2 of BENCHMARKS.md"};
  int threads = 2;
  std::string json_path, only;
  bool quick = false;
  app.add_option("--threads", threads, "CPU threads for the kernels (default 2)");
  app.add_option("--json", json_path, "write the results as JSON to this file");
  app.add_option("--only", only, "run one workload only")->check(CLI::IsMember({"w1", "w2"}));
  app.add_flag("--quick", quick, "fewer blocks (a smoke test, not a measurement)");
  CLI11_PARSE(app, argc, argv);

  set_num_threads(threads);
  std::map<std::string, Stat> results;
  nlohmann::json checks;
  std::printf("glimpse-bench: %d threads%s\n", num_threads(), quick ? " (quick)" : "");

  try {
    if (only.empty() || only == "w1") {
      Rng init(1), data(42);
      std::shared_ptr<Model> net = small_gap_net(3, 64, init);
      std::vector<Tensor> batches;
      std::vector<std::vector<int64_t>> labels;
      for (int b = 0; b < 20; ++b) {
        batches.push_back(random_images(32, 64, data));
        std::vector<int64_t> y(32);
        for (auto& v : y) v = static_cast<int64_t>(data.below(3));
        labels.push_back(y);
      }
      std::printf("W1 small-gap 3x64x64, batch 32\n");

      // Training.
      net->train();
      SGDOptions so;
      so.lr = 0.01f;
      so.momentum = 0.9f;
      SGD opt(net->parameters(), so);
      int step = 0;
      auto train_step = [&] {
        const int b = step++ % 20;
        opt.zero_grad();
        Tensor loss = cross_entropy((*net)(batches[b]), labels[b]);
        loss.backward();
        opt.step();
      };
      Plan tp = quick ? Plan{5, 3, 20} : Plan{20, 7, 20};
      results["w1_train_ips"] = measure(
          tp, train_step, [&](double s) { return 20.0 * 32 / s; }, "img/s");
      print_row("w1_train_ips", results["w1_train_ips"]);
      checks["w1_train_peak_rss_mb"] = peak_rss_mb();

      // Inference.
      net->eval();
      int ib = 0;
      auto infer = [&] {
        NoGradGuard ng;
        Tensor p = softmax((*net)(batches[ib++ % 20]), 1);
        (void)p;
      };
      results["w1_infer_ips"] = measure(
          tp, infer, [&](double s) { return 20.0 * 32 / s; }, "img/s");
      print_row("w1_infer_ips", results["w1_infer_ips"]);

      // Attribution, one image.
      Rng irng(7);
      const Tensor img = random_images(1, 64, irng);
      const std::string layer = "features.7";
      attr::Options ao;
      ao.layer = layer;
      ao.normalize = false;  // BENCHMARKS.md: the map upsampled, no normalization
      const double ident = cam_gradcam_identity(*net, img, layer, 16 * 16);
      checks["w1_cam_gradcam_rel_err"] = ident;
      std::printf("  check: CAM vs Grad-CAM*hw relative error %.2e\n", ident);
      GLIMPSE_CHECK(ident < 1e-4, "W1: CAM and Grad-CAM*hw disagree (relative error ", ident, ")");
      {
        // The full-backward variant must give the library's Grad-CAM map.
        Tensor full = gradcam_full(*net, img, layer);
        attr::AttributionMap g = attr::gradcam(*net, img, ao);
        double num = 0, den = 0;
        for (int64_t i = 0; i < full.numel(); ++i) {
          const double d = full.data()[i] - g.map.data()[i];
          num += d * d;
          den += double(g.map.data()[i]) * g.map.data()[i];
        }
        const double e = std::sqrt(num / std::max(den, 1e-30));
        checks["w1_gradcam_full_rel_err"] = e;
        GLIMPSE_CHECK(e < 1e-4, "W1: Grad-CAM with the full backward differs from attr::gradcam (", e, ")");
      }
      Plan ap = quick ? Plan{10, 3, 20} : Plan{30, 9, 50};
      results["w1_cam_ms"] = measure_ms(ap, [&] { attr::cam(*net, img, ao); });
      print_row("w1_cam_ms", results["w1_cam_ms"]);
      results["w1_gradcam_ms"] = measure_ms(ap, [&] { attr::gradcam(*net, img, ao); });
      print_row("w1_gradcam_ms", results["w1_gradcam_ms"]);
      results["w1_gradcam_full_ms"] = measure_ms(ap, [&] { gradcam_full(*net, img, layer); });
      print_row("w1_gradcam_full_ms", results["w1_gradcam_full_ms"]);
    }

    if (only.empty() || only == "w2") {
      Rng init(2), data(43);
      std::shared_ptr<Model> vgg = vgg16_gap(3, 224, init, /*extra_conv=*/false);
      vgg->eval();
      const Tensor img = random_images(1, 224, data);
      const std::string layer = "features.29";
      std::printf("W2 vgg16-gap 3x224x224, batch 1\n");
      const double ident = cam_gradcam_identity(*vgg, img, layer, 14 * 14);
      checks["w2_cam_gradcam_rel_err"] = ident;
      std::printf("  check: CAM vs Grad-CAM*hw relative error %.2e\n", ident);
      GLIMPSE_CHECK(ident < 1e-4, "W2: CAM and Grad-CAM*hw disagree (relative error ", ident, ")");
      attr::Options ao;
      ao.layer = layer;
      ao.normalize = false;
      Plan wp = quick ? Plan{1, 3, 1} : Plan{2, 5, 2};
      results["w2_fwd_ms"] = measure_ms(wp, [&] {
        NoGradGuard ng;
        (*vgg)(img);
      });
      print_row("w2_fwd_ms", results["w2_fwd_ms"]);
      results["w2_gradcam_ms"] = measure_ms(wp, [&] { attr::gradcam(*vgg, img, ao); });
      print_row("w2_gradcam_ms", results["w2_gradcam_ms"]);
      results["w2_gradcam_full_ms"] = measure_ms(wp, [&] { gradcam_full(*vgg, img, layer); });
      print_row("w2_gradcam_full_ms", results["w2_gradcam_full_ms"]);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "glimpse-bench: %s\n", e.what());
    return 1;
  }

  const double rss = peak_rss_mb();
  std::printf("peak resident memory: %.1f MiB\n", rss);
  if (!json_path.empty()) {
    nlohmann::json j;
    j["framework"] = "glimpse";
    j["threads"] = threads;
    j["quick"] = quick;
    j["peak_rss_mb"] = rss;
    j["checks"] = checks;
    for (const auto& [k, s] : results) {
      j[k] = s.median;
      j["ranges"][k] = {s.min, s.max};
    }
    glimpse::io::write_file_atomic(json_path, j.dump(2) + "\n");  // checked: a full disk is an error
  }
  return 0;
}
