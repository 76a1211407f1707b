// Data for training and explaining: datasets on disk (ISIC layout, class-per-folder), a
// deterministic synthetic lesion generator in the ISIC layout, augmentation, DullRazor-style hair
// removal, and a threaded, prefetching loader.
//
// Classes of the ISIC 2017 task: 0 = nevus (neither flag), 1 = melanoma, 2 = seborrheic keratosis.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attribution/image_io.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace glimpse::data {

struct Sample {
  std::string id;          // "ISIC_0000000", or the file stem
  std::string image_path;
  std::string mask_path;   // empty when the dataset has no mask for it
  int64_t label = 0;
};

struct Dataset {
  std::string root;
  std::vector<std::string> class_names;  // ISIC: {"nevus", "melanoma", "seborrheic_keratosis"}
  std::vector<Sample> samples;

  // ISIC layout: <root>/labels.csv (or the given csv) with image_id,melanoma,seborrheic_keratosis
  // (extra columns allowed; a `split` column selects rows when split is non-empty); images in
  // <root>/images/ or <root>/<split>/images/ (<id>.jpg/.png/...), masks in .../masks/<id>_segmentation.png.
  // A malformed CSV row is an Error naming the file and line.
  static Dataset open_isic(const std::string& root, const std::string& split = "", const std::string& csv = "");
  // <root>/<class name>/<images>; classes sorted by name.
  static Dataset open_class_folders(const std::string& root);
  // Picks the layout: a labels.csv at root means ISIC.
  static Dataset open(const std::string& root, const std::string& split = "");

  std::vector<int64_t> class_counts() const;
  size_t size() const { return samples.size(); }
};

// The ISIC 2017 data shipped beside the project (../shared/data/isic2017 from the repository root,
// or $GLIMPSE_ISIC_DIR); empty string when absent.
std::string find_isic2017();

struct AugmentOptions {
  bool flips = true;           // horizontal and vertical
  bool rot90 = true;           // k * 90 degrees
  float crop_min_scale = 0.6f; // random resized crop: area fraction in [min, 1]; 1 disables
  float jitter = 0.1f;         // brightness/contrast/saturation jitter amplitude; 0 disables
};

struct LoaderOptions {
  int64_t batch_size = 32;
  int64_t image_size = 64;     // images (and masks) resized to image_size x image_size
  bool shuffle = true;
  bool augment = false;
  AugmentOptions augment_options;
  bool hair_removal = false;
  bool with_masks = false;     // load masks (empty Mask where a sample has none)
  bool drop_last = false;
  bool fail_on_unreadable = false;  // else skip and count
  int threads = 2;             // decoding workers
  int prefetch = 4;            // batches decoded ahead
  uint64_t seed = 0;           // shuffling and augmentation; same seed, same batches
  bool normalize = true;       // subtract the ImageNet-style mean / divide std (see data.cpp)
};

struct Batch {
  Tensor images;                  // [B, 3, S, S]
  std::vector<int64_t> labels;
  std::vector<std::string> ids;
  std::vector<attr::Mask> masks;  // when with_masks
};

// Iterates a dataset in batches; worker threads decode and augment ahead of the consumer.
class DataLoader {
 public:
  DataLoader(const Dataset& dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  void start_epoch(int64_t epoch);  // reshuffles deterministically from (seed, epoch)
  bool next(Batch& batch);          // false at the end of the epoch
  int64_t batches_per_epoch() const;
  int64_t skipped() const;          // unreadable images skipped so far (paths reported on stderr)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Loads one image as the loader would (resize, optional hair removal, normalization), [1, 3, S, S].
Tensor load_for_model(const std::string& path, int64_t image_size, bool hair_removal = false, bool normalize = true);
// Undo the loader's normalization for display: [1, 3, S, S] -> [0, 1].
Tensor denormalize(const Tensor& images);

// ---- augmentation (deterministic given the Rng) ----
attr::Image augment(const attr::Image& image, const AugmentOptions& opt, Rng& rng);

// ---- DullRazor-style hair removal (Lee et al. 1997): a black-hat (grey closing minus the image)
// with line-shaped structuring elements finds thin dark hairs; their pixels are inpainted from the
// nearest non-hair neighbours, then median-smoothed. Returns the cleaned image (and the hair mask). ----
attr::Image remove_hair(const attr::Image& image, attr::Mask* hair_mask = nullptr);

// ---- synthetic dermoscopy-like data, written in the ISIC layout ----
struct SynthOptions {
  int64_t count = 300;
  int64_t size = 128;          // image side
  uint64_t seed = 1;
  double melanoma_fraction = 1.0 / 3, keratosis_fraction = 1.0 / 3;
  bool distractors = true;     // hairs, a ruler, a coloured sticker, a patterned cloth region
  double val_fraction = 0.2;   // rows marked split=val in labels.csv
};
// Writes <out>/images/<id>.png, <out>/masks/<id>_segmentation.png and <out>/labels.csv
// (split,image_id,melanoma,seborrheic_keratosis). Deterministic from the seed.
void write_synthetic(const std::string& out_dir, const SynthOptions& opt);

}  // namespace glimpse::data
