// A model over a data set: opening the set, the inference loader, predictions (with test-time
// augmentation), softmax rows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/data.h"
#include "layers/models.h"

namespace mel {

using glimpse::Tensor;

// Opens an ISIC-layout (or class-folder) data set, one split ("" = every row). A missing directory
// or an empty split is an error naming the value at fault.
glimpse::data::Dataset open_dataset(const std::string& dir, const std::string& split);
// Loader options for inference: no shuffling, no augmentation.
glimpse::data::LoaderOptions inference_loader(int64_t size, int64_t batch = 32, bool with_masks = false,
                                              const glimpse::data::Preprocess& pre = {});

struct Predictions {
  std::vector<std::string> ids;
  std::vector<int64_t> labels;
  std::vector<std::vector<float>> probs;  // softmax, one row per image
  double loss = 0;                        // mean cross-entropy
};
// Runs the model (eval mode, no tape) over the whole data set. With tta, each image's probabilities
// are the mean over its 8 flips and 90-degree rotations (the dihedral group the training
// augmentation draws from), and the loss is the cross-entropy of that mean.
Predictions predict(glimpse::Model& model, const glimpse::data::Dataset& ds, int64_t size,
                    const glimpse::data::Preprocess& pre, const std::string& label = "  eval", bool tta = false);
// Element k (0..7) of the dihedral group applied to square NCHW images: a horizontal flip when
// k & 1, then k >> 1 quarter turns counter-clockwise.
Tensor dihedral(const Tensor& images, int k);
// Softmax of logits [N, K] -> rows.
std::vector<std::vector<float>> softmax_rows(const Tensor& logits);

}  // namespace mel
