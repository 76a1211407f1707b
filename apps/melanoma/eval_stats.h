// How much to trust `melanoma eval`'s numbers: bootstrap intervals, sensitivity and specificity of
// melanoma at stated operating points, and calibration.
//
// Bootstrap (Efron & Tibshirani 1993, percentile method): B resamples of the scored images drawn
// with replacement WITHIN each true class (stratified: every resample keeps the class counts, so an
// AUC defined on the data is defined on every resample), the metric recomputed on each, and the
// 2.5th and 97.5th percentiles (linear interpolation between order statistics) taken as the 95%
// interval. Seeded: same seed, same intervals. It describes the sampling noise of a set this size
// only -- not a shift in population, photo equipment or the choices made on the same images.
//
// Operating points of melanoma vs the rest, score = P(melanoma): "positive" when score >= t.
//   sensitivity = TP / (TP + FN),  specificity = TN / (TN + FP).
// Two thresholds: t = 0.5, and the largest t at which sensitivity reaches the target (0.9 by
// default) on the evaluated images. The second is chosen on the images it is scored on, so its
// specificity is optimistic; its intervals keep that t fixed.
//
// Calibration (Guo et al. 2017): confidences cut into `bins` equal-width bins on [0, 1] (the last
// bin closed, [0.9, 1.0]); ECE = sum_b (n_b / n) |accuracy_b - confidence_b|. Computed twice: for
// the top label (confidence = the largest probability, correct = argmax is the true class) and for
// melanoma (confidence = P(melanoma), "correct" = the image is a melanoma).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/io/image.h"
#include "roc.h"

namespace mel {

struct Interval {
  double lo = 0, hi = 0;  // NaN when the metric was undefined on the data
};

// Sensitivity and specificity of `positive` vs the rest at "score >= threshold". NaN when there is
// no positive (sensitivity) or no negative (specificity).
struct OperatingPoint {
  double threshold = 0, sensitivity = 0, specificity = 0;
  int64_t tp = 0, fn = 0, tn = 0, fp = 0;
};
OperatingPoint operating_point(const std::vector<double>& scores, const std::vector<bool>& positive, double threshold);
// The largest score threshold whose sensitivity is >= target (0 < target <= 1); NaN without a positive.
double threshold_for_sensitivity(const std::vector<double>& scores, const std::vector<bool>& positive, double target);

struct CalibrationBin {
  double lo = 0, hi = 0;  // the bin's edges
  int64_t count = 0;
  double confidence = 0;  // mean confidence in the bin (0 when empty)
  double accuracy = 0;    // fraction correct in the bin (0 when empty)
};
struct Calibration {
  std::vector<CalibrationBin> bins;
  double ece = 0;  // expected calibration error, NaN when there is no sample
};
Calibration calibration(const std::vector<double>& confidence, const std::vector<bool>& correct, int bins = 10);

// The p-quantile (0..1) of values by linear interpolation between order statistics (numpy's default);
// NaN values are ignored, NaN if nothing is left.
double quantile(std::vector<double> values, double p);

struct EvalStatsOptions {
  int resamples = 1000;
  uint64_t seed = 1;
  double sensitivity_target = 0.9;
  int calibration_bins = 10;
};
struct EvalStats {
  int resamples = 0;
  uint64_t seed = 0;
  Interval accuracy, balanced_accuracy, auc_melanoma, auc_keratosis, auc_mean;
  bool has_melanoma = false;  // a melanoma class and at least one melanoma and one other image
  OperatingPoint at_half, at_target;
  double sensitivity_target = 0;
  Interval half_sensitivity, half_specificity, target_sensitivity, target_specificity;
  Calibration top_label, melanoma;
};
// probs/labels/class_names as classification_metrics takes them.
EvalStats eval_stats(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels,
                     const std::vector<std::string>& class_names, const EvalStatsOptions& o = {});

nlohmann::json to_json(const EvalStats& s);
std::string format_eval_stats(const EvalStats& s, const ClassificationMetrics& m);
// A reliability diagram drawn with attribution/render.h: one bar per non-empty bin (height = its
// accuracy; blue), a red tick at its mean confidence, the diagonal of perfect calibration (grey),
// gridlines at 0.25 steps. side x side pixels, no text (the caption goes beside it).
glimpse::io::Image reliability_diagram(const Calibration& c, int64_t side = 240);

}  // namespace mel
