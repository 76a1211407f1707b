// The CAM family: maps at the resolution of a convolutional layer A [N, K, h, w] (K channels),
// built from the layer's activations and, except for CAM and Score-CAM, the gradient
// G = dy_c/dA of the target logit y_c. Each method: the paper, then the math.
//
// Mechanics (attribution/internal.h): a forward hook on the layer replaces its output by a
// detached leaf that requires a gradient, with the tape off below the layer and on above it; one
// glimpse::grad(logits, one_hot(targets), {A}) then runs only the layers above A and computes no
// parameter gradient. The hook is an RAII handle, gone when the call returns or throws. The model
// runs in eval mode for the call (EvalModeGuard), so images of a batch do not see each other.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "attribution/attribution.h"
#include "attribution/internal.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/layers.h"

namespace glimpse::attr {
namespace {

using detail::cpu;

// Activations, gradients and targets of one layer for a batch.
struct LayerGrads {
  std::string layer;
  std::vector<int64_t> targets;
  std::vector<float> scores;
  Tensor A;  // [N, K, h, w], CPU
  Tensor G;  // dy_c/dA, same shape, CPU (undefined when !with_grad)
};

LayerGrads layer_grads(Module& model, const Tensor& x, const Options& opt, const char* method, bool with_grad = true) {
  detail::check_input(model, x, method);
  LayerGrads r;
  r.layer = detail::resolve_layer(model, x, opt);
  detail::LayerForward f = detail::layer_forward(model, x, r.layer, detail::CaptureMode::Detach, true, method);
  r.targets = detail::resolve_targets(f.logits, opt.targets, method);
  r.scores = detail::target_scores(f.logits, r.targets);
  if (with_grad) {
    Tensor g =
        glimpse::grad({f.logits}, {detail::one_hot(r.targets, f.logits.size(1), f.logits.device())}, {f.activation})[0];
    r.G = cpu(g);
  }
  // A and G go to the CPU (when the model is on a device): the channel weights and sums below are a
  // few passes over one layer's [N, K, h, w], cheaper to copy than to launch (attribution/attribution.h).
  r.A = cpu(f.activation);
  return r;
}

// out[n, p] = relu?(sum_k w[n, k] * A[n, k, p])
Tensor weighted_sum(const Tensor& A, const std::vector<float>& w, bool relu) {
  const int64_t n = A.size(0), k = A.size(1), hw = A.size(2) * A.size(3);
  Tensor out = Tensor::zeros({n, A.size(2), A.size(3)});
  const float* a = A.data();
  float* o = out.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < k; ++c) {
      const float wk = w[i * k + c];
      if (wk == 0.f) continue;
      const float* ak = a + (i * k + c) * hw;
      for (int64_t p = 0; p < hw; ++p) o[i * hw + p] += wk * ak[p];
    }
  if (relu)
    for (int64_t j = 0; j < out.numel(); ++j) o[j] = std::max(o[j], 0.f);
  return out;
}

AttributionMap finish(const char* method, LayerGrads& g, Tensor raw, const Tensor& x, const Options& opt) {
  AttributionMap r = detail::make_result(method, g.layer, g.targets, g.scores, raw);
  detail::finish_map(r, raw, opt, x.size(2), x.size(3));
  return r;
}

}  // namespace

// ---- CAM -----------------------------------------------------------------------------------------
// Zhou, Khosla, Lapedriza, Oliva, Torralba, "Learning Deep Features for Discriminative
// Localization", CVPR 2016. With features A [K, h, w] -> GAP -> linear (W [classes, K], b):
//     y_c = sum_k W[c,k] (1/hw) sum_xy A_k(x,y) + b_c = (1/hw) sum_xy M_c(x,y) + b_c,
//     M_c(x,y) = sum_k W[c,k] A_k(x,y)
// M_c is the class score before pooling. raw = M_c, signed (no ReLU: its mean plus b_c is y_c);
// `map` min-max normalizes it. Needs the GAP -> Linear head: the layer is the GAP's input.
namespace detail {

CamHead find_cam_head(Module& model, const char* who) {
  auto modules = model.named_modules();
  const std::string hint = "; " + std::string(who) +
                           " needs conv features -> GlobalAvgPool -> Linear (Zhou et al. 2016). Grad-CAM "
                           "('gradcam') works on any head and equals CAM up to scale on a GAP -> Linear net";
  int64_t gi = -1;
  for (size_t i = 0; i < modules.size(); ++i)
    if (dynamic_cast<GlobalAvgPool*>(modules[i].second)) gi = static_cast<int64_t>(i);
  GLIMPSE_CHECK(gi >= 0, who, ": ", model.type_name(), " has no GlobalAvgPool module", hint);
  CamHead h;
  h.gap_name = modules[gi].first;
  h.gap = modules[gi].second;
  for (size_t i = gi + 1; i < modules.size(); ++i) {
    Module* m = modules[i].second;
    if (auto* lin = dynamic_cast<Linear*>(m)) {
      GLIMPSE_CHECK(!h.linear, who, ": more than one Linear after the GlobalAvgPool '", h.gap_name, "' ('",
                    modules[i].first, "')", hint);
      h.linear = lin;
      continue;
    }
    bool passive = dynamic_cast<Flatten*>(m) || dynamic_cast<Dropout*>(m) || !m->children().empty();
    GLIMPSE_CHECK(passive, who, ": after the GlobalAvgPool '", h.gap_name, "' comes '", modules[i].first, "' (",
                  m->describe(), "), not just a Linear", hint);
  }
  GLIMPSE_CHECK(h.linear, who, ": no Linear after the GlobalAvgPool '", h.gap_name, "'", hint);
  // Everything parametric must come before the GAP or be the head itself.
  return h;
}

}  // namespace detail

namespace {
// CAM's pieces: the GAP's input A [N, K, h, w] and, per image, the classifier's row of its target.
struct CamParts {
  std::string layer;
  std::vector<int64_t> targets;
  std::vector<float> scores;
  Tensor A;
  std::vector<float> w;  // [N * K]
};

CamParts cam_parts(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "cam");
  detail::CamHead head = detail::find_cam_head(model, "cam");
  detail::EvalModeGuard eval(model);
  NoGradGuard no_grad;  // CAM needs no backward

  // The layer CAM reads is the GAP's input; a named layer must be exactly that tensor.
  CamParts p;
  p.layer = opt.layer;
  if (p.layer.empty()) {
    p.layer = default_layer(model, x);
  } else {
    model.find(p.layer);
  }
  Tensor gap_in, layer_out;
  Tensor logits;
  {
    HookHandle h1 = head.gap->register_forward_hook([&](Module&, const Tensor& in, const Tensor&) {
      gap_in = in;
      return Tensor();
    });
    HookHandle h2 = register_forward_hook(model, p.layer, [&](Module&, const Tensor&, const Tensor& y) {
      layer_out = y;
      return Tensor();
    });
    logits = model(x.detach());
  }
  GLIMPSE_CHECK(gap_in.defined(), "cam: the GlobalAvgPool '", head.gap_name, "' never ran in the forward pass");
  GLIMPSE_CHECK(gap_in.dim() == 4, "cam: the input of '", head.gap_name, "' has shape ", shape_str(gap_in.shape()),
                ", not [N, K, h, w]");
  if (!layer_out.defined() || !layer_out.same(gap_in)) {
    GLIMPSE_CHECK(opt.layer.empty(), "cam: layer '", opt.layer, "' is not the input of the GlobalAvgPool '",
                  head.gap_name, "'; CAM is defined only there. Use Grad-CAM ('gradcam') for other layers");
    p.layer = head.gap_name + ":input";
  }
  p.targets = detail::resolve_targets(logits, opt.targets, "cam");
  p.scores = detail::target_scores(logits, p.targets);

  p.A = cpu(gap_in);
  Tensor W = cpu(head.linear->weight);  // [classes, K]
  const int64_t n = p.A.size(0), k = p.A.size(1);
  GLIMPSE_CHECK(W.size(1) == k, "cam: the GAP gives ", k, " features but the Linear expects ", W.size(1));
  p.w.resize(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < k; ++c) p.w[i * k + c] = W.data()[p.targets[i] * k + c];
  return p;
}
}  // namespace

AttributionMap cam(Module& model, const Tensor& x, const Options& opt) {
  CamParts p = cam_parts(model, x, opt);
  Tensor raw = weighted_sum(p.A, p.w, /*relu=*/false);
  AttributionMap r = detail::make_result("cam", p.layer, p.targets, p.scores, raw);
  detail::finish_map(r, raw, opt, x.size(2), x.size(3));
  return r;
}

// ---- Grad-CAM ------------------------------------------------------------------------------------
// Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual Explanations from Deep
// Networks via Gradient-based Localization", ICCV 2017.
//     alpha_k = (1/hw) sum_xy dy_c/dA_k(x,y)        (the channel's importance)
//     raw     = ReLU( sum_k alpha_k A_k )           [N, h, w]
// On a GAP -> linear net dy_c/dA_k(x,y) = W[c,k]/hw, so before the ReLU Grad-CAM = CAM / (hw).
namespace {
std::vector<float> gradcam_alpha(const LayerGrads& g) {
  const int64_t n = g.A.size(0), k = g.A.size(1), hw = g.A.size(2) * g.A.size(3);
  std::vector<float> alpha(n * k, 0.f);
  const float* gp = g.G.data();
  for (int64_t j = 0; j < n * k; ++j) {
    double s = 0;
    for (int64_t p = 0; p < hw; ++p) s += gp[j * hw + p];
    alpha[j] = static_cast<float>(s / hw);
  }
  return alpha;
}
Tensor gradcam_raw(const LayerGrads& g) { return weighted_sum(g.A, gradcam_alpha(g), /*relu=*/true); }
}  // namespace

AttributionMap gradcam(Module& model, const Tensor& x, const Options& opt) {
  detail::EvalModeGuard eval(model);
  LayerGrads g = layer_grads(model, x, opt, "gradcam");
  return finish("gradcam", g, gradcam_raw(g), x, opt);
}

// ---- Grad-CAM++ ----------------------------------------------------------------------------------
// Chattopadhay, Sarkar, Howlader, Balasubramanian, "Grad-CAM++: Improved Visual Explanations for
// Deep Convolutional Networks", WACV 2018. With g = dy_c/dA_k(x,y) and the paper's exponential
// trick (Y_c = exp(y_c)), higher derivatives become powers of g:
//     a_k(x,y) = g^2 / (2 g^2 + sum_ab A_k(a,b) g^3)      (0 where the denominator is 0)
//     w_k      = sum_xy a_k(x,y) ReLU(g)
//     raw      = ReLU( sum_k w_k A_k )
// Pixel-wise weights let several instances of a class each contribute.
AttributionMap gradcam_plus_plus(Module& model, const Tensor& x, const Options& opt) {
  detail::EvalModeGuard eval(model);
  LayerGrads g = layer_grads(model, x, opt, "gradcam++");
  const int64_t n = g.A.size(0), k = g.A.size(1), hw = g.A.size(2) * g.A.size(3);
  std::vector<float> w(n * k, 0.f);
  const float* a = g.A.data();
  const float* gp = g.G.data();
  for (int64_t j = 0; j < n * k; ++j) {
    double asum = 0;
    for (int64_t p = 0; p < hw; ++p) asum += a[j * hw + p];
    double wk = 0;
    for (int64_t p = 0; p < hw; ++p) {
      double gv = gp[j * hw + p];
      if (gv <= 0) continue;  // ReLU(g) = 0
      double g2 = gv * gv, denom = 2 * g2 + asum * g2 * gv;
      if (denom != 0) wk += g2 / denom * gv;
    }
    w[j] = static_cast<float>(wk);
  }
  return finish("gradcam++", g, weighted_sum(g.A, w, true), x, opt);
}

// sum_k w(G_k(x,y)) A_k(x,y) per image, with w = ReLU when positive_grads (LayerCAM), else the
// identity (HiResCAM): the gradient enters element-wise instead of as a channel mean.
Tensor gradient_weighted_sum(const LayerGrads& g, bool positive_grads) {
  const int64_t n = g.A.size(0), k = g.A.size(1), hw = g.A.size(2) * g.A.size(3);
  Tensor raw = Tensor::zeros({n, g.A.size(2), g.A.size(3)});
  const float* a = g.A.data();
  const float* gp = g.G.data();
  float* o = raw.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < k; ++c)
      for (int64_t p = 0; p < hw; ++p) {
        const int64_t j = (i * k + c) * hw + p;
        o[i * hw + p] += (positive_grads ? std::max(gp[j], 0.f) : gp[j]) * a[j];
      }
  return raw;
}

// ---- LayerCAM ------------------------------------------------------------------------------------
// Jiang, Zhang, Hou, Cheng, Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps for
// Localization", IEEE TIP 2021. Each location weighted by its own positive gradient:
//     raw = ReLU( sum_k ReLU(dy_c/dA_k(x,y)) A_k(x,y) )
// Where every gradient is positive and constant over space (GAP -> linear with positive weights)
// it equals Grad-CAM exactly. Meant for shallow layers too.
AttributionMap layercam(Module& model, const Tensor& x, const Options& opt) {
  detail::EvalModeGuard eval(model);
  LayerGrads g = layer_grads(model, x, opt, "layercam");
  Tensor raw = gradient_weighted_sum(g, /*positive_grads=*/true);
  float* o = raw.data();
  for (int64_t j = 0; j < raw.numel(); ++j) o[j] = std::max(o[j], 0.f);
  return finish("layercam", g, raw, x, opt);
}

// ---- HiResCAM ------------------------------------------------------------------------------------
// Draelos, Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
// neural networks", arXiv:2011.08891 (2020). The gradient is multiplied in element-wise instead of
// being averaged first:
//     raw = sum_k dy_c/dA_k(x,y) * A_k(x,y)            (signed; no ReLU)
// Kept signed so that, when y_c is linear in A above the layer (GAP -> linear),
// sum_xy raw = y_c - b_c exactly; `map` min-max normalizes it.
AttributionMap hirescam(Module& model, const Tensor& x, const Options& opt) {
  detail::EvalModeGuard eval(model);
  LayerGrads g = layer_grads(model, x, opt, "hirescam");
  return finish("hirescam", g, gradient_weighted_sum(g, /*positive_grads=*/false), x, opt);
}

// ---- Score-CAM -----------------------------------------------------------------------------------
// Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu, "Score-CAM: Score-Weighted Visual Explanations
// for Convolutional Neural Networks", CVPR Workshops 2020. Gradient-free: each channel, upsampled
// to the input and min-max normalized to [0, 1], masks the image; the channel's weight is the
// target's softmax probability on the masked image:
//     H_k   = normalize(upsample(A_k))                 (a constant channel gives H_k = 0)
//     s_k   = softmax( f(x * H_k) )_c
//     raw   = ReLU( sum_k s_k A_k )
// We use the probability itself (not its increase over a baseline input), as the paper's released
// code does. Channels that are zero everywhere contribute nothing and are skipped. The masked
// images go through the model opt.scorecam_batch at a time, in a fixed order: deterministic.
AttributionMap scorecam(Module& model, const Tensor& x, const Options& opt) {
  detail::EvalModeGuard eval(model);
  LayerGrads g = layer_grads(model, x, opt, "scorecam", /*with_grad=*/false);
  GLIMPSE_CHECK(opt.scorecam_batch >= 1, "scorecam: scorecam_batch must be >= 1, got ", opt.scorecam_batch);
  NoGradGuard no_grad;
  const int64_t n = g.A.size(0), k = g.A.size(1), h = g.A.size(2), w = g.A.size(3), hw = h * w;
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3), HW = H * W;
  Tensor xc = cpu(x);
  std::vector<float> weights(n * k, 0.f);
  // The (image, channel) pairs worth a forward pass, image-major: channels that are zero
  // everywhere are skipped. They go through the model scorecam_batch at a time, a batch spanning
  // images where one image has fewer channels left (fewer, fuller passes than image by image).
  std::vector<std::pair<int64_t, int64_t>> live;
  for (int64_t i = 0; i < n; ++i) {
    const float* ai = g.A.data() + i * k * hw;
    for (int64_t c = 0; c < k; ++c) {
      bool nonzero = false;
      for (int64_t p = 0; p < hw && !nonzero; ++p) nonzero = ai[c * hw + p] != 0.f;
      if (nonzero) live.push_back({i, c});
    }
  }
  int64_t masks_of = -1;  // the image whose masks are in `masks`
  Tensor masks;           // [k, H, W]
  const float* xp = xc.data();
  for (size_t b0 = 0; b0 < live.size(); b0 += opt.scorecam_batch) {
    const int64_t nb = std::min<int64_t>(opt.scorecam_batch, static_cast<int64_t>(live.size()) - b0);
    Tensor batch = Tensor::empty({nb, C, H, W});
    float* bp = batch.data();
    for (int64_t b = 0; b < nb; ++b) {
      const auto [i, c] = live[b0 + b];
      if (i != masks_of) {
        Tensor Ai = g.A.slice(i, i + 1).contiguous().view({k, h, w});
        masks = normalize_maps(upsample_maps(Ai, H, W));
        masks_of = i;
      }
      const float* m = masks.data() + c * HW;
      const float* xi = xp + i * C * HW;
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t p = 0; p < HW; ++p) bp[(b * C + ch) * HW + p] = xi[ch * HW + p] * m[p];
    }
    Tensor probs = cpu(softmax(model(x.device().is_cpu() ? batch : batch.to(x.device())), 1));
    const int64_t K = probs.size(1);
    for (int64_t b = 0; b < nb; ++b) {
      const auto [i, c] = live[b0 + b];
      weights[i * k + c] = probs.data()[b * K + g.targets[i]];
    }
  }
  return finish("scorecam", g, weighted_sum(g.A, weights, true), x, opt);
}

// ---- SAM -----------------------------------------------------------------------------------------
// Philbrick, Yoshida, Inoue, Akkus, Kline, Weston, Korfiatis, Takahashi, Erickson, "What Does Deep
// Learning See? Insights From a Classifier Trained to Predict Contrast Enhancement Phase From CT
// Images", AJR 2018. Their exact formula is not public here; glimpse implements the documented
// reading "the gradient of the chosen layer's summed activation with respect to the input":
//     raw = d( sum_{k,x,y} A_k(x,y) ) / d input         [N, C, H, W]   (class-independent)
//     map = max over colour channels of |raw|
// The layer may be shallow (any module with an output). Targets are resolved and reported (the
// predicted class by default) but do not enter the map.
AttributionMap sam(Module& model, const Tensor& x, const Options& opt) {
  detail::check_input(model, x, "sam");
  detail::EvalModeGuard eval(model);
  std::string layer = detail::resolve_layer(model, x, opt);
  detail::LayerForward f = detail::layer_forward(model, x, layer, detail::CaptureMode::Keep, false, "sam");
  std::vector<int64_t> targets = detail::resolve_targets(f.logits, opt.targets, "sam");
  std::vector<float> scores = detail::target_scores(f.logits, targets);
  GLIMPSE_CHECK(f.activation.requires_grad(), "sam: layer '", layer, "' does not depend on the input");
  Tensor g = glimpse::grad({f.activation}, {Tensor::ones_like(f.activation)}, {f.input})[0];
  Tensor raw = cpu(g);
  AttributionMap r = detail::make_result("sam", layer, targets, scores, raw);
  detail::finish_map(r, detail::max_abs_over_channels(raw), opt, x.size(2), x.size(3));
  return r;
}

// ---- the inside of CAM and Grad-CAM -------------------------------------------------------------

ChannelWeights channel_weights(const std::string& method, Module& model, const Tensor& x, const Options& opt) {
  GLIMPSE_CHECK(method == "cam" || method == "gradcam", "channel_weights: '", method,
                "' is not a weighted sum of feature maps with one weight per channel; use cam or gradcam");
  GLIMPSE_CHECK(x.defined() && x.dim() == 4 && x.size(0) == 1, "channel_weights: expected one image [1, C, H, W], got ",
                x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  ChannelWeights r;
  r.method = method;
  if (method == "cam") {
    CamParts p = cam_parts(model, x, opt);
    r.layer = p.layer;
    r.target = p.targets[0];
    r.weights = p.w;
    r.A = p.A;
    r.raw = weighted_sum(p.A, p.w, /*relu=*/false);
  } else {
    detail::EvalModeGuard eval(model);
    LayerGrads g = layer_grads(model, x, opt, "gradcam");
    r.layer = g.layer;
    r.target = g.targets[0];
    r.weights = gradcam_alpha(g);
    r.A = g.A;
    r.raw = weighted_sum(g.A, r.weights, /*relu=*/true);
  }
  r.A = r.A.contiguous().view({r.A.size(1), r.A.size(2), r.A.size(3)});
  r.raw = r.raw.contiguous().view({r.raw.size(1), r.raw.size(2)});
  return r;
}

}  // namespace glimpse::attr
