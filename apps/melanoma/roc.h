// Classification metrics of the ISIC 2017 challenge (Codella et al. 2017, part 3): per-class ROC AUC
// one-vs-rest (melanoma vs rest, seborrheic keratosis vs rest) and their mean, plus accuracy and the
// confusion matrix.
//
// ROC AUC with ties: AUC = P(s+ > s-) + P(s+ = s-) / 2 over all (positive, negative) pairs, i.e. the
// Mann-Whitney U statistic divided by P * N. Computed from mid-ranks: sort all scores, give tied
// scores the mean of their ranks, AUC = (sum of positive ranks - P (P + 1) / 2) / (P N). This is the
// area under the ROC curve whose tied scores move the curve diagonally (as sklearn's roc_auc_score).
// Undefined (NaN) when either class is absent.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mel {

// scores[i] of sample i and whether it is positive. NaN if there is no positive or no negative.
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive);

// The ROC curve's vertices, one per distinct score (largest first), from (0, 0) to (1, 1): ties move
// the curve diagonally. thresholds[k] = the score at which vertex k + 1 is reached.
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};
RocCurve roc_curve(const std::vector<double>& scores, const std::vector<bool>& positive);
// The trapezoid area under a curve given by its vertices (fpr increasing).
double curve_area(const RocCurve& curve);

// The class names the ISIC 2017 scores look for.
inline constexpr const char* kMelanoma = "melanoma";
inline constexpr const char* kKeratosis = "seborrheic_keratosis";
// The index of the class called `wanted` in `names`, -1 if none. Names match ignoring case, with
// spaces and hyphens read as underscores ("Seborrheic Keratosis" finds seborrheic_keratosis): a
// class-per-folder data set sorts its folders by name (melanoma = 0, nevus = 1), the ISIC layout
// has nevus = 0, melanoma = 1, so an index says nothing about which class it is.
int64_t find_class(const std::vector<std::string>& names, const std::string& wanted);

// probs[i] = class probabilities of sample i, in the order of class_names; labels[i] in [0, K) with
// K = class_names.size(). Every probs row must have K entries. The melanoma and seborrheic
// keratosis AUCs use the classes of those names wherever they are; a class that is missing (from
// the names, or from the labels) leaves its AUC NaN and says why in *_note.
struct ClassificationMetrics {
  int64_t count = 0;
  double accuracy = 0;
  double balanced_accuracy = 0;                       // mean per-class recall over the classes present
  double auc_melanoma = 0;                            // P(melanoma) of melanoma vs the rest
  double auc_keratosis = 0;                           // P(seborrheic keratosis) of SK vs the rest
  double auc_mean = 0;                                // the ISIC 2017 part-3 score
  std::string auc_melanoma_note, auc_keratosis_note;  // why the AUC is undefined; "" when it is not
  int64_t melanoma_class = -1, keratosis_class = -1;  // their indices in class_names, -1 if absent
  std::vector<std::vector<int64_t>> confusion;        // [true][predicted]
  std::vector<int64_t> class_counts;
};
ClassificationMetrics classification_metrics(const std::vector<std::vector<float>>& probs,
                                             const std::vector<int64_t>& labels,
                                             const std::vector<std::string>& class_names);

// An undefined AUC is null, with its reason beside it ("auc_melanoma_note").
nlohmann::json to_json(const ClassificationMetrics& m, const std::vector<std::string>& class_names);
// A printable block: counts, accuracy, AUCs, and the confusion matrix with class names.
std::string format_metrics(const ClassificationMetrics& m, const std::vector<std::string>& class_names);

}  // namespace mel
