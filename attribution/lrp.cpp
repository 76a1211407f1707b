// Layer-wise relevance propagation (Bach et al. 2015; Montavon, Samek & Mueller, "Methods for
// interpreting and understanding deep neural networks", Digital Signal Processing 73, 2018).
//
// The model is walked as a CHAIN of leaf modules: one forward pass with a hook on every leaf
// records (input, output) of each, in the order they run, which must be named_modules() order with
// each leaf's input the previous leaf's output (a reshape of it is accepted as an implicit
// flatten). The hooks are removed before the relevance pass, and on any error. A model that is not
// such a chain -- a residual block (BasicBlock: out = f(x) + x), or a forward that transforms the
// input between layers -- is an Error naming the module at fault.
//
// Relevance starts at the target logit, R^(L) = onehot(c) * y_c, and flows back layer by layer:
//
//   linear layers (Conv2d, Linear, AvgPool2d, GlobalAvgPool), with z_ij = x_i w_ij and
//   z_j = sum_i z_ij + b_j (the layer's pre-activation, recomputed from the recorded input):
//     LRP-eps:        R_i = sum_j  z_ij / (z_j + eps * sign(z_j)) * R_j        (sign(0) = +1)
//                         = x_i * (W^T s)_i   with s_j = R_j / (z_j + eps sign z_j)
//     LRP-alpha-beta: R_i = sum_j ( alpha * z_ij^+ / z_j^+  -  beta * z_ij^- / z_j^- ) * R_j
//                     with z_ij^+ = max(z_ij, 0), z_j^+ = sum_i z_ij^+ + max(b_j, 0) (and "-" with
//                     min); alpha - beta = 1; alpha = 1, beta = 0 is the z+ rule. Because inputs
//                     may be negative, z_ij^+ = x_i^+ w_ij^+ + x_i^- w_ij^-, so each sum is two
//                     convolutions with clipped weights. A zero denominator passes no relevance.
//     LRP-0:          LRP-eps with eps = 0 (a zero z_j passes no relevance).
//     LRP-gamma:      R_i = sum_j (z_ij + gamma z_ij^+) / (z_j + gamma z_j^+ + eps sign) * R_j, favouring
//                     positive contributions (z^+ as for alpha-beta, with b^+ in z_j^+).
//     z^B:            R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_i (same) * R_j, for inputs
//                     bounded by l_i <= x_i <= h_i (pixels; Montavon et al. 2017, deep Taylor
//                     decomposition); no bias term, and every term of the denominator is >= 0.
//     The bias is a neuron of its own: the relevance it takes is lost, so conservation
//     (sum_i R_i = sum_j R_j) holds exactly for bias-free layers (up to eps).
//   lrp-epsilon and lrp-alphabeta use their one rule at every layer, the first included.
//   lrp-composite assigns a rule per layer (Montavon et al., "Layer-wise relevance propagation: an
//   overview", 2019, the recommended practice): the first Conv2d/Linear of the chain takes z^B; the
//   remaining convolutions, in chain order, are split in two -- the lower floor(n/2) take LRP-gamma,
//   the upper ceil(n/2) LRP-eps; every Linear after them takes LRP-0; pooling layers LRP-eps.
//   BatchNorm2d: folded into the Conv2d right before it (eval statistics):
//     w'_k = w_k * gamma_k / sqrt(var_k + eps_bn),  b'_k = (b_k - mean_k) * gamma_k / sqrt(var_k + eps_bn) + beta_k,
//     so the pair is one linear layer; a BatchNorm2d without a Conv2d right before it is an Error.
//   MaxPool2d: winner-take-all: each output's relevance goes to the cell that won its max (the
//     first maximal cell, as in the gradient), for both rules. Conserves relevance.
//   ReLU, LeakyReLU, Dropout (eval: identity): relevance passes unchanged (R_in = R_out).
//   Flatten (and implicit reshapes between layers): relevance is reshaped.
//
// Results: raw = relevance at the input [N, C, H, W]; map = sum over channels (signed: negative
// evidence stays negative before normalization), then normalized per image as Options asks.
// The model runs in eval mode for the call (restored afterwards). Computation is on the CPU in
// float32; the forward runs on the model's device and what the rules read (each layer's input,
// weights, batch-norm statistics) is copied from there: the rules are per-layer arithmetic with no
// device kernel, and the copies are one activation per layer. raw comes back on the CPU, as every
// method's (attribution/attribution.h).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "attribution/internal.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/conv2d.h"
#include "core/ops/pool2d.h"
#include "layers/layers.h"

namespace glimpse::attr {

namespace {

enum class Rule { Epsilon, AlphaBeta, Zero, Gamma, ZBox, Composite };
enum class Part { All, Pos, Neg };  // the weights W, W^+ = max(W, 0), W^- = min(W, 0)

// ---- small element-wise helpers on contiguous CPU tensors ----
Tensor clip(const Tensor& t, Part part) {
  if (part == Part::All) return t;
  Tensor o = Tensor::empty(t.shape());
  const float* a = t.data();
  float* b = o.data();
  for (int64_t i = 0; i < t.numel(); ++i) b[i] = part == Part::Pos ? std::max(a[i], 0.f) : std::min(a[i], 0.f);
  return o;
}
Tensor hadamard(const Tensor& a, const Tensor& b) {
  Tensor o = Tensor::empty(a.shape());
  const float *pa = a.data(), *pb = b.data();
  float* po = o.data();
  for (int64_t i = 0; i < a.numel(); ++i) po[i] = pa[i] * pb[i];
  return o;
}
void axpy(Tensor& y, float alpha, const Tensor& x) {
  float* py = y.data();
  const float* px = x.data();
  for (int64_t i = 0; i < y.numel(); ++i) py[i] += alpha * px[i];
}
// s = R / (z + eps * sign(z)) with sign(0) = +1 (eps > 0), or R / z with 0 where z == 0 (eps == 0).
Tensor stabilized_ratio(const Tensor& R, const Tensor& z, float eps) {
  Tensor s = Tensor::empty(z.shape());
  const float *pz = z.data(), *pr = R.data();
  float* ps = s.data();
  for (int64_t i = 0; i < z.numel(); ++i) {
    const float zi = pz[i];
    const float d = eps > 0 ? zi + (zi >= 0 ? eps : -eps) : zi;
    ps[i] = d != 0 ? pr[i] / d : 0.f;
  }
  return s;
}

// A linear layer z = W x + b seen through its two products: forward(x, part) = W_part x (+ b_part)
// and backward(s, part) = W_part^T s (the transposed map, which spreads s back onto the inputs).
struct LinearLayer {
  virtual ~LinearLayer() = default;
  virtual Tensor forward(const Tensor& x, Part part, bool with_bias) const = 0;
  virtual Tensor backward(const Tensor& s, Part part) const = 0;
};

// A layer with weights W (CPU, contiguous) and an optional bias b; W^+ and W^- are clipped once
// and kept for the layer's later passes.
struct WeightedLayer : LinearLayer {
  Tensor w, b;
  mutable Tensor wp, wn;
  const Tensor& weight(Part part) const {
    if (part == Part::All) return w;
    Tensor& c = part == Part::Pos ? wp : wn;
    if (!c.defined()) c = clip(w, part);
    return c;
  }
};

struct ConvLayer : WeightedLayer {
  Conv2dOptions opt;
  Shape in_shape;
  Tensor forward(const Tensor& x, Part part, bool with_bias) const override {
    NoGradGuard ng;
    Tensor bias = with_bias && b.defined() ? clip(b, part) : Tensor();
    return conv2d(x, weight(part), bias, opt).contiguous();
  }
  Tensor backward(const Tensor& s, Part part) const override {
    Tensor g = Tensor::empty(in_shape);  // the kernel overwrites it
    cpu::conv2d_backward_data(g, s, weight(part), opt);
    return g;
  }
};

struct DenseLayer : WeightedLayer {  // w [out, in], b [out]
  Tensor forward(const Tensor& x, Part part, bool with_bias) const override {
    NoGradGuard ng;
    Tensor bias = with_bias && b.defined() ? clip(b, part) : Tensor();
    return linear(x, weight(part), bias).contiguous();
  }
  Tensor backward(const Tensor& s, Part part) const override {
    NoGradGuard ng;
    return matmul(s, weight(part)).contiguous();  // [N, out] x [out, in]
  }
};

// Average pooling (window or global): all weights are 1/(window size) > 0, so W^- = 0.
struct AvgLayer : LinearLayer {
  bool global = false;
  Pool2dOptions opt;
  Shape in_shape;
  Tensor forward(const Tensor& x, Part part, bool) const override {
    NoGradGuard ng;
    Tensor z = global ? global_avg_pool(x) : avg_pool2d(x, opt);
    if (part == Part::Neg) return Tensor::zeros(z.shape());
    return z.contiguous();
  }
  Tensor backward(const Tensor& s, Part part) const override {
    if (part == Part::Neg) return Tensor::zeros(in_shape);
    Tensor g = Tensor::empty(in_shape);  // the kernels overwrite it
    if (global)
      cpu::global_avg_pool_backward(g, s);
    else
      cpu::avg_pool2d_backward(g, s, opt);
    return g;
  }
};

// A tensor of x's shape holding z^B's bound: `given` has one value, or one per channel (dimension 1
// of x); empty takes each image's own smallest (upper = false) or largest value, so that an image's
// relevance does not depend on the others in its batch.
Tensor bound_like(const Tensor& x, const std::vector<float>& given, bool upper, const char* name) {
  const int64_t N = x.size(0), C = x.dim() >= 2 ? x.size(1) : 1, per_image = x.numel() / N, per = per_image / C;
  GLIMPSE_CHECK(given.size() <= 1 || static_cast<int64_t>(given.size()) == C, "lrp-composite: ", name, " has ",
                given.size(), " values; give one, or one per channel of the first layer's input (", C, ")");
  Tensor b = Tensor::empty(x.shape());
  for (int64_t n = 0; n < N; ++n) {
    const float* xs = x.data() + n * per_image;
    const float own =
        per_image ? (upper ? *std::max_element(xs, xs + per_image) : *std::min_element(xs, xs + per_image)) : 0.f;
    for (int64_t i = 0; i < per_image; ++i)
      b.data()[n * per_image + i] = given.empty() ? own : given.size() == 1 ? given[0] : given[i / per];
  }
  return b;
}

// R_in for one linear layer under the chosen rule (see the top of the file).
Tensor propagate(const LinearLayer& L, const Tensor& x, const Tensor& R, Rule rule, const Options& opt) {
  if (rule == Rule::Epsilon || rule == Rule::Zero) {
    const Tensor z = L.forward(x, Part::All, true);
    const Tensor s = stabilized_ratio(R, z, rule == Rule::Zero ? 0.f : opt.lrp_epsilon);
    return hadamard(x, L.backward(s, Part::All));
  }
  const Tensor xp = clip(x, Part::Pos), xn = clip(x, Part::Neg);
  if (rule == Rule::Gamma) {
    // z_j + gamma z_j^+, z_j^+ = sum_i (x_i^+ w_ij^+ + x_i^- w_ij^-) + b_j^+
    Tensor z = L.forward(x, Part::All, true);
    Tensor zp = L.forward(xp, Part::Pos, true);
    axpy(zp, 1.f, L.forward(xn, Part::Neg, false));
    axpy(z, opt.lrp_gamma, zp);
    const Tensor s = stabilized_ratio(R, z, opt.lrp_epsilon);
    Tensor out = hadamard(x, L.backward(s, Part::All));
    axpy(out, opt.lrp_gamma, hadamard(xp, L.backward(s, Part::Pos)));
    axpy(out, opt.lrp_gamma, hadamard(xn, L.backward(s, Part::Neg)));
    return out;
  }
  if (rule == Rule::ZBox) {
    const Tensor l = bound_like(x, opt.lrp_low, false, "lrp_low"), h = bound_like(x, opt.lrp_high, true, "lrp_high");
    // A rounding's worth of slack: a normalized black pixel may come out a few ulps below (0 - mean) / std.
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float slack = 1e-4f * (std::fabs(h.data()[i] - l.data()[i]) + 1.f);
      GLIMPSE_CHECK(l.data()[i] - slack <= x.data()[i] && x.data()[i] <= h.data()[i] + slack,
                    "lrp-composite: input value ", x.data()[i], " at flat index ", i, " lies outside z^B's bounds [",
                    l.data()[i], ", ", h.data()[i], "] (Options::lrp_low / lrp_high)");
    }
    // z_j = sum_i x_i w_ij - l_i w_ij^+ - h_i w_ij^-  (>= 0 term by term)
    Tensor z = L.forward(x, Part::All, false);
    axpy(z, -1.f, L.forward(l, Part::Pos, false));
    axpy(z, -1.f, L.forward(h, Part::Neg, false));
    const Tensor s = stabilized_ratio(R, z, 0.f);
    Tensor out = hadamard(x, L.backward(s, Part::All));
    axpy(out, -1.f, hadamard(l, L.backward(s, Part::Pos)));
    axpy(out, -1.f, hadamard(h, L.backward(s, Part::Neg)));
    return out;
  }
  // z_j^+ = sum_i (x_i^+ w_ij^+ + x_i^- w_ij^-) + b_j^+ ;  z_j^- = sum_i (x_i^+ w_ij^- + x_i^- w_ij^+) + b_j^-
  Tensor zp = L.forward(xp, Part::Pos, true);
  axpy(zp, 1.f, L.forward(xn, Part::Neg, false));
  Tensor zn = L.forward(xp, Part::Neg, true);
  axpy(zn, 1.f, L.forward(xn, Part::Pos, false));
  const Tensor sp = stabilized_ratio(R, zp, 0.f), sn = stabilized_ratio(R, zn, 0.f);
  Tensor Rp = hadamard(xp, L.backward(sp, Part::Pos));
  axpy(Rp, 1.f, hadamard(xn, L.backward(sp, Part::Neg)));
  Tensor out = Tensor::zeros(x.shape());
  axpy(out, opt.lrp_alpha, Rp);
  if (opt.lrp_beta != 0.f) {
    Tensor Rn = hadamard(xp, L.backward(sn, Part::Neg));
    axpy(Rn, 1.f, hadamard(xn, L.backward(sn, Part::Pos)));
    axpy(out, -opt.lrp_beta, Rn);
  }
  return out;
}

struct Step {
  std::string name;
  Module* module = nullptr;
  Tensor in, out;  // as recorded (model device)
};

const char* kSupported =
    "Conv2d, Linear, BatchNorm2d (right after a Conv2d), ReLU, LeakyReLU, Dropout, MaxPool2d, AvgPool2d, "
    "GlobalAvgPool, Flatten";

bool shares_data(const Tensor& a, const Tensor& b) {
  return a.impl()->storage == b.impl()->storage && a.impl()->offset == b.impl()->offset && a.numel() == b.numel();
}

AttributionMap run_lrp(Module& model, const Tensor& x, const Options& opt, Rule rule, const char* method) {
  detail::check_input(model, x, method);
  if (rule == Rule::Composite) {
    GLIMPSE_CHECK(opt.lrp_epsilon >= 0.f && opt.lrp_gamma >= 0.f, method, ": lrp_epsilon = ", opt.lrp_epsilon,
                  ", lrp_gamma = ", opt.lrp_gamma, " (both must be >= 0)");
  } else if (rule == Rule::Epsilon) {
    GLIMPSE_CHECK(opt.lrp_epsilon >= 0.f, method, ": lrp_epsilon = ", opt.lrp_epsilon, " (must be >= 0)");
  } else {
    GLIMPSE_CHECK(opt.lrp_alpha >= 0.f && opt.lrp_beta >= 0.f && std::fabs(opt.lrp_alpha - opt.lrp_beta - 1.f) < 1e-5f,
                  method, ": lrp_alpha = ", opt.lrp_alpha, ", lrp_beta = ", opt.lrp_beta,
                  "; the alpha-beta rule needs alpha - beta = 1 with both >= 0 (alpha = 1, beta = 0 is z+)");
  }
  detail::EvalModeGuard eval(model);
  NoGradGuard no_grad;

  // ---- 1. one forward pass recording every leaf, then the checks (hooks alive until the scope ends) ----
  std::vector<std::pair<std::string, Module*>> leaves;
  for (auto& [name, m] : model.named_modules())
    if (m->children().empty()) leaves.emplace_back(name, m);  // the root itself only when it is one layer
  GLIMPSE_CHECK(!leaves.empty(), method, ": ", model.type_name(), " has no layers to propagate relevance through");
  std::vector<Step> steps;
  std::vector<int> fired(leaves.size(), 0);
  const Tensor input = x.detach();
  Tensor logits;
  std::vector<int64_t> targets;
  {
    std::vector<HookHandle> hooks;
    hooks.reserve(leaves.size());
    for (size_t i = 0; i < leaves.size(); ++i) {
      hooks.push_back(leaves[i].second->register_forward_hook(
          [&steps, &fired, &leaves, i](Module& m, const Tensor& in, const Tensor& out) -> Tensor {
            ++fired[i];
            steps.push_back({leaves[i].first, &m, in, out});
            return Tensor();
          }));
    }
    logits = model(input);

    for (auto& [name, m] : model.named_modules())
      if (dynamic_cast<BasicBlock*>(m))
        GLIMPSE_FAIL(method, ": module '", name, "' (", m->describe(), ") is a residual block (out = f(x) + x), ",
                     "which this LRP does not support: it walks the model as a chain of layers. Use a gradient ",
                     "method (saliency, integrated-gradients) or a CAM method for ", model.type_name(), ".");
    for (size_t i = 0; i < leaves.size(); ++i) {
      GLIMPSE_CHECK(fired[i] == 1, method, ": layer '", leaves[i].first, "' (", leaves[i].second->describe(), ") ran ",
                    fired[i], " times in one forward pass; LRP needs every layer on the path exactly once");
    }
    for (size_t i = 0; i < steps.size(); ++i) {
      GLIMPSE_CHECK(steps[i].name == leaves[i].first, method, ": layers ran in the order '", steps[i].name,
                    "' where named_modules() has '", leaves[i].first, "'; LRP needs a chain in registration order");
      const Tensor& prev = i == 0 ? input : steps[i - 1].out;
      const bool linked = steps[i].in.same(prev) || shares_data(steps[i].in, prev);
      GLIMPSE_CHECK(linked, method, ": the input of layer '", steps[i].name, "' (", steps[i].module->describe(),
                    ") is not the output of ",
                    i == 0 ? std::string("the model's input") : "'" + steps[i - 1].name + "'", ": ", model.type_name(),
                    "::forward is not a chain of its layers (a skip connection, or arithmetic ",
                    "between layers), which this LRP does not support");
    }
    GLIMPSE_CHECK(logits.same(steps.back().out) || shares_data(logits, steps.back().out), method,
                  ": the model's output is not the output of its last layer '", steps.back().name, "'");
    targets = detail::resolve_targets(logits, opt.targets, method);
  }  // every hook removed here (and on any throw above)

  // ---- the rule of each step: one for all, or the composite's assignment (top of the file) ----
  std::vector<Rule> rules(steps.size(), rule);
  if (rule == Rule::Composite) {
    std::vector<size_t> convs;
    bool first = true;
    for (size_t i = 0; i < steps.size(); ++i) {
      Module* m = steps[i].module;
      const bool conv = dynamic_cast<Conv2d*>(m) != nullptr, dense = dynamic_cast<Linear*>(m) != nullptr;
      rules[i] = Rule::Epsilon;  // pooling (and the layers without a rule)
      if (conv || dense) {
        if (first)
          rules[i] = Rule::ZBox;
        else if (conv)
          convs.push_back(i);
        else
          rules[i] = Rule::Zero;
        first = false;
      }
      // A BatchNorm2d is folded into its Conv2d and propagated with the conv's rule.
      if (dynamic_cast<BatchNorm2d*>(m)) rules[i] = Rule::Composite;  // resolved from i - 1 below
    }
    for (size_t k = 0; k < convs.size(); ++k) rules[convs[k]] = k < convs.size() / 2 ? Rule::Gamma : Rule::Epsilon;
    for (size_t i = 1; i < steps.size(); ++i)
      if (rules[i] == Rule::Composite) rules[i] = rules[i - 1];
  }

  // ---- 2. relevance at the top: R = onehot(c) * y_c ----
  const Tensor top = detail::cpu(logits);
  const int64_t N = top.size(0), K = top.size(1);
  Tensor R = Tensor::zeros({N, K});
  for (int64_t n = 0; n < N; ++n) R.data()[n * K + targets[n]] = top.data()[n * K + targets[n]];

  // ---- 3. back through the chain ----
  for (int64_t i = static_cast<int64_t>(steps.size()) - 1; i >= 0; --i) {
    Step& st = steps[i];
    Module* m = st.module;
    Tensor xin = detail::cpu(st.in);
    Shape in_shape = st.in.shape();  // the shape R has after this step
    R = R.contiguous().view(st.out.shape());
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      Conv2d* conv = i > 0 ? dynamic_cast<Conv2d*>(steps[i - 1].module) : nullptr;
      GLIMPSE_CHECK(
          conv != nullptr, method, ": BatchNorm2d '", st.name, "' does not follow a Conv2d (it follows ",
          i > 0 ? "'" + steps[i - 1].name + "' (" + steps[i - 1].module->describe() + ")" : std::string("the input"),
          "); LRP folds batch norm into the convolution before it");
      // Fold: w'_k = w_k g_k / sqrt(v_k + eps), b'_k = (b_k - mu_k) g_k / sqrt(v_k + eps) + beta_k.
      ConvLayer L;
      L.opt = conv->options;
      L.w = detail::cpu(conv->weight).clone();
      const int64_t Kc = L.w.size(0), per = L.w.numel() / Kc;
      const Tensor mu = detail::cpu(bn->running_mean), var = detail::cpu(bn->running_var);
      const Tensor g = bn->weight.defined() ? detail::cpu(bn->weight) : Tensor::ones({Kc});
      const Tensor beta = bn->bias.defined() ? detail::cpu(bn->bias) : Tensor::zeros({Kc});
      const Tensor b0 = conv->bias.defined() ? detail::cpu(conv->bias) : Tensor::zeros({Kc});
      L.b = Tensor::empty({Kc});
      for (int64_t k = 0; k < Kc; ++k) {
        const float scale = g.data()[k] / std::sqrt(var.data()[k] + bn->eps);
        for (int64_t j = 0; j < per; ++j) L.w.data()[k * per + j] *= scale;
        L.b.data()[k] = (b0.data()[k] - mu.data()[k]) * scale + beta.data()[k];
      }
      Tensor cin = detail::cpu(steps[i - 1].in);
      L.in_shape = cin.shape();
      R = propagate(L, cin, R, rules[i], opt);
      in_shape = cin.shape();
      --i;  // the conv is done
    } else if (auto* conv = dynamic_cast<Conv2d*>(m)) {
      ConvLayer L;
      L.opt = conv->options;
      L.w = detail::cpu(conv->weight);
      if (conv->bias.defined()) L.b = detail::cpu(conv->bias);
      L.in_shape = xin.shape();
      R = propagate(L, xin, R, rules[i], opt);
    } else if (auto* lin = dynamic_cast<Linear*>(m)) {
      DenseLayer L;
      L.w = detail::cpu(lin->weight);
      if (lin->bias.defined()) L.b = detail::cpu(lin->bias);
      R = propagate(L, xin, R, rules[i], opt);
    } else if (auto* ap = dynamic_cast<AvgPool2d*>(m)) {
      AvgLayer L;
      L.opt = ap->options;
      L.in_shape = xin.shape();
      R = propagate(L, xin, R, rules[i], opt);
    } else if (dynamic_cast<GlobalAvgPool*>(m)) {
      AvgLayer L;
      L.global = true;
      L.in_shape = xin.shape();
      R = propagate(L, xin, R, rules[i], opt);
    } else if (auto* mp = dynamic_cast<MaxPool2d*>(m)) {
      // Winner-take-all: the relevance of each pooled cell goes to its argmax.
      Tensor g = Tensor::empty(xin.shape());  // the kernel overwrites it
      cpu::max_pool2d_backward(g, R, xin, mp->options);
      R = g;
    } else if (dynamic_cast<ReLU*>(m) || dynamic_cast<LeakyReLU*>(m) || dynamic_cast<Dropout*>(m) ||
               dynamic_cast<Flatten*>(m)) {
      // identity for relevance (Flatten: the reshape below)
    } else {
      GLIMPSE_FAIL(method, ": no LRP rule for layer '", st.name, "' (", m->describe(), "); supported: ", kSupported);
    }
    R = R.contiguous().view(in_shape);
  }

  AttributionMap r = detail::make_result(method, "", targets, detail::target_scores(logits, targets), R);
  detail::finish_map(r, detail::sum_over_channels(R), opt, x.size(2), x.size(3));
  return r;
}

}  // namespace

AttributionMap lrp_epsilon(Module& model, const Tensor& x, const Options& opt) {
  return run_lrp(model, x, opt, Rule::Epsilon, "lrp-epsilon");
}

AttributionMap lrp_alphabeta(Module& model, const Tensor& x, const Options& opt) {
  return run_lrp(model, x, opt, Rule::AlphaBeta, "lrp-alphabeta");
}

AttributionMap lrp_composite(Module& model, const Tensor& x, const Options& opt) {
  return run_lrp(model, x, opt, Rule::Composite, "lrp-composite");
}

}  // namespace glimpse::attr
