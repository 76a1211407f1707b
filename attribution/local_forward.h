// Forward passes of copies of one image that differ from it only inside a rectangle (occlusion's
// windows), recomputing each layer only where the change can reach.
//
// In a chain of local layers -- convolution, max/average pooling, batch norm in eval mode,
// element-wise activations -- output position o of a window op (kernel k, stride s, padding p,
// dilation d) reads the inputs o s - p + j d, j = 0..k-1. If a copy's input differs from the clean
// image's only in rows [a, b), its output differs at most in the rows
//     ceil((a + p - (k-1) d) / s) <= o <= floor((b - 1 + p) / s)      (clipped to the map),
// and computing those rows needs the input rows [o_first s - p, o_last s - p + (k-1) d]: the
// changed ones from the copy, the rest from the clean image's activation (kept from one clean
// pass), the padding value outside the map. So each layer runs on a crop with padding 0, and the
// global average pool adds the crop's change to the clean sum:
//     gap(A')_c = (sum_hw A_c - sum_R A_c + sum_R A'_c) / (H W)       (R: the final crop).
// The same arithmetic as whole copies, on the positions that can differ; in floating point only
// the order of the GAP's sums differs, so logits agree to rounding (tests/test_local_forward.cpp:
// relative error <= 1e-5). On W1 at 64 px an 8x8 window touches 10x10 of conv1's 64x64 outputs,
// 8x8 of conv2's 32x32 and 7x7 of conv3's 16x16: ~9x less arithmetic than a whole forward.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "layers/module.h"

namespace glimpse::attr {

namespace local_detail {  // the plan's parts, for attribution/local_forward.cpp
enum class Kind { Pointwise, Conv, MaxPool, AvgPool, Block, Head };
struct Step {
  Module* module;
  Kind kind;
};
struct BlockClean {  // a residual block's clean inner activations
  Tensor mid, shortcut;
};
}  // namespace local_detail

class LocalForward {
 public:
  // Plans for `image` [1, C, H, W] on the CPU and runs its clean forward once. Empty when the model
  // is not a chain (Model::is_chain, Sequential) of Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d,
  // ReLU, LeakyReLU, Dropout and BasicBlock (ResNet's residual block: both branches recomputed on
  // their crops) up to a GlobalAvgPool followed by Linear / Flatten / Dropout / activations, when
  // any module has a forward hook (it might change an output), when a batch norm or dropout is in
  // training mode, or when the model is not on the CPU: callers then forward whole copies. The
  // model must outlive the plan and stay unchanged while it is used.
  static std::optional<LocalForward> plan(Module& model, const Tensor& image);

  // Logits [B, K] of B copies of the image; copy b has rows [ys[b], ys[b] + h) and columns
  // [xs[b], xs[b] + w) replaced by patches[b], patches [B, C, h, w], the rectangle inside the image.
  Tensor logits(const Tensor& patches, const std::vector<int64_t>& ys, const std::vector<int64_t>& xs) const;

 private:
  std::vector<local_detail::Step> spatial_, head_;  // before and after the global average pool
  std::vector<Tensor> clean_;                       // clean_[i]: the clean input of spatial_[i]; back(): the final map
  std::vector<local_detail::BlockClean> blocks_;    // per spatial step; set for blocks only
  std::vector<double> clean_sum_;                   // per channel sum of the final map
};

}  // namespace glimpse::attr
