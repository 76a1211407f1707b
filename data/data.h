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

#include "core/io/image.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace glimpse::data {

// ---- CSV (RFC 4180 subset: comma-separated, optional double quotes, "" inside quotes, CRLF or LF) ----
struct CsvTable {
  std::string path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each has header.size() fields (checked)
  std::vector<int64_t> lines;                  // 1-based line number of each row in the file
  // Index of a column by name, -1 if absent.
  int64_t column(const std::string& name) const;
};
// Reads a CSV with a header line. Blank lines are skipped; a row with the wrong number of fields
// or an unterminated quote is an Error "<path>:<line>: ...".
CsvTable read_csv(const std::string& path);

struct Sample {
  std::string id;  // "ISIC_0000000", or the file stem
  std::string image_path;
  std::string mask_path;  // empty when the dataset has no mask for it
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
  // Samples whose image file was not found when the dataset was opened (their image_path is the
  // expected <dir>/<id>.jpg); the loader reports them as unreadable. Counted here for a summary.
  int64_t missing_images = 0;
};

// The ISIC 2017 data shipped beside the project (../shared/data/isic2017 from the repository root,
// or $GLIMPSE_ISIC_DIR); empty string when absent.
std::string find_isic2017();

struct AugmentOptions {
  bool flips = true;            // horizontal and vertical
  bool rot90 = true;            // k * 90 degrees
  float crop_min_scale = 0.6f;  // random resized crop: area fraction in [min, 1]; 1 disables
  float jitter = 0.1f;          // brightness/contrast/saturation jitter amplitude; 0 disables
  float vignette = 0.f;         // probability of blacking out all but a random circle (a dermoscope's field)
  float stickers = 0.f;         // probability of pasting a coloured dot cut by the border (ISIC's nevus stickers)
};

// Per-image preprocessing before resizing, the same at training and inference time (the melanoma
// app records it in each checkpoint). Order: hair removal, then colour constancy.
struct Preprocess {
  bool hair_removal = false;     // DullRazor-style (remove_hair below)
  bool color_constancy = false;  // Shades of Gray (shades_of_gray below)
  bool any() const { return hair_removal || color_constancy; }
};
io::Image preprocess(const io::Image& image, const Preprocess& p);

struct LoaderOptions {
  int64_t batch_size = 32;
  int64_t image_size = 64;  // images (and masks) resized to image_size x image_size
  bool shuffle = true;
  bool augment = false;
  AugmentOptions augment_options;
  Preprocess preprocess;
  bool with_masks = false;  // load masks (empty Mask where a sample has none)
  bool drop_last = false;
  bool fail_on_unreadable = false;  // else skip and count
  int threads = 2;                  // decoding workers
  int prefetch = 4;                 // batches decoded ahead
  uint64_t seed = 0;                // shuffling and augmentation; same seed, same batches
  // Data-parallel training: every rank draws the same order and batches (batch_size is the global
  // batch) and keeps slice `shard` of `shards` of each, rows [n*shard/shards, n*(shard+1)/shards) of a
  // batch of n, so each image is decoded by one rank and augmented as it would be in one process.
  int shard = 0, shards = 1;
  bool normalize = true;  // subtract kNormMean / divide by kNormStd (below)
  // Decoded images (after hair removal) and masks are kept in memory across epochs, up to this
  // many MiB in all, so that later epochs skip JPEG/PNG decoding (about as costly as a small-gap
  // training step at 64 px on 2 cores); 0 turns the cache off. ISIC's 2,000 images at 256 px: 0.5 GiB.
  int64_t cache_mb = 2048;
};

// The loader's fixed per-channel normalization, x' = (x - mean) / std with x in [0, 1]: the
// ImageNet statistics (torchvision's), so that weights imported from PyTorch models see the inputs
// they were trained on. (The ISIC 2017 training images are brighter and redder -- mean about
// (0.73, 0.58, 0.56), measured on 300 of them -- so after this normalization they sit around +1;
// BatchNorm or the first conv's bias absorbs that.)
inline constexpr float kNormMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kNormStd[3] = {0.229f, 0.224f, 0.225f};

struct Batch {
  Tensor images;  // [B, 3, S, S]
  std::vector<int64_t> labels;
  std::vector<std::string> ids;
  std::vector<io::Mask> masks;  // when with_masks
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
  int64_t skipped() const;  // unreadable images skipped so far (paths reported on stderr)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Loads one image as the loader would (resize, optional hair removal, normalization), [1, 3, S, S].
Tensor load_for_model(const std::string& path, int64_t image_size, const Preprocess& pre = {}, bool normalize = true);
// The same from an image already decoded (an upload through io::decode_image, say): load_for_model
// is this on io::load_image(path), so both give the same tensor for the same pixels.
Tensor image_for_model(const io::Image& image, int64_t image_size, const Preprocess& pre = {}, bool normalize = true);
// Undo the loader's normalization for display: [1, 3, S, S] -> [0, 1].
Tensor denormalize(const Tensor& images);

// ---- augmentation (deterministic given the Rng) ----
// Order: random resized crop (area fraction in [crop_min_scale, 1], aspect ratio in [3/4, 4/3],
// resampled back to the input size), horizontal flip (p = 1/2), vertical flip (p = 1/2), rotation
// by k * 90 degrees (k uniform in 0..3; a non-square image keeps its size only for k even, so
// non-square inputs rotate by 0 or 180), then colour jitter (brightness, contrast, saturation
// factors each uniform in [1 - jitter, 1 + jitter]), then with probability `stickers` a coloured dot
// cut by the border (ISIC's nevus stickers), then with probability `vignette` everything
// outside a random circle (radius 0.45-0.72 of the side, centre within 8% of the middle, soft edge)
// turns black; masks are not changed by it. The output has the input's size.
io::Image augment(const io::Image& image, const AugmentOptions& opt, Rng& rng);
// The same, applying the identical geometric transform (crop, flips, rotation) to `mask`, which
// must have the image's size (nearest-neighbour resampling keeps it 0/1).
io::Image augment(const io::Image& image, io::Mask& mask, const AugmentOptions& opt, Rng& rng);
// As augment(), but the crop is resampled straight to out_width x out_height (one resampling, with
// box-filter antialiasing when shrinking) -- what the loader does. mask may be null.
io::Image augment_resized(const io::Image& image, io::Mask* mask, const AugmentOptions& opt, Rng& rng,
                          int64_t out_width, int64_t out_height);
// Resize with antialiasing: bilinear when enlarging or shrinking by < 1.5x (io::resize_image),
// else each output pixel averages a grid of bilinear samples over its footprint.
io::Image resize_area(const io::Image& image, int64_t width, int64_t height);

// ---- DullRazor-style hair removal (Lee et al. 1997): a black-hat (grey closing minus the image)
// with line-shaped structuring elements finds thin dark hairs; their pixels are inpainted from the
// nearest non-hair neighbours, then median-smoothed. Returns the cleaned image (and the hair mask). ----
//
// Parameters (HairOptions), for a 256 px image (scaled with the image's shorter side, see below):
//   line_length 11 px: the structuring elements are lines of this length at 0, 45, 90 and 135
//     degrees. A dark structure narrower than the line across its own direction (a hair, 1-5 px)
//     is filled by the closing in the orientations that cross it; a lesion wider than the line in
//     every direction is not, so it stays.
//   threshold 20 grey levels (of 255): black-hat (max over the four orientations) above this is hair.
//   min_component = line_length pixels: smaller 8-connected hair blobs (pigment dots, noise) are dropped.
//   dilate 1 px: the hair mask grows by this (3x3 steps) to cover the hairs' soft edges.
//   median 5: a 5x5 median over the inpainted pixels (only those) hides the seams.
// line_length <= 0 (the default) means round(11 * min(W, H) / 256), odd, at least 5.
struct HairOptions {
  int line_length = 0;
  int threshold = 20;
  int min_component = 0;  // 0: line_length
  int dilate = 1;
  int median = 5;  // odd window side; 1 disables
};
io::Image remove_hair(const io::Image& image, io::Mask* hair_mask = nullptr);

// ---- Shades of Gray colour constancy (Finlayson & Trezzi 2004; Barata et al. 2015 for dermoscopy) ----
// The illuminant is estimated per channel as the Minkowski p-norm mean of the pixel values,
//   e_c = (mean_x I_c(x)^p)^(1/p)      (p = 1: grey world, p -> inf: max-RGB; p = 6 is the usual choice),
// and each channel is scaled by the von Kries gain g_c = |e| / (sqrt(3) e_c), which maps the
// estimated illuminant to neutral grey of the same brightness; values clip at 255. Dermoscopes and
// cameras of different clinics tint whole photos (blue, yellow), a cue a classifier can learn in
// place of the lesion; this takes the tint away.
io::Image shades_of_gray(const io::Image& image, float p = 6.f);
io::Image remove_hair(const io::Image& image, const HairOptions& opt, io::Mask* hair_mask = nullptr);

// ---- synthetic dermoscopy-like data, written in the ISIC layout ----
struct SynthOptions {
  int64_t count = 300;
  int64_t size = 128;  // image side
  uint64_t seed = 1;
  double melanoma_fraction = 1.0 / 3, keratosis_fraction = 1.0 / 3;
  bool distractors = true;    // hairs, a ruler, a coloured sticker, a patterned cloth region
  double val_fraction = 0.2;  // rows marked split=val in labels.csv (stratified by class)
  bool progress = true;       // a progress bar on stderr
  int threads = 2;            // writer threads (the output does not depend on it)
};

// One synthetic image with its ground truth. Deterministic from (seed, label, size, options).
struct SynthImage {
  io::Image image;
  io::Mask mask;      // the lesion (1), where not hidden by a ruler or sticker
  int64_t label = 0;  // 0 nevus, 1 melanoma, 2 seborrheic keratosis
  bool hairs = false, ruler = false, sticker = false, cloth = false;  // which distractors it has
};
// Each distractor appears independently of the class (hairs p = 0.45, ruler 0.25, sticker 0.2,
// cloth 0.3) when `distractors`; force_cloth puts the lesion-like patterned cloth in every image
// (the seed question's tablecloth scene).
SynthImage synth_image(uint64_t seed, int64_t label, int64_t size, bool distractors = true, bool force_cloth = false);
// Writes <out>/images/<id>.png, <out>/masks/<id>_segmentation.png and <out>/labels.csv
// (split,image_id,diagnosis,melanoma,seborrheic_keratosis,mask_fraction -- the columns of the
// shared ISIC file). Ids are SYN_0000000, ...; image i is synth_image(mix(seed, i), label_i, ...),
// so the bytes written depend on the seed only.
void write_synthetic(const std::string& out_dir, const SynthOptions& opt);

}  // namespace glimpse::data
