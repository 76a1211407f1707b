// How good is a heatmap? Metrics against a ground-truth mask (the expert's lesion segmentation)
// and against the model itself (RISE's deletion/insertion), plus the building blocks of
// "remove and retrain" (ROAR).
//
// Maps are one image's map ([H, W], [1, H, W] or [1, 1, H, W]), normalized to [0, 1] for the
// localisation metrics (the `map` of an AttributionMap); masks have the map's size.
//
//   dice(P, G)   = 2 |P n G| / (|P| + |G|)          (1 when both are empty)
//   iou(P, G)    = |P n G| / |P u G|                (1 when both are empty)
//   energy       = sum_{p in G} max(m_p, 0) / sum_p max(m_p, 0)   (0 when the map is all <= 0)
//   pointing game: hit when the distance from the map's peak (first maximum in raster order) to
//                  the nearest mask pixel is <= tolerance (15 px by default; 0 = the peak is in the mask)
//   deletion / insertion (Petsiuk et al., RISE, 2018): pixels ordered by the map, largest first
//     (ties by raster order); at steps k = 0..S the first round(k/S * H*W) pixels are removed
//     (deletion: set to the baseline) or inserted (insertion: taken from the image into the
//     baseline), all channels at once; the curve is the softmax probability of the target class;
//     AUC = trapezoid rule over the fraction axis [0, 1] = (1/S) sum_k (p_k + p_{k+1}) / 2.
//     Baselines: Zero (black), Blur (Gaussian blur of the image, sigma in pixels), Mean (the
//     image's mean colour); Default = RISE's choices: Zero for deletion, Blur for insertion.
//     Lower deletion AUC and higher insertion AUC mean a more faithful map.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attribution/regions.h"
#include "core/io/image.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace glimpse::attr {

double dice(const io::Mask& pred, const io::Mask& truth);
double iou(const io::Mask& pred, const io::Mask& truth);
double energy_inside(const Tensor& map, const io::Mask& truth);
// Distance (pixels) from the map's peak to the nearest mask pixel; +inf for an empty mask.
double peak_distance(const Tensor& map, const io::Mask& truth);
bool pointing_game(const Tensor& map, const io::Mask& truth, double tolerance = 15.0);

// All of the above for one map, with the map thresholded by `threshold` for Dice and IoU.
struct LocalizationScores {
  double dice = 0, iou = 0, energy = 0, peak_distance = 0;
  bool hit = false;
};
LocalizationScores localization_scores(const Tensor& map, const io::Mask& truth, const Threshold& threshold = {},
                                       double tolerance = 15.0);

// ---- RISE deletion / insertion ----
enum class Baseline { Default, Zero, Blur, Mean };
Baseline baseline_from_name(const std::string& name);  // "default", "zero", "blur", "mean"
struct CurveOptions {
  int steps = 32;  // S
  Baseline baseline = Baseline::Default;
  float blur_sigma = 5.f;  // for Baseline::Blur (RISE: a Gaussian with sigma 5, kernel 11)
  int64_t batch = 33;      // perturbed images per forward pass
};
struct Curve {
  std::vector<double> fraction;     // k / S, k = 0..S
  std::vector<double> probability;  // softmax probability of the target at each step
  double auc = 0;
};
// image [1, C, H, W] (the model's input), map of the image's H x W, target class.
Curve deletion_curve(Module& model, const Tensor& image, const Tensor& map, int64_t target,
                     const CurveOptions& opt = {});
Curve insertion_curve(Module& model, const Tensor& image, const Tensor& map, int64_t target,
                      const CurveOptions& opt = {});
// Both curves of every image of a batch: images [N, C, H, W], maps [N, H, W] (or [N, 1, H, W]), one
// target per image. Each result equals deletion_curve / insertion_curve of that image alone (up to
// float rounding of a different batch composition). Faster: the perturbed copies of all images and
// both curves go through the model opt.batch at a time (fewer, fuller forward passes), and a copy
// that two points share is forwarded once -- the clean image is deletion's step 0 and insertion's
// step S, and an all-zero baseline is the same image for every image of the batch.
struct CurvePair {
  Curve deletion, insertion;
};
//
// `anchors` (optional): the softmax rows of the copies that do not depend on the map -- each image's
// clean copy and full baselines, and the all-zero image -- kept from one call to the next on the same
// images (localize scores every method's maps of one batch): an empty CurveAnchors is filled by the
// first call and read by the next ones, which then forward only the map's own copies. Pass it only
// with the same images, baselines and model; the images' count is checked.
struct CurveAnchors {
  int64_t images = -1, classes = 0;
  std::vector<int64_t> slot;  // per point kind and image: row in `rows`, -1 when not kept
  std::vector<float> rows;    // [kept points, classes]
};
std::vector<CurvePair> rise_curves(Module& model, const Tensor& images, const Tensor& maps,
                                   const std::vector<int64_t>& targets, const CurveOptions& opt = {},
                                   CurveAnchors* anchors = nullptr);
// The trapezoid AUC of probabilities at equally spaced fractions 0, 1/S, ..., 1.
double trapezoid_auc(const std::vector<double>& probability);
// Separable Gaussian blur of every channel of [N, C, H, W] (kernel radius ceil(3 sigma), borders
// replicated). sigma <= 0 returns a copy.
Tensor gaussian_blur(const Tensor& images, float sigma);

// ---- remove and retrain (Hooker et al. 2019; the Grad-CAM tumour study's filtered retraining) ----
// For each image n of images [N, C, H, W], the ceil(fraction * H*W) pixels with the largest
// maps[n] (ties by raster order) are replaced, in every channel, by that image's mean colour (the
// mean of each channel over the whole image). maps: [N, H, W] or [N, 1, H, W]. fraction in [0, 1].
Tensor mask_top_fraction(const Tensor& images, const Tensor& maps, float fraction);
// The same with keep = true: everything EXCEPT the top pixels is replaced (the "keep" variant,
// i.e. retraining on the heatmap-filtered image).
Tensor mask_top_fraction(const Tensor& images, const Tensor& maps, float fraction, bool keep);
// The random-map control: [N, H, W] of independent U(0, 1) values from a seeded generator.
Tensor random_maps(int64_t n, int64_t height, int64_t width, uint64_t seed);

}  // namespace glimpse::attr
