// A model over a data set: opening the set, the inference loader, predictions (with test-time
// augmentation), softmax rows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/data.h"
#include "layers/dist/comm.h"
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
// ---- data parallelism (layers/dist/comm.h) ----
// The part of n items one rank handles: contiguous, in rank order, cut only at multiples of
// `granule` (the batch of the command), so that every rank sees the batches a single process
// would and the gathered numbers are identical to one process's.
struct Shard {
  size_t begin = 0, end = 0;
};
Shard shard_of(size_t n, int rank, int ranks, size_t granule);
// The dataset's samples cut to this rank's shard.
void keep_shard(glimpse::data::Dataset& ds, const glimpse::dist::Communicator& c, size_t granule);
// Every rank's predictions, concatenated in rank order on rank 0 (the others get theirs back
// unchanged); the loss is recomputed there over all of them.
Predictions gather_predictions(glimpse::dist::Communicator& c, const Predictions& mine);
// The mean cross-entropy of probability rows, summed in row order (what predict() reports).
double mean_nll(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels);
// Runs the model (eval mode, no tape) over the whole data set, kPredictBatch images at a time.
// With tta, each image's probabilities are the mean over its 8 flips and 90-degree rotations (the dihedral group the
// training augmentation draws from), and the loss is the cross-entropy of that mean.
inline constexpr int64_t kPredictBatch = 64;
Predictions predict(glimpse::Model& model, const glimpse::data::Dataset& ds, int64_t size,
                    const glimpse::data::Preprocess& pre, const std::string& label = "  eval", bool tta = false);
// Element k (0..7) of the dihedral group applied to square NCHW images: a horizontal flip when
// k & 1, then k >> 1 quarter turns counter-clockwise.
Tensor dihedral(const Tensor& images, int k);
// Softmax of logits [N, K] -> rows.
std::vector<std::vector<float>> softmax_rows(const Tensor& logits);

}  // namespace mel
