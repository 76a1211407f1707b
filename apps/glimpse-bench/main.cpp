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
//   W3, attribution throughput (issue #14): the W1 net, one call on a batch of 32 images, reported in
//   ms per image; targets = the predicted classes; maps normalized per image to [0, 1]:
//   w3_ig_ms           Integrated Gradients, 64 steps (65 path points, trapezoid), zero baseline
//   w3_smoothgrad_ms   SmoothGrad, 16 samples, noise 0.15 of each image's range
//   w3_occlusion_ms    occlusion, 8x8 window, stride 4, fill 0 (15 x 15 = 225 windows)
//   w3_scorecam_ms     Score-CAM on features.7 (128 channels; all-zero channels skipped)
//   w3_curves_ms       deletion (zero baseline) and insertion (blur, sigma 5 * 64/224 px) curves of
//                      16 steps for each image's Grad-CAM map
//   w3_localize_ms     localize's per-image metric set for that map and a disc mask: Dice and IoU at
//                      the 19 thresholds 0.05..0.95, Dice/IoU at 0.5, energy, pointing game, and the
//                      two curves
//   w3_curves_loop_ms  the curves one image at a time (17 copies per forward), as localize ran them
//                      before rise_curves: a same-run A/B, not a PyTorch comparison
//   w3_occlusion_whole_ms  occlusion on whole copies (Options::occlusion_local = false), as before the
//                      receptive-field path: a same-run A/B, not a PyTorch comparison
//   w3_curves_b<B>_ms  rise_curves with B copies per forward pass, B = 17, 33, 64, 128 taken in
//                      turn (5 rounds, median): the chunk-size A/B
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
#include "attribution/metrics.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/atomic_file.h"
#include "core/ops/conv2d.h"
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

// W3's disc masks: image i's lesion at a centre and radius that vary with i (the same formula in
// compare_pytorch.py).
io::Mask disc_mask(int64_t i, int64_t side) {
  io::Mask m(side, side);
  const int64_t cx = 20 + (7 * i) % 24, cy = 20 + (11 * i) % 24, r = 8 + i % 12;
  for (int64_t y = 0; y < side; ++y)
    for (int64_t x = 0; x < side; ++x) m.at(x, y) = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r ? 1 : 0;
  return m;
}

void print_row(const std::string& key, const Stat& s) {
  std::printf("  %-20s %12.3f %-5s  [%.3f .. %.3f]\n", key.c_str(), s.median, s.unit.c_str(), s.min, s.max);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"glimpse-bench: the standard workloads W1, W2 and W3 of BENCHMARKS.md"};
  int threads = 2;
  std::string json_path, only;
  bool quick = false;
  app.add_option("--threads", threads, "CPU threads for the kernels (default 2)");
  app.add_option("--json", json_path, "write the results as JSON to this file");
  app.add_option("--only", only, "run one workload only (w3g: W3's IG and SmoothGrad only)")
      ->check(CLI::IsMember({"w1", "w2", "w3", "w3g"}));
  app.add_flag("--quick", quick, "fewer blocks (a smoke test, not a measurement)");
  bool no_direct = false;
  app.add_flag("--no-direct", no_direct,
               "convolutions through im2col + GEMM only (the direct kernel and Winograd off): a same-binary A/B");
  bool no_winograd = false;
  app.add_flag("--no-winograd", no_winograd,
               "3x3 convolutions through the direct kernel instead of Winograd F(2x2, 3x3): a same-binary A/B");
  CLI11_PARSE(app, argc, argv);

  set_num_threads(threads);
  cpu::set_conv2d_direct(!no_direct);
  cpu::set_conv2d_winograd(!no_direct && !no_winograd);
  std::map<std::string, Stat> results;
  nlohmann::json checks;
  std::printf("glimpse-bench: %d threads%s%s\n", num_threads(), quick ? " (quick)" : "",
              no_direct     ? " (direct convolution and Winograd off)"
              : no_winograd ? " (Winograd off)"
                            : "");

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
    if (only.empty() || only == "w3" || only == "w3g") {
      Rng init(1), data(44);
      std::shared_ptr<Model> net = small_gap_net(3, 64, init);
      net->eval();
      const int64_t N = 32, S = 64;
      const Tensor x = random_images(N, S, data);
      std::printf("W3 attribution throughput, small-gap 3x64x64, batch %lld (ms per image)\n",
                  static_cast<long long>(N));
      // One call on the whole batch per iteration; the figure is ms per image.
      const Plan plan = quick ? Plan{0, 1, 1} : Plan{1, 3, 1};
      auto per_image = [&](const std::string& key, const std::function<void()>& fn) {
        results[key] = measure(
            plan, fn, [&](double s) { return 1e3 * s / (plan.iters * N); }, "ms");
        print_row(key, results[key]);
      };
      attr::Options o;
      o.layer = "features.7";
      o.ig_steps = 64;
      o.smoothgrad_samples = 16;
      o.smoothgrad_noise = 0.15f;
      o.occlusion_window = 8;
      o.occlusion_stride = 4;
      // The maps the curves and the metric set are computed for: Grad-CAM, predicted classes.
      const attr::AttributionMap gc = attr::gradcam(*net, x, o);
      const std::vector<int64_t> targets = gc.targets;
      const Tensor maps = gc.map.contiguous();
      {
        const attr::AttributionMap ig = attr::integrated_gradients(*net, x, o);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < ig.completeness_gap.size(); ++i) {
          worst = std::max(worst, std::fabs(static_cast<double>(ig.completeness_gap[i])));
          scale = std::max(scale, std::fabs(static_cast<double>(ig.scores[i])));
        }
        checks["w3_ig_completeness_gap_max"] = worst;
        checks["w3_ig_score_max"] = scale;
        std::printf("  check: IG completeness gap max %.3e (largest |logit| %.3e)\n", worst, scale);
      }
      attr::CurveOptions co;
      co.steps = 16;
      co.blur_sigma = std::max(1.f, 5.f * static_cast<float>(S) / 224.f);
      co.batch = 64;
      std::vector<io::Mask> masks;
      for (int64_t i = 0; i < N; ++i) masks.push_back(disc_mask(i, S));
      per_image("w3_ig_ms", [&] { attr::integrated_gradients(*net, x, o); });
      per_image("w3_smoothgrad_ms", [&] { attr::smoothgrad(*net, x, o); });
      if (only != "w3g") {  // w3g: the two forward + input-backward methods only
        per_image("w3_occlusion_ms", [&] { attr::occlusion(*net, x, o); });
        per_image("w3_scorecam_ms", [&] { attr::scorecam(*net, x, o); });
        double auc_sum = 0;
        per_image("w3_curves_ms", [&] {
          auc_sum = 0;
          for (const auto& c : attr::rise_curves(*net, x, maps, targets, co))
            auc_sum += c.deletion.auc + c.insertion.auc;
        });
        checks["w3_curves_auc_sum"] = auc_sum;
        per_image("w3_localize_ms", [&] {
          // localize's loop (apps/melanoma/localize.cpp) for one batch
          double acc = 0;
          const std::vector<attr::CurvePair> curves = attr::rise_curves(*net, x, maps, targets, co);
          for (int64_t i = 0; i < N; ++i) {
            const Tensor m = maps.slice(i, i + 1);
            for (int k = 1; k <= 19; ++k) {
              const io::Mask p = attr::threshold_map(m, {attr::ThresholdMethod::Value, 0.05f * k});
              acc += attr::dice(p, masks[i]) + attr::iou(p, masks[i]);
            }
            const attr::LocalizationScores ls = attr::localization_scores(
                m, masks[i], {attr::ThresholdMethod::Value, 0.5f}, 15.0 / 224.0 * static_cast<double>(S));
            acc += ls.dice + ls.iou + ls.energy + (ls.hit ? 1 : 0) + curves[i].deletion.auc + curves[i].insertion.auc;
          }
          checks["w3_localize_sum"] = acc;
        });
        // rise_curves' copies per forward pass, interleaved (rounds of 17, 33, 64, 128): which chunk
        // is fastest is a cache question (activations of 64 images at 64 px spill out of L2/L3).
        {
          const std::vector<int64_t> sizes = {17, 33, 64, 128};
          std::vector<std::vector<double>> t(sizes.size());
          for (int r = 0; r < (quick ? 1 : 5); ++r)
            for (size_t j = 0; j < sizes.size(); ++j) {
              co.batch = sizes[j];
              const auto t0 = Clock::now();
              attr::rise_curves(*net, x, maps, targets, co);
              t[j].push_back(1e3 * std::chrono::duration<double>(Clock::now() - t0).count() / N);
            }
          for (size_t j = 0; j < sizes.size(); ++j) {
            std::sort(t[j].begin(), t[j].end());
            const std::string key = "w3_curves_b" + std::to_string(sizes[j]) + "_ms";
            results[key] = Stat{t[j][t[j].size() / 2], t[j].front(), t[j].back(), "ms"};
            print_row(key, results[key]);
          }
        }
        per_image("w3_occlusion_whole_ms", [&] {
          attr::Options whole = o;
          whole.occlusion_local = false;
          attr::occlusion(*net, x, whole);
        });
        co.batch = co.steps + 1;
        per_image("w3_curves_loop_ms", [&] {
          double sum = 0;
          for (int64_t i = 0; i < N; ++i) {
            const Tensor xi = x.slice(i, i + 1), m = maps.slice(i, i + 1);
            sum += attr::deletion_curve(*net, xi, m, targets[i], co).auc +
                   attr::insertion_curve(*net, xi, m, targets[i], co).auc;
          }
          checks["w3_curves_loop_auc_sum"] = sum;
        });
      }
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
