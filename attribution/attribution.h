// Attribution as first-class operations: "which pixels made the network say <class>?"
//
// Every method is one call on a model, an input batch x [N, C, H, W] and Options. Targets: one
// class per image (Options::targets), or the predicted class when empty. Layer methods (the CAM
// family, SAM) act on a layer given by dotted name (Options::layer), by default the last module with
// a spatial output. Methods are built on the framework's hooks and swappable backward rules, never on
// copies of the network, and every hook they install is removed when they return, even on an error.
//
// Results (AttributionMap):
//   raw   : the method's own map -- [N, h, w] at the layer's resolution for layer methods,
//           [N, C, H, W] at the input for input methods (saliency, IG, LRP, ...).
//   map   : when Options::upsample or ::normalize is set, [N, H, W] at the input size (input
//           methods reduce the channels first, as each method documents), and normalized per
//           image to [0, 1] when ::normalize is set. A constant map normalizes to zeros, never NaN.
//
// Devices: the model and x may be on a CUDA device (Module::to, Tensor::to). The forward and backward
// passes then run there, through the dispatched ops; the per-map arithmetic (channel weights and
// sums, LRP rules, occlusion differences, normalization) runs on CPU copies of the activations and
// gradients it reads: those are one layer's [N, K, h, w] (or the input's gradient), small next to
// the passes that make them, and the CPU code is the single reference. `raw` and `map` are always
// returned on the CPU, whatever the model's device.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "layers/module.h"

namespace glimpse::attr {

struct Options {
  std::vector<int64_t> targets;  // one class per image; empty = the predicted class of each image
  std::string layer;             // dotted module name for layer methods; empty = last spatial layer
  bool upsample = true;          // also produce `map` at the input size
  bool normalize = true;         // ... normalized per image to [0, 1]
  uint64_t seed = 0;             // SmoothGrad noise, Score-CAM batching order: same seed, same map

  int smoothgrad_samples = 25;
  float smoothgrad_noise = 0.15f;  // noise std as a fraction of (max - min) of each image
  int ig_steps = 64;               // Riemann steps (trapezoid) of Integrated Gradients
  Tensor ig_baseline;              // [1 or N, C, H, W]; undefined = zeros
  int64_t occlusion_window = 8;    // square window side (pixels)
  int64_t occlusion_stride = 4;
  float occlusion_fill = 0.f;
  // Recompute each layer only where the window can reach (attribution/local_forward.h; chain models
  // on the CPU): the same logits up to float rounding, ~9x less arithmetic on W1. false: whole copies.
  bool occlusion_local = true;
  int64_t sliding_window = 32;  // window side for the sliding-window classification map
  int64_t sliding_stride = 16;
  int64_t scorecam_batch = 32;            // masked inputs per forward pass in Score-CAM
  float lrp_epsilon = 1e-6f;              // LRP-epsilon stabilizer
  float lrp_alpha = 1.f, lrp_beta = 0.f;  // LRP-alpha-beta (alpha - beta = 1); alpha=1, beta=0 is z+
  float lrp_gamma = 0.25f;                // LRP-gamma's weight on positive contributions (lrp-composite)
  // z^B's bounds on the input of the first layer (lrp-composite): one value for every input, or one
  // per input channel; empty = the smallest and largest value of each image. For normalized photos: the
  // normalized values of black and white.
  std::vector<float> lrp_low, lrp_high;
};

struct AttributionMap {
  std::string method;
  std::string layer;             // the layer used (layer methods), else empty
  std::vector<int64_t> targets;  // the class explained for each image
  std::vector<float> scores;     // the target logit of each image
  Tensor raw;                    // see above
  Tensor map;                    // [N, H, W] (when requested)
  // Integrated Gradients only (empty otherwise): per image, sum(raw) - (y_c(x) - y_c(baseline)),
  // the quadrature's completeness error, in logit units; compare it with the scores' scale.
  std::vector<float> completeness_gap;
};

// ---- the CAM family (layer methods); math next to each in attribution/cam.cpp ----
AttributionMap cam(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap gradcam(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap gradcam_plus_plus(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap layercam(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap hirescam(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap scorecam(Module& model, const Tensor& x, const Options& opt = {});
// Saliency activation map (Philbrick et al. 2018), as documented here: the gradient of the chosen
// layer's summed activation with respect to the input.
AttributionMap sam(Module& model, const Tensor& x, const Options& opt = {});

// The inside of CAM and Grad-CAM, for one image (x [1, C, H, W]): both maps are weighted sums of
// one layer's feature maps, raw = sum_k weights[k] A_k (Grad-CAM then takes the ReLU). CAM's weights
// are the classifier's row of the target, w_k^c; Grad-CAM's are alpha_k^c, the spatial mean of
// dy_c/dA_k. Computed by the code cam() and gradcam() run, so `raw` is their raw map. method: "cam"
// or "gradcam"; opt.targets / opt.layer as for those.
struct ChannelWeights {
  std::string method, layer;
  int64_t target = 0;
  Tensor A;                    // [K, h, w], CPU
  std::vector<float> weights;  // [K]
  Tensor raw;                  // [h, w], CPU
};
ChannelWeights channel_weights(const std::string& method, Module& model, const Tensor& x, const Options& opt = {});

// ---- gradient methods (input methods); attribution/gradients.cpp ----
AttributionMap saliency(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap smoothgrad(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap integrated_gradients(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap gradient_x_input(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap deconvnet(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap guided_backprop(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap guided_gradcam(Module& model, const Tensor& x, const Options& opt = {});

// ---- perturbation and relevance methods; attribution/occlusion.cpp, attribution/lrp.cpp ----
AttributionMap occlusion(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap sliding_window(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap lrp_epsilon(Module& model, const Tensor& x, const Options& opt = {});
AttributionMap lrp_alphabeta(Module& model, const Tensor& x, const Options& opt = {});
// The composite of Montavon et al. 2019 ("Layer-wise relevance propagation: an overview"): LRP-0 at
// the dense layers above the convolutions, LRP-epsilon (opt.lrp_epsilon) at the upper half of the
// convolutions, LRP-gamma (opt.lrp_gamma) at the lower half, z^B (opt.lrp_low / lrp_high) at the
// first layer; attribution/lrp.cpp has the formulas and the exact assignment.
AttributionMap lrp_composite(Module& model, const Tensor& x, const Options& opt = {});

// ---- by name: "cam", "gradcam", "gradcam++", "layercam", "hirescam", "scorecam", "deconvnet",
// "guided-backprop", "guided-gradcam", "saliency", "smoothgrad", "integrated-gradients",
// "gradient-x-input", "occlusion", "sliding-window", "lrp-epsilon", "lrp-alphabeta", "lrp-composite",
// "sam".
// An unknown name is an Error listing the known ones.
AttributionMap explain(const std::string& method, Module& model, const Tensor& x, const Options& opt = {});
const std::vector<std::string>& method_names();

// ---- shared helpers; attribution/maps.cpp ----
// The last module (in named_modules order) whose output is 4-D with spatial size > 1, found by one
// forward pass with hooks; Model::info.cam_layer when the model records one.
std::string default_layer(Module& model, const Tensor& x);
// Every module whose output is 4-D with spatial size > 1 for the input x, in named_modules order,
// with that output's shape: the layers the CAM family and SAM can use (one forward pass, hooks
// removed on return).
std::vector<std::pair<std::string, Shape>> spatial_layers(Module& model, const Tensor& x);
// Per image min-max to [0, 1]; a constant image gives zeros.
Tensor normalize_maps(const Tensor& maps);
// [N, h, w] -> [N, H, W] bilinear (align_corners=false).
Tensor upsample_maps(const Tensor& maps, int64_t H, int64_t W);

}  // namespace glimpse::attr
