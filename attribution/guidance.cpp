// Mask guidance (attribution/guidance.h): the CAM of each image's true class, min-max normalised, and the
// share of it that falls outside the expert's mask, built from autograd ops so that training can
// push it down.
#include "attribution/guidance.h"

#include <algorithm>

#include "attribution/internal.h"
#include "autograd/functions.h"
#include "core/error.h"

namespace glimpse::attr {

namespace {
constexpr float kEps = 1e-12f;  // a constant map (all cells at its min) scores 0
}  // namespace

Tensor masks_on_grid(const std::vector<io::Mask>& masks, int64_t h, int64_t w) {
  GLIMPSE_CHECK(h >= 1 && w >= 1, "masks_on_grid: the grid must be at least 1x1, got ", h, "x", w);
  const int64_t n = static_cast<int64_t>(masks.size());
  Tensor grid = Tensor::zeros({n, 1, h, w});
  float* g = grid.data();
  std::vector<float> cells(static_cast<size_t>(h * w));
  for (int64_t i = 0; i < n; ++i) {
    const io::Mask& m = masks[static_cast<size_t>(i)];
    if (m.data.empty()) continue;  // no mask for this sample
    GLIMPSE_CHECK(m.width >= w && m.height >= h, "masks_on_grid: mask ", i, " is ", m.width, "x", m.height,
                  ", smaller than the ", w, "x", h, " grid it is averaged onto");
    std::fill(cells.begin(), cells.end(), 0.f);
    float* out = g + i * h * w;
    for (int64_t y = 0; y < m.height; ++y) {
      const int64_t cy = y * h / m.height;
      for (int64_t x = 0; x < m.width; ++x) {
        const int64_t c = cy * w + x * w / m.width;
        cells[static_cast<size_t>(c)] += 1.f;
        if (m.at(x, y)) out[c] += 1.f;
      }
    }
    for (int64_t c = 0; c < h * w; ++c) out[c] /= cells[static_cast<size_t>(c)];
  }
  return grid;
}

Tensor cam_outside_fraction(const Tensor& features, const Tensor& weight, const Tensor& grid,
                            const std::vector<int64_t>& classes, std::vector<float>* range) {
  GLIMPSE_CHECK(features.defined() && features.dim() == 4, "cam_outside_fraction: features must be [N, K, h, w], got ",
                features.defined() ? shape_str(features.shape()) : std::string("undefined"));
  const int64_t n = features.size(0), k = features.size(1), h = features.size(2), w = features.size(3);
  GLIMPSE_CHECK(weight.defined() && weight.dim() == 2 && weight.size(1) == k,
                "cam_outside_fraction: the classifier's weight must be [C, ", k, "] for features ",
                shape_str(features.shape()), ", got ", weight.defined() ? shape_str(weight.shape()) : "undefined");
  GLIMPSE_CHECK(grid.defined() && grid.shape() == Shape({n, 1, h, w}), "cam_outside_fraction: the mask grid must be ",
                shape_str({n, 1, h, w}), ", got ", grid.defined() ? shape_str(grid.shape()) : "undefined");
  GLIMPSE_CHECK(static_cast<int64_t>(classes.size()) == n, "cam_outside_fraction: ", classes.size(), " classes for ", n,
                " images");
  const int64_t num_classes = weight.size(0), hw = h * w;
  std::vector<float> one_hot(static_cast<size_t>(n * num_classes), 0.f);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = classes[static_cast<size_t>(i)];
    GLIMPSE_CHECK(c >= 0 && c < num_classes, "cam_outside_fraction: class ", c, " of image ", i, " is not in [0, ",
                  num_classes, ")");
    one_hot[static_cast<size_t>(i * num_classes + c)] = 1.f;
  }
  // W[c_i] for each image (a one-hot product keeps the gradient to W), then
  // M[i, p] = sum_k W[c_i, k] A[i, k, p]: [N, h*w].
  const Tensor w_sel = matmul(Tensor::from_vector({n, num_classes}, one_hot).to(features.device()), weight);
  const Tensor m = sum(mul(reshape(features, {n, k, hw}), reshape(w_sel, {n, k, 1})), 1);
  // M - min M: the min-max normalisation's 1 / (max - min) cancels in the ratio below.
  const Tensor shifted = sub(m, neg(max(neg(m), 1, true)));
  // 1 - G, a constant of the tape, on the features' device.
  const Tensor outside_mask = reshape(add_scalar(neg(grid.to(features.device())), 1.f), {n, hw});
  const Tensor outside = sum(mul(shifted, outside_mask), 1);  // [N]
  const Tensor total = add_scalar(sum(shifted, 1), kEps);
  if (range) {
    const std::vector<float> mv = m.to(Device::cpu()).contiguous().to_vector();
    range->assign(static_cast<size_t>(n), 0.f);
    for (int64_t i = 0; i < n; ++i) {
      const auto row = mv.begin() + i * hw;
      const auto [lo, hi] = std::minmax_element(row, row + hw);
      (*range)[static_cast<size_t>(i)] = *hi - *lo;
    }
  }
  return div(outside, total);
}

MaskGuidance::MaskGuidance(Module& model, float tau) : tau_(tau) {
  GLIMPSE_CHECK(tau > 0, "mask guidance: tau must be > 0, got ", tau);
  detail::CamHead head = detail::find_cam_head(model, "mask guidance");
  weight_ = &head.linear->weight;
  // Keep the GAP's input as it is (an undefined return leaves the output alone); it stays on the
  // tape, so the loss built from it reaches every layer below.
  hook_ = head.gap->register_forward_hook([this](Module&, const Tensor& input, const Tensor&) {
    features_ = input;
    return Tensor();
  });
}

Tensor MaskGuidance::loss(const std::vector<io::Mask>& masks, const std::vector<int64_t>& classes) const {
  GLIMPSE_CHECK(features_.defined(), "mask guidance: loss() before any forward pass of the model");
  const int64_t n = features_.size(0);
  GLIMPSE_CHECK(static_cast<int64_t>(masks.size()) == n, "mask guidance: ", masks.size(), " masks for a batch of ", n,
                " images");
  // Only images whose mask has a lesion pixel: for the others every map is "outside".
  std::vector<bool> take(static_cast<size_t>(n), false);
  last_count_ = 0;
  last_outside_ = 0;
  for (int64_t i = 0; i < n; ++i)
    if (!masks[static_cast<size_t>(i)].data.empty() && masks[static_cast<size_t>(i)].count() > 0) {
      take[static_cast<size_t>(i)] = true;
      ++last_count_;
    }
  if (last_count_ == 0) return Tensor::scalar(0.f).to(features_.device());
  const Tensor grid = masks_on_grid(masks, features_.size(2), features_.size(3));
  std::vector<float> range;
  const Tensor per_image = cam_outside_fraction(features_, *weight_, grid, classes, &range);
  const std::vector<float> values = per_image.to(Device::cpu()).contiguous().to_vector();
  std::vector<float> weights(static_cast<size_t>(n), 0.f);
  for (size_t i = 0; i < take.size(); ++i)
    if (take[i]) {
      weights[i] = std::min(1.f, range[i] / tau_);
      last_outside_ += values[i];
    }
  last_outside_ /= static_cast<double>(last_count_);
  const Tensor wt = Tensor::from_vector({n}, weights).to(features_.device());
  return mul_scalar(sum(mul(per_image, wt)), 1.f / static_cast<float>(last_count_));
}

}  // namespace glimpse::attr
