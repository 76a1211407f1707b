// Gradient methods: attributions at the input, raw [N, C, H, W].
//
// Mechanics: the input is a detached copy of x with requires_grad (a fresh leaf); the forward runs
// in eval mode on the normal tape; glimpse::grad(logits, one_hot(targets), {input}) runs only the
// tape between the logits and the input and never touches a parameter's .grad. Deconvnet and
// guided backprop run that same backward under a ReluRuleGuard, which swaps the rule every ReLU
// uses in backward (core/grad_mode.h) -- no copy of the network, no hooks to leak.
// Because images are independent in eval mode, d(sum_i y_{i,c_i})/dx_i = dy_{i,c_i}/dx_i: one
// backward serves the whole batch.
#include <algorithm>
#include <cmath>

#include "attribution/attribution.h"
#include "attribution/internal.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace glimpse::attr {
namespace {

using detail::cpu;

struct InputGrad {
  std::vector<int64_t> targets;
  std::vector<float> scores;
  Tensor grad;  // dy_c/dx [N, C, H, W], CPU
};

// The gradient of each image's target logit w.r.t. its input, the ReLUs using `rule` in backward.
// `fixed` (when non-empty) are already resolved targets, used as they are.
InputGrad input_gradient(Module& model, const Tensor& x, const std::vector<int64_t>& requested, const char* method,
                         ReluRule rule = ReluRule::Standard) {
  detail::InputForward f = detail::input_forward(model, x);
  InputGrad r;
  r.targets = detail::resolve_targets(f.logits, requested, method);
  r.scores = detail::target_scores(f.logits, r.targets);
  ReluRuleGuard rule_guard(rule);
  r.grad =
      cpu(glimpse::grad({f.logits}, {detail::one_hot(r.targets, f.logits.size(1), f.logits.device())}, {f.input})[0]);
  return r;
}

AttributionMap input_result(const char* method, InputGrad& g, Tensor raw, const Tensor& map2d, const Tensor& x,
                            const Options& opt) {
  AttributionMap r = detail::make_result(method, "", g.targets, g.scores, raw);
  detail::finish_map(r, map2d, opt, x.size(2), x.size(3));
  return r;
}

// Element-wise a * b of two CPU tensors of one shape.
Tensor times(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape());
  for (int64_t j = 0; j < a.numel(); ++j) out.data()[j] = a.data()[j] * b.data()[j];
  return out;
}

}  // namespace

// ---- saliency ------------------------------------------------------------------------------------
// Simonyan, Vedaldi, Zisserman, "Deep Inside Convolutional Networks: Visualising Image
// Classification Models and Saliency Maps", ICLR workshop 2014.
//     raw = dy_c/dx                  [N, C, H, W] (signed)
//     map = max_colour |dy_c/dx|     (the paper's reduction over channels)
AttributionMap saliency(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "saliency");
  detail::EvalModeGuard eval(model);
  InputGrad g = input_gradient(model, x, opt.targets, "saliency");
  return input_result("saliency", g, g.grad, detail::max_abs_over_channels(g.grad), x, opt);
}

// ---- SmoothGrad ----------------------------------------------------------------------------------
// Smilkov, Thorat, Kim, Viegas, Wattenberg, "SmoothGrad: removing noise by adding noise", 2017.
//     raw = (1/n) sum_s dy_c/dx (x + eps_s),   eps_s ~ N(0, sigma^2),  sigma = noise * (max x - min x)
//     map = max_colour |raw|
// sigma is per image (its own range). The targets are those of the clean image. The noise fields
// come from Rng(opt.seed), drawn in the same order for every image, so the same seed gives the same
// map, and an image gets the same map alone or in any batch.
AttributionMap smoothgrad(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "smoothgrad");
  GLIMPSE_CHECK(opt.smoothgrad_samples >= 1, "smoothgrad: smoothgrad_samples must be >= 1, got ",
                opt.smoothgrad_samples);
  GLIMPSE_CHECK(opt.smoothgrad_noise >= 0 && std::isfinite(opt.smoothgrad_noise),
                "smoothgrad: smoothgrad_noise must be a finite fraction >= 0, got ", opt.smoothgrad_noise);
  detail::EvalModeGuard eval(model);
  Tensor xc = cpu(x);
  const int64_t n = xc.size(0), per = xc.numel() / n;
  Tensor logits = detail::forward_logits(model, x);
  std::vector<int64_t> targets = detail::resolve_targets(logits, opt.targets, "smoothgrad");
  std::vector<float> sigma(n);
  for (int64_t i = 0; i < n; ++i) {
    auto [lo, hi] = std::minmax_element(xc.data() + i * per, xc.data() + (i + 1) * per);
    sigma[i] = opt.smoothgrad_noise * (*hi - *lo);
  }
  // Several samples per forward pass (batches of up to ~64 images), the noise fields drawn in the
  // sample order whatever the chunking: the same map as one sample at a time.
  Rng rng(opt.seed);
  Tensor acc = Tensor::zeros(xc.shape());
  InputGrad g;
  const int64_t samples = opt.smoothgrad_samples, chunk = std::max<int64_t>(1, 64 / n);
  float* ap = acc.data();
  const float* xp = xc.data();
  for (int64_t s0 = 0; s0 < samples; s0 += chunk) {
    const int64_t ns = std::min(chunk, samples - s0);
    Tensor xs = Tensor::empty({ns * n, xc.size(1), xc.size(2), xc.size(3)});
    float* sp = xs.data();
    std::vector<int64_t> tk;
    for (int64_t s = 0; s < ns; ++s) {
      Tensor z = Tensor::randn({per}, rng);
      const float* zp = z.data();
      for (int64_t i = 0; i < n; ++i) {
        float* dst = sp + (s * n + i) * per;
        for (int64_t j = 0; j < per; ++j) dst[j] = xp[i * per + j] + sigma[i] * zp[j];
        tk.push_back(targets[i]);
      }
    }
    g = input_gradient(model, x.device().is_cpu() ? xs : xs.to(x.device()), tk, "smoothgrad");
    const float* gp = g.grad.data();
    for (int64_t s = 0; s < ns; ++s)  // samples summed in order, as one at a time
      for (int64_t j = 0; j < n * per; ++j) ap[j] += gp[s * n * per + j];
  }
  acc.scale_(1.f / static_cast<float>(opt.smoothgrad_samples));
  g.targets = targets;
  g.scores = detail::target_scores(logits, targets);
  return input_result("smoothgrad", g, acc, detail::max_abs_over_channels(acc), x, opt);
}

// ---- Integrated Gradients ------------------------------------------------------------------------
// Sundararajan, Taly, Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
//     IG(x) = (x - x') * int_0^1 dy_c/dx (x' + a (x - x')) da
// with baseline x' (opt.ig_baseline, zeros by default) and the integral by the trapezoid rule on
// m = opt.ig_steps intervals (m + 1 gradient evaluations at a = k/m, end points weighted 1/2).
// Completeness: sum IG = y_c(x) - y_c(x') up to the quadrature error (O(1/m^2) where smooth); the
// error per image is returned as completeness_gap = sum IG - (y_c(x) - y_c(x')), y_c(x') read from
// the path's first point (a = 0), so that a caller sees when the steps are too few.
// The baseline lives where x does: for the melanoma app's inputs that is the loader's NORMALIZED
// space, where zeros are the ImageNet mean colour, not black (docs/attribution.md).
//     raw = IG [N, C, H, W];  map = |sum_colour IG| (the channel sum keeps completeness per pixel)
AttributionMap integrated_gradients(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "integrated-gradients");
  GLIMPSE_CHECK(opt.ig_steps >= 1, "integrated-gradients: ig_steps must be >= 1, got ", opt.ig_steps);
  detail::EvalModeGuard eval(model);
  Tensor xc = cpu(x);
  const int64_t n = xc.size(0), per = xc.numel() / n;
  Tensor base = Tensor::zeros(xc.shape());
  if (opt.ig_baseline.defined()) {
    const Tensor& b = opt.ig_baseline;
    bool ok = b.dim() == 4 && (b.size(0) == 1 || b.size(0) == n) && b.size(1) == xc.size(1) &&
              b.size(2) == xc.size(2) && b.size(3) == xc.size(3);
    GLIMPSE_CHECK(ok, "integrated-gradients: the baseline has shape ", shape_str(b.shape()), "; expected [1 or ", n,
                  ", ", xc.size(1), ", ", xc.size(2), ", ", xc.size(3), "] to match the input ", shape_str(xc.shape()));
    Tensor bc = cpu(b);
    for (int64_t i = 0; i < n; ++i)
      std::copy(bc.data() + (bc.size(0) == 1 ? 0 : i * per), bc.data() + (bc.size(0) == 1 ? per : (i + 1) * per),
                base.data() + i * per);
  }
  InputGrad g;
  Tensor logits = detail::forward_logits(model, x);
  g.targets = detail::resolve_targets(logits, opt.targets, "integrated-gradients");
  g.scores = detail::target_scores(logits, g.targets);

  // Several path points per forward pass: batches of up to ~64 images.
  const int64_t m = opt.ig_steps, points = m + 1;
  const int64_t chunk = std::max<int64_t>(1, 64 / n);
  Tensor acc = Tensor::zeros(xc.shape());
  std::vector<float> baseline_scores;  // y_c(x') of each image, from the path point a = 0
  for (int64_t k0 = 0; k0 < points; k0 += chunk) {
    const int64_t nk = std::min(chunk, points - k0);
    Tensor batch = Tensor::empty({nk * n, xc.size(1), xc.size(2), xc.size(3)});
    std::vector<int64_t> targets;
    float* bp = batch.data();
    const float *xp = xc.data(), *basep = base.data();
    for (int64_t kk = 0; kk < nk; ++kk) {
      const float a = static_cast<float>(k0 + kk) / static_cast<float>(m);
      for (int64_t i = 0; i < n; ++i) {
        float* dst = bp + (kk * n + i) * per;
        const float* xi = xp + i * per;
        const float* bi = basep + i * per;
        for (int64_t j = 0; j < per; ++j) dst[j] = bi[j] + a * (xi[j] - bi[j]);
        targets.push_back(g.targets[i]);
      }
    }
    InputGrad gk =
        input_gradient(model, x.device().is_cpu() ? batch : batch.to(x.device()), targets, "integrated-gradients");
    if (k0 == 0) baseline_scores.assign(gk.scores.begin(), gk.scores.begin() + n);
    float* ap = acc.data();
    for (int64_t kk = 0; kk < nk; ++kk) {
      const int64_t k = k0 + kk;
      const float w = (k == 0 || k == m ? 0.5f : 1.f) / static_cast<float>(m);
      const float* gp = gk.grad.data() + kk * n * per;
      for (int64_t j = 0; j < n * per; ++j) ap[j] += w * gp[j];
    }
  }
  Tensor raw = Tensor::empty(xc.shape());
  for (int64_t j = 0; j < raw.numel(); ++j) raw.data()[j] = (xc.data()[j] - base.data()[j]) * acc.data()[j];
  std::vector<float> gap(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double total = 0;  // in double: a 224 px image sums 150,528 terms
    for (int64_t j = 0; j < per; ++j) total += raw.data()[i * per + j];
    gap[static_cast<size_t>(i)] = static_cast<float>(
        total - (static_cast<double>(g.scores[static_cast<size_t>(i)]) - baseline_scores[static_cast<size_t>(i)]));
  }
  AttributionMap r = input_result("integrated-gradients", g, raw, detail::abs_sum_over_channels(raw), x, opt);
  r.completeness_gap = std::move(gap);
  return r;
}

// ---- gradient x input ----------------------------------------------------------------------------
// Shrikumar, Greenside, Shcherbina, Kundaje, "Not Just a Black Box: Learning Important Features
// Through Propagating Activation Differences", 2016 (the "gradient * input" baseline).
//     raw = x * dy_c/dx;   map = |sum_colour raw|
// On a linear model y = w.x + b it is exactly w * x = IG with a zero baseline.
AttributionMap gradient_x_input(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "gradient-x-input");
  detail::EvalModeGuard eval(model);
  InputGrad g = input_gradient(model, x, opt.targets, "gradient-x-input");
  Tensor raw = times(cpu(x), g.grad);
  return input_result("gradient-x-input", g, raw, detail::abs_sum_over_channels(raw), x, opt);
}

// ---- deconvnet -----------------------------------------------------------------------------------
// Zeiler, Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014. The backward
// pass of the network with each ReLU passing only positive signal, ignoring the forward mask:
//     ReLU backward: g_in = g * [g > 0]     (transposed convs = the conv gradient; max-pool
//                                            "switches" = the max-pool gradient)
//     raw = that signal at the input [N, C, H, W];  map = max_colour |raw|
// LeakyReLU and other activations keep their normal backward.
AttributionMap deconvnet(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "deconvnet");
  detail::EvalModeGuard eval(model);
  InputGrad g = input_gradient(model, x, opt.targets, "deconvnet", ReluRule::Deconvnet);
  return input_result("deconvnet", g, g.grad, detail::max_abs_over_channels(g.grad), x, opt);
}

// ---- guided backpropagation ----------------------------------------------------------------------
// Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for Simplicity: The All Convolutional
// Net", ICLR workshop 2015. Both masks at every ReLU:
//     ReLU backward: g_in = g * [x > 0] * [g > 0]
//     raw = the signal at the input;  map = max_colour |raw|
AttributionMap guided_backprop(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "guided-backprop");
  detail::EvalModeGuard eval(model);
  InputGrad g = input_gradient(model, x, opt.targets, "guided-backprop", ReluRule::Guided);
  return input_result("guided-backprop", g, g.grad, detail::max_abs_over_channels(g.grad), x, opt);
}

// ---- guided Grad-CAM -----------------------------------------------------------------------------
// Selvaraju et al. 2017 (as Grad-CAM): fine detail from guided backprop, class-discrimination
// from Grad-CAM:
//     raw = guided_backprop(x) * upsample(normalize(gradcam(x)))    [N, C, H, W]
//     map = max_colour |raw|
// Grad-CAM is normalized to [0, 1] per image (as in the paper's code) before the product, and
// uses the same targets and layer as given (default layer when none).
AttributionMap guided_gradcam(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "guided-gradcam");
  detail::EvalModeGuard eval(model);
  InputGrad g = input_gradient(model, x, opt.targets, "guided-gradcam", ReluRule::Guided);
  Options copt = opt;
  copt.targets = g.targets;
  copt.upsample = true;
  copt.normalize = true;
  AttributionMap gc = gradcam(model, x, copt);
  const int64_t n = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor raw = Tensor::empty(g.grad.shape());
  const float* m = gc.map.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < HW; ++p)
        raw.data()[(i * C + c) * HW + p] = g.grad.data()[(i * C + c) * HW + p] * m[i * HW + p];
  AttributionMap r = detail::make_result("guided-gradcam", gc.layer, g.targets, g.scores, raw);
  detail::finish_map(r, detail::max_abs_over_channels(raw), opt, x.size(2), x.size(3));
  return r;
}

}  // namespace glimpse::attr
