// Mask guidance: train a GAP classifier so that its class activation maps lie inside an expert's
// outline -- attribution used as a training signal, not only as a read-out. The idea is Ross,
// Hughes & Doshi-Velez, "Right for the Right Reasons" (IJCAI 2017: penalise explanations that fall
// in regions an annotator marked irrelevant) and Li et al., "Tell Me Where to Look" (GAIN, CVPR
// 2018: supervise the attention map with pixel annotations); here the explanation is CAM itself,
// which on a GAP -> Linear net is cheap and exactly differentiable.
//
// For the GAP's input A [N, K, h, w], the classifier's weights W [C, K] and the image's class c:
//   M_c(p)    = sum_k W[c, k] A_k(p)                                  CAM of class c (Zhou et al.)
//   N_c(p)    = (M_c(p) - min M_c) / (max M_c - min M_c)              the min-max normalised map
//                                                                     that `localize` scores
//   out_c     = sum_p N_c(p) (1 - G(p)) / sum_p N_c(p)                = 1 - energy inside G
// with G the expert mask averaged over each cell of the h x w grid (a soft mask in [0, 1]); the
// 1 / (max - min) cancels in the ratio. Only the true class's map is guided, as in GAIN: asking the
// maps of the other classes to peak in the lesion too would fight the classifier, which needs the
// lesion to be *low* in them. Min-max normalisation makes out_c blind to a map's offset and scale,
// so it cannot be lowered by shifting the map below zero (the softmax would not notice the shift).
// The gradient flows to A (so to every layer below) and to W.
//
// Scale invariance has a price: the gradient of out_c grows as 1 / (max M_c - min M_c), without
// bound for a nearly flat map (the first trial run diverged after 24 epochs). MaskGuidance therefore
// weighs each image by min(1, (max M_c - min M_c) / tau), a constant of the tape: a flat map gets
// a proportionally smaller step, and, the weight having no gradient, no reward for being flat.
//
// A caution the README repeats: a guided CAM matching the outline on held-out images shows that the
// network learned to put its evidence there; it is no longer an independent check of where an
// unguided network looks.
#pragma once
#include <cstdint>
#include <vector>

#include "core/hook_handle.h"
#include "core/io/image.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace glimpse::attr {

// Soft masks on an h x w grid: [N, 1, h, w], each cell the fraction of its pixels inside the mask.
// Pixel (x, y) of a W x H mask falls in cell (x * w / W, y * h / H); each mask must be at least
// h x w. An empty Mask (a sample without one) gives an all-zero grid.
Tensor masks_on_grid(const std::vector<io::Mask>& masks, int64_t h, int64_t w);

// out_c above for c = classes[i] of each image i: [N], differentiable in features [N, K, h, w] and
// weight [C, K]; grid [N, 1, h, w] (no gradient), on the features' device or the CPU. A constant
// map scores 0. Also, when `range` is given, max M_c - min M_c of each image (no gradient).
Tensor cam_outside_fraction(const Tensor& features, const Tensor& weight, const Tensor& grid,
                            const std::vector<int64_t>& classes, std::vector<float>* range = nullptr);

// The training-loop side: a forward hook on the model's GlobalAvgPool keeps its input (on the tape)
// from each forward pass; loss() then returns, over the images of the last batch whose mask has at
// least one lesion pixel, sum_i w_i out_i / count with w_i = min(1, range_i / tau) (a zero scalar
// without gradient when no image has a lesion). last_outside() is the unweighted mean out_i, the
// number to log. The hook is removed when the guide is destroyed.
class MaskGuidance {
 public:
  // Throws unless the model has a GAP -> Linear head. tau in logit units (a map's range).
  explicit MaskGuidance(Module& model, float tau = 1.f);
  MaskGuidance(const MaskGuidance&) = delete;  // the hook refers to this object
  MaskGuidance& operator=(const MaskGuidance&) = delete;
  Tensor loss(const std::vector<io::Mask>& masks, const std::vector<int64_t>& classes) const;
  int64_t last_count() const { return last_count_; }     // images that took part in the last loss()
  double last_outside() const { return last_outside_; }  // their mean out_c

 private:
  Tensor* weight_ = nullptr;
  float tau_ = 1.f;
  Tensor features_;
  HookHandle hook_;
  mutable int64_t last_count_ = 0;
  mutable double last_outside_ = 0;
};

}  // namespace glimpse::attr
