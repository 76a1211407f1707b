// Mask guidance: train a GAP classifier so that its class activation maps lie inside an expert's
// outline -- attribution used as a training signal, not only as a read-out. The idea is Ross,
// Hughes & Doshi-Velez, "Right for the Right Reasons" (IJCAI 2017: penalise explanations that fall
// in regions an annotator marked irrelevant) and Li et al., "Tell Me Where to Look" (GAIN, CVPR
// 2018: supervise the attention map with pixel annotations); here the explanation is CAM itself,
// which on a GAP -> Linear net is cheap and exactly differentiable.
//
// For the GAP's input A [N, K, h, w] and the classifier's weights W [C, K]:
//   M_c(p)    = sum_k W[c, k] A_k(p)                                  CAM of class c (Zhou et al.)
//   N_c(p)    = (M_c(p) - min M_c) / (max M_c - min M_c + eps)        the min-max normalised map
//                                                                     that `localize` scores
//   out_c     = sum_p N_c(p) (1 - G(p)) / (sum_p N_c(p) + eps)        = 1 - energy inside G
// with G the expert mask averaged over each cell of the h x w grid (a soft mask in [0, 1]). The
// per-image value is the mean of out_c over every class c: whatever the network predicts, the
// evidence for it should be in the lesion. Min-max normalisation makes it blind to a map's offset
// and scale, so it cannot be lowered by shifting every map below zero (the logits' softmax would
// not notice such a shift). The gradient flows to A (so to every layer below) and to W.
//
// A caution the README repeats: a guided CAM matching the outline on held-out images shows that the
// network learned to put its evidence there; it is no longer an independent check of where an
// unguided network looks.
#pragma once
#include <cstdint>
#include <vector>

#include "attribution/image_io.h"
#include "core/hook_handle.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace glimpse::attr {

// Soft masks on an h x w grid: [N, 1, h, w], each cell the fraction of its pixels inside the mask.
// Pixel (x, y) of a W x H mask falls in cell (x * w / W, y * h / H); each mask must be at least
// h x w. An empty Mask (a sample without one) gives an all-zero grid.
Tensor masks_on_grid(const std::vector<Mask>& masks, int64_t h, int64_t w);

// out_c above, averaged over the classes: [N], differentiable in features [N, K, h, w] and weight
// [C, K]; grid [N, 1, h, w] (no gradient), on the features' device or the CPU.
Tensor cam_outside_fraction(const Tensor& features, const Tensor& weight, const Tensor& grid);

// The training-loop side: a forward hook on the model's GlobalAvgPool keeps its input (on the tape)
// from each forward pass; loss() then returns the mean cam_outside_fraction over the images of the
// last batch whose mask has at least one lesion pixel (a zero scalar without gradient when none
// has). The hook is removed when the guide is destroyed.
class MaskGuidance {
 public:
  explicit MaskGuidance(Module& model);  // throws unless the model has a GAP -> Linear head
  MaskGuidance(const MaskGuidance&) = delete;  // the hook refers to this object
  MaskGuidance& operator=(const MaskGuidance&) = delete;
  Tensor loss(const std::vector<Mask>& masks) const;
  int64_t last_count() const { return last_count_; }  // images that took part in the last loss()

 private:
  Tensor* weight_ = nullptr;
  Tensor features_;
  HookHandle hook_;
  mutable int64_t last_count_ = 0;
};

}  // namespace glimpse::attr
