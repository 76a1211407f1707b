// Shared machinery of the attribution methods: the default layer, per-image normalization, bilinear
// upsampling, and the internals of attribution/internal.h (forward passes with capture hooks,
// target resolution, input checks, filling AttributionMap::map).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "attribution/attribution.h"
#include "attribution/internal.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/layers.h"
#include "layers/models.h"

namespace glimpse::attr {

// ---- public helpers ------------------------------------------------------------------------------

std::string default_layer(Module& model, const Tensor& x) {
  if (auto* m = dynamic_cast<Model*>(&model); m && !m->info.cam_layer.empty()) {
    model.find(m->info.cam_layer);  // throws, listing the valid names, if the record is stale
    return m->info.cam_layer;
  }
  const std::vector<std::pair<std::string, Shape>> layers = spatial_layers(model, x);
  if (!layers.empty()) return layers.back().first;
  GLIMPSE_FAIL("default_layer: no module of ", model.type_name(),
               " has a 4-D output with spatial size > 1 for an input ", "of shape ", shape_str(x.shape()),
               "; the CAM family needs a spatial layer (pass Options::layer)");
}

std::vector<std::pair<std::string, Shape>> spatial_layers(Module& model, const Tensor& x) {
  detail::check_input(model, x, "spatial_layers");
  detail::EvalModeGuard eval(model);
  NoGradGuard no_grad;
  std::vector<std::pair<std::string, Module*>> modules = model.named_modules();
  std::vector<Shape> shapes(modules.size());
  std::vector<HookHandle> hooks;
  for (size_t i = 1; i < modules.size(); ++i) {  // skip the root ""
    hooks.push_back(modules[i].second->register_forward_hook([&shapes, i](Module&, const Tensor&, const Tensor& y) {
      shapes[i] = y.shape();
      return Tensor();
    }));
  }
  model(x);
  std::vector<std::pair<std::string, Shape>> out;
  for (size_t i = 1; i < modules.size(); ++i) {
    const Shape& s = shapes[i];
    if (s.size() == 4 && s[2] * s[3] > 1) out.emplace_back(modules[i].first, s);
  }
  return out;
}

Tensor normalize_maps(const Tensor& maps) {
  GLIMPSE_CHECK(maps.defined() && maps.dim() >= 2, "normalize_maps: expected [N, ...] maps, got ",
                maps.defined() ? shape_str(maps.shape()) : std::string("an undefined tensor"));
  Tensor src = detail::cpu(maps);
  Tensor out = Tensor::zeros(src.shape());
  const int64_t n = src.size(0), per = src.numel() / std::max<int64_t>(n, 1);
  const float* s = src.data();
  float* o = out.data();
  for (int64_t i = 0; i < n; ++i) {
    const float* a = s + i * per;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    bool finite = true;
    for (int64_t j = 0; j < per; ++j) {
      if (!std::isfinite(a[j])) finite = false;
      lo = std::min(lo, a[j]);
      hi = std::max(hi, a[j]);
    }
    // A constant map (up to the rounding of upsampling) carries no location: zeros, never 0/0.
    double range = static_cast<double>(hi) - lo;
    double scale = std::max(std::fabs(static_cast<double>(hi)), std::fabs(static_cast<double>(lo)));
    if (!finite || !(range > 1e-6 * scale) || range <= 0) continue;
    for (int64_t j = 0; j < per; ++j) o[i * per + j] = static_cast<float>((a[j] - lo) / range);
  }
  return maps.device().is_cpu() ? out : out.to(maps.device());
}

Tensor upsample_maps(const Tensor& maps, int64_t H, int64_t W) {
  GLIMPSE_CHECK(maps.defined() && maps.dim() == 3, "upsample_maps: expected maps [N, h, w], got ",
                maps.defined() ? shape_str(maps.shape()) : std::string("an undefined tensor"));
  GLIMPSE_CHECK(H > 0 && W > 0, "upsample_maps: target size ", H, "x", W, " must be positive");
  NoGradGuard no_grad;
  Tensor m = maps.detach().contiguous();
  if (m.size(1) == H && m.size(2) == W) return m.clone();
  Tensor up = upsample_bilinear(m.view({m.size(0), 1, m.size(1), m.size(2)}), H, W, /*align_corners=*/false);
  return up.contiguous().view({m.size(0), H, W});
}

// ---- internals -----------------------------------------------------------------------------------

namespace detail {

EvalModeGuard::EvalModeGuard(Module& model) {
  for (auto& [name, m] : model.named_modules()) saved_.emplace_back(m, m->training());
  model.eval();
}

EvalModeGuard::~EvalModeGuard() {
  // Module::train is recursive: restore parents first, then let each child override.
  for (auto& [m, was] : saved_) m->train(was);
}

void check_input(Module& model, const Tensor& x, const char* method) {
  GLIMPSE_CHECK(x.defined(), method, ": the input is an undefined tensor");
  GLIMPSE_CHECK(x.dim() == 4, method, ": the input must be a batch of images [N, C, H, W]; got shape ",
                shape_str(x.shape()), x.dim() == 3 ? " (a single image? add the batch dimension: [1, C, H, W])" : "");
  GLIMPSE_CHECK(x.size(0) >= 1, method, ": the input batch is empty (shape ", shape_str(x.shape()), ")");
  for (auto& [name, m] : model.named_modules()) {
    if (auto* conv = dynamic_cast<Conv2d*>(m)) {
      GLIMPSE_CHECK(x.size(1) == conv->in_channels, method, ": the input has ", x.size(1), " channels (shape ",
                    shape_str(x.shape()), ") but the model's first convolution '", name, "' expects ",
                    conv->in_channels);
      break;
    }
  }
  if (auto* mm = dynamic_cast<Model*>(&model)) {
    int64_t s = mm->info.total_stride;
    GLIMPSE_CHECK(x.size(2) >= s && x.size(3) >= s, method, ": the input images are ", x.size(2), "x", x.size(3),
                  " but ", mm->info.name, " downsamples by ", s, "; images must be at least ", s, "x", s,
                  " (it was built for ", mm->info.input_size, "x", mm->info.input_size, ")");
  }
}

std::vector<int64_t> resolve_targets(const Tensor& logits, const std::vector<int64_t>& requested, const char* method) {
  GLIMPSE_CHECK(logits.dim() == 2, method, ": the model's output must be logits [N, classes]; got shape ",
                shape_str(logits.shape()));
  const int64_t n = logits.size(0), k = logits.size(1);
  if (requested.empty()) return argmax_rows(cpu(logits));
  GLIMPSE_CHECK(static_cast<int64_t>(requested.size()) == n, method, ": ", requested.size(), " targets for a batch of ",
                n, " images; give one class per image, or none for the predicted class");
  for (size_t i = 0; i < requested.size(); ++i) {
    GLIMPSE_CHECK(requested[i] >= 0 && requested[i] < k, method, ": target class ", requested[i], " of image ", i,
                  " is out of range; the model has ", k, " classes (0..", k - 1, ")");
  }
  return requested;
}

std::vector<float> target_scores(const Tensor& logits, const std::vector<int64_t>& targets) {
  Tensor l = cpu(logits);
  std::vector<float> s(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) s[i] = l.data()[static_cast<int64_t>(i) * l.size(1) + targets[i]];
  return s;
}

Tensor one_hot(const std::vector<int64_t>& targets, int64_t num_classes, Device device) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(targets.size()), num_classes});
  for (size_t i = 0; i < targets.size(); ++i) t.data()[static_cast<int64_t>(i) * num_classes + targets[i]] = 1.f;
  return device.is_cpu() ? t : t.to(device);
}

Tensor forward_logits(Module& model, const Tensor& x) {
  NoGradGuard no_grad;
  return model(x.detach());
}

InputForward input_forward(Module& model, const Tensor& x) {
  GradModeGuard grad_on(true);
  InputForward f;
  f.input = x.detach().contiguous().clone();
  f.input.set_requires_grad(true);
  f.logits = model(f.input);
  return f;
}

LayerForward layer_forward(Module& model, const Tensor& x, const std::string& layer, CaptureMode mode,
                           bool need_spatial, const char* method) {
  LayerForward f;
  f.layer = layer;
  int fired = 0;
  Shape first_shape;
  // Detach mode: record nothing until the hook, then switch the tape on for the layers above.
  GradModeGuard grad_scope(mode == CaptureMode::Keep);
  Tensor in = x.detach();
  if (mode == CaptureMode::Keep) {
    in = x.detach().contiguous().clone();
    in.set_requires_grad(true);
    f.input = in;
  }
  {
    HookHandle handle = register_forward_hook(model, layer, [&](Module&, const Tensor&, const Tensor& y) -> Tensor {
      if (++fired > 1) return Tensor();  // reported below, after the forward
      first_shape = y.shape();
      if (mode == CaptureMode::Keep) {
        f.activation = y;
        return Tensor();
      }
      set_grad_enabled(true);  // restored by grad_scope when layer_forward returns
      Tensor leaf = y.detach();
      leaf.set_requires_grad(true);
      f.activation = leaf;
      return leaf;
    });
    f.logits = model(in);
  }  // the hook is gone here (and on any throw above)
  GLIMPSE_CHECK(fired > 0, method, ": the hook on layer '", layer, "' never fired: the module is not on the path ",
                "of ", model.type_name(), "::forward for this input");
  GLIMPSE_CHECK(fired == 1, method, ": layer '", layer, "' ran ", fired,
                " times in one forward pass (a shared module); ", "choose a layer that runs once");
  if (need_spatial) {
    GLIMPSE_CHECK(first_shape.size() == 4, method, ": layer '", layer, "' has output shape ", shape_str(first_shape),
                  ", not a spatial map [N, K, h, w]; choose a convolutional layer (default: the last spatial one, '",
                  default_layer(model, x), "')");
  }
  GLIMPSE_CHECK(f.logits.requires_grad(), method, ": the model's output does not depend on layer '", layer,
                "' (or every parameter above it is frozen and the layer is not reached)");
  return f;
}

std::string resolve_layer(Module& model, const Tensor& x, const Options& opt) {
  if (!opt.layer.empty()) {
    model.find(opt.layer);  // unknown name: Error listing the valid ones
    return opt.layer;
  }
  return default_layer(model, x);
}

AttributionMap make_result(const std::string& method, const std::string& layer, std::vector<int64_t> targets,
                           std::vector<float> scores, Tensor raw) {
  AttributionMap r;
  r.method = method;
  r.layer = layer;
  r.targets = std::move(targets);
  r.scores = std::move(scores);
  r.raw = std::move(raw);
  return r;
}

void finish_map(AttributionMap& r, const Tensor& maps2d, const Options& opt, int64_t H, int64_t W) {
  if (!opt.upsample && !opt.normalize) return;
  GLIMPSE_CHECK(maps2d.dim() == 3, "finish_map: expected [N, h, w], got ", shape_str(maps2d.shape()));
  // `map` is documented as [N, H, W] at the input size whenever it is produced.
  Tensor m = upsample_maps(maps2d, H, W);
  r.map = opt.normalize ? normalize_maps(m) : m;
}

namespace {
// out[n, p] = f over c of t[n, c, p]
template <typename Init, typename Step, typename Final>
Tensor reduce_channels(const Tensor& t, Init init, Step step, Final fin) {
  GLIMPSE_CHECK(t.dim() == 4, "channel reduction: expected [N, C, H, W], got ", shape_str(t.shape()));
  Tensor s = cpu(t);
  const int64_t n = s.size(0), c = s.size(1), hw = s.size(2) * s.size(3);
  Tensor out = Tensor::empty({n, s.size(2), s.size(3)});
  const float* a = s.data();
  float* o = out.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < hw; ++p) {
      float acc = init();
      for (int64_t k = 0; k < c; ++k) acc = step(acc, a[(i * c + k) * hw + p]);
      o[i * hw + p] = fin(acc);
    }
  return out;
}
}  // namespace

Tensor max_abs_over_channels(const Tensor& t) {
  return reduce_channels(
      t, [] { return 0.f; }, [](float acc, float v) { return std::max(acc, std::fabs(v)); }, [](float a) { return a; });
}

Tensor abs_sum_over_channels(const Tensor& t) {
  return reduce_channels(
      t, [] { return 0.f; }, [](float acc, float v) { return acc + v; }, [](float a) { return std::fabs(a); });
}

Tensor sum_over_channels(const Tensor& t) {
  return reduce_channels(
      t, [] { return 0.f; }, [](float acc, float v) { return acc + v; }, [](float a) { return a; });
}

Tensor cpu(const Tensor& t) {
  Tensor c = t.detach();
  if (!c.device().is_cpu()) c = c.to(Device::cpu());
  return c.contiguous();
}

}  // namespace detail
}  // namespace glimpse::attr
