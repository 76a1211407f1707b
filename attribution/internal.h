// Internals shared by the attribution methods (attribution/*.cpp); not part of the public API.
//
// Every method follows the same few steps, each a helper here:
//   1. check the input (4-D, the channel count of the first conv, the size the model needs);
//   2. put the model in eval mode for the call (EvalModeGuard; restored on return, even on throw);
//   3. run the forward -- plainly, with the input as a gradient leaf (input_forward), or with a
//      capture hook on the target layer (layer_forward) -- whose hooks die with the call;
//   4. resolve the targets from the logits (resolve_targets: the predicted class when none given);
//   5. fill the AttributionMap (make_result) and its `map` from a [N, h, w] tensor (finish_map).
// Signatures here are used by lrp.cpp / occlusion.cpp too: keep them stable.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "attribution/attribution.h"
#include "core/grad_mode.h"
#include "core/tensor.h"
#include "layers/layers.h"
#include "layers/module.h"

namespace glimpse::attr::detail {

// Sets grad mode for a scope (NoGradGuard's opposite when `on`), restoring the previous mode.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) : prev_(grad_enabled()) { set_grad_enabled(on); }
  ~GradModeGuard() { set_grad_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

// Puts every module of `model` in eval mode (dropout off, batch norm on its running statistics, so
// that an image's map does not depend on the rest of the batch) and restores each module's own
// training flag on destruction.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Module& model);
  ~EvalModeGuard();
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  std::vector<std::pair<Module*, bool>> saved_;  // pre-order: parents before children
};

// x must be [N, C, H, W] with N >= 1, C equal to the in_channels of the model's first Conv2d (when
// it has one) and H, W at least Model::info.total_stride (when the model is a Model). Errors name
// the method and the value at fault.
void check_input(Module& model, const Tensor& x, const char* method);

// The class to explain for each image: `requested` when given (its size must be N, each in
// [0, K)), else argmax of each row of logits [N, K].
std::vector<int64_t> resolve_targets(const Tensor& logits, const std::vector<int64_t>& requested, const char* method);
// logits[i, targets[i]] for each image.
std::vector<float> target_scores(const Tensor& logits, const std::vector<int64_t>& targets);
// [N, K] with 1 at (i, targets[i]) and 0 elsewhere: the grad_output that selects y_c of each image
// (images are independent in eval mode, so d(sum_i y_{i,c_i})/dx_i = dy_{i,c_i}/dx_i).
Tensor one_hot(const std::vector<int64_t>& targets, int64_t num_classes, Device device = Device::cpu());

// The logits of x, with no tape (NoGradGuard): for the perturbation methods.
Tensor forward_logits(Module& model, const Tensor& x);

// Forward with the input as a fresh gradient leaf (a detached copy of x with requires_grad), for
// methods that differentiate with respect to the input. Parameters are on the tape too, but
// glimpse::grad(...) to `input` never touches their .grad.
struct InputForward {
  Tensor input;   // [N, C, H, W], requires_grad, leaf
  Tensor logits;  // [N, K]
};
InputForward input_forward(Module& model, const Tensor& x);

// Forward with a capture hook on the module at `layer` (removed before returning, even on a throw).
// mode == Detach: the layer's output is replaced by a detached leaf that requires a gradient, and
// nothing below the layer is recorded on the tape (grad(score, {activation}) is then as cheap as it
// can be). mode == Keep: the output is captured as is and the whole forward is on the tape, with
// x as a gradient leaf (`input`), for methods that differentiate the layer w.r.t. the input (SAM).
// Errors: unknown layer (lists valid names), a hook that never fired, a module that ran more than
// once in one forward (ambiguous), an output that is not 4-D when need_spatial.
enum class CaptureMode { Detach, Keep };
struct LayerForward {
  std::string layer;  // the resolved name
  Tensor activation;  // the layer's output A [N, K, h, w]
  Tensor input;       // the input leaf (Keep mode only)
  Tensor logits;      // [N, classes]
};
LayerForward layer_forward(Module& model, const Tensor& x, const std::string& layer, CaptureMode mode,
                           bool need_spatial, const char* method);

// opt.layer, or default_layer(model, x) when empty.
std::string resolve_layer(Module& model, const Tensor& x, const Options& opt);

// The result skeleton: method, layer, targets, scores, raw.
AttributionMap make_result(const std::string& method, const std::string& layer, std::vector<int64_t> targets,
                           std::vector<float> scores, Tensor raw);

// Fills r.map from `maps2d` [N, h, w] (the method's single-channel map): upsampled to (H, W) when
// opt.upsample (bilinear, align_corners = false; a no-op when already that size) and normalized per
// image to [0, 1] when opt.normalize. Leaves r.map undefined when neither is set.
void finish_map(AttributionMap& r, const Tensor& maps2d, const Options& opt, int64_t H, int64_t W);

// Channel reductions of an input-space attribution [N, C, H, W] -> [N, H, W], for `map`.
Tensor max_abs_over_channels(const Tensor& t);  // max_c |t|   (saliency, guided backprop, ...)
Tensor abs_sum_over_channels(const Tensor& t);  // |sum_c t|   (IG, gradient x input: keeps completeness per pixel)
Tensor sum_over_channels(const Tensor& t);      // sum_c t     (signed)

// Contiguous CPU copy (for the small per-pixel arithmetic of the map computations).
Tensor cpu(const Tensor& t);

// The CAM head of a GAP classifier: its (last) GlobalAvgPool and the one Linear after it, with
// nothing but Flatten / Dropout / containers in between. Errors start with `who` and say why CAM
// needs that shape (CAM and mask guidance use it).
struct CamHead {
  std::string gap_name;
  Module* gap = nullptr;
  Linear* linear = nullptr;
};
CamHead find_cam_head(Module& model, const char* who);

}  // namespace glimpse::attr::detail
