// ROC AUC (with ties), the ROC curve and the ISIC 2017 classification metrics of the melanoma app
// (apps/melanoma/roc.h), against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "roc.h"

using mel::roc_auc;

const std::vector<std::string> kIsic = {"nevus", "melanoma", "seborrheic_keratosis"};

TEST(RocAuc, HandComputedWithoutTies) {
  // Pairs (pos, neg): (0.35, 0.1) yes, (0.35, 0.4) no, (0.8, 0.1) yes, (0.8, 0.4) yes -> 3/4.
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.4, 0.35, 0.8}, {false, false, true, true}), 0.75);
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.2, 0.3, 0.4}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.4, 0.3, 0.2, 0.1}, {false, false, true, true}), 0.0);
}

TEST(RocAuc, TiesCountHalf) {
  // positives {2, 3}, negatives {1, 2}: 1 + 0.5 + 1 + 1 = 3.5 of 4 pairs.
  EXPECT_DOUBLE_EQ(roc_auc({1, 2, 2, 3}, {false, true, false, true}), 0.875);
  // All scores equal: every pair is a tie.
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5, 0.5, 0.5, 0.5}, {false, true, false, true, true}), 0.5);
  // A block of ties across the classes in the middle: pos {3, 5, 5}, neg {1, 5, 5}:
  // 3 beats 1, loses to 5, 5 -> 1; each 5 beats 1 (1) and ties two 5s (0.5 + 0.5) -> 2 each; 5 / 9.
  EXPECT_NEAR(roc_auc({3, 5, 5, 1, 5, 5}, {true, true, true, false, false, false}), 5.0 / 9.0, 1e-12);
}

TEST(RocAuc, UndefinedWithOneClass) {
  EXPECT_TRUE(std::isnan(roc_auc({0.1, 0.2}, {true, true})));
  EXPECT_TRUE(std::isnan(roc_auc({0.1, 0.2}, {false, false})));
  EXPECT_TRUE(std::isnan(roc_auc({}, {})));
}

TEST(RocAuc, RejectsMismatchedInputAndNaN) {
  EXPECT_THROW(roc_auc({0.1, 0.2}, {true}), std::exception);
  EXPECT_THROW(roc_auc({0.1, NAN}, {true, false}), std::exception);
}

TEST(RocCurve, VerticesAndAreaMatchTheRankFormula) {
  const mel::RocCurve c = mel::roc_curve({1, 2, 2, 3}, {false, true, false, true});
  // Distinct scores 3, 2, 1: (0,0) -> (0, 1/2) -> (1/2, 1) -> (1, 1); the tie moves diagonally.
  ASSERT_EQ(c.fpr.size(), 4u);
  EXPECT_DOUBLE_EQ(c.tpr[1], 0.5);
  EXPECT_DOUBLE_EQ(c.fpr[1], 0.0);
  EXPECT_DOUBLE_EQ(c.fpr[2], 0.5);
  EXPECT_DOUBLE_EQ(c.tpr[2], 1.0);
  EXPECT_DOUBLE_EQ(mel::curve_area(c), 0.875);

  std::mt19937 rng(7);
  std::uniform_int_distribution<int> level(0, 9);  // few levels: many ties
  std::vector<double> s;
  std::vector<bool> p;
  for (int i = 0; i < 300; ++i) {
    const bool pos = rng() % 3 == 0;
    p.push_back(pos);
    s.push_back(level(rng) + (pos ? 2 : 0));
  }
  EXPECT_NEAR(mel::curve_area(mel::roc_curve(s, p)), roc_auc(s, p), 1e-12);
}

TEST(ClassificationMetrics, ConfusionAccuracyAndIsicAucs) {
  // 0 nevus, 1 melanoma, 2 seborrheic keratosis.
  const std::vector<std::vector<float>> probs = {
      {0.7f, 0.2f, 0.1f},  // nevus, right
      {0.5f, 0.4f, 0.1f},  // nevus, right
      {0.2f, 0.7f, 0.1f},  // melanoma, right
      {0.6f, 0.3f, 0.1f},  // melanoma, predicted nevus
      {0.1f, 0.1f, 0.8f},  // SK, right
      {0.3f, 0.5f, 0.2f},  // SK, predicted melanoma
  };
  const std::vector<int64_t> labels = {0, 0, 1, 1, 2, 2};
  const mel::ClassificationMetrics m = mel::classification_metrics(probs, labels, kIsic);
  EXPECT_EQ(m.count, 6);
  EXPECT_DOUBLE_EQ(m.accuracy, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(m.balanced_accuracy, (1.0 + 0.5 + 0.5) / 3.0);
  const std::vector<std::vector<int64_t>> confusion = {{2, 0, 0}, {1, 1, 0}, {0, 1, 1}};
  EXPECT_EQ(m.confusion, confusion);
  // Melanoma: positives 0.7, 0.3; negatives 0.2, 0.4, 0.1, 0.5. 0.7 beats all 4; 0.3 beats 0.2, 0.1 -> 6/8.
  EXPECT_DOUBLE_EQ(m.auc_melanoma, 0.75);
  // SK: positives 0.8, 0.2; negatives 0.1, 0.1, 0.1, 0.1. Both beat all -> 1. Mean (0.75 + 1) / 2.
  EXPECT_DOUBLE_EQ(m.auc_keratosis, 1.0);
  EXPECT_DOUBLE_EQ(m.auc_mean, 0.875);
  const auto j = mel::to_json(m, {"nevus", "melanoma", "seborrheic_keratosis"});
  EXPECT_EQ(j["confusion"][2][1], 1);
  EXPECT_DOUBLE_EQ(j["auc_mean"].get<double>(), 0.875);
  EXPECT_NE(mel::format_metrics(m, {"nevus", "melanoma", "seborrheic_keratosis"}).find("0.875"), std::string::npos);
}

TEST(ClassificationMetrics, RejectsBadLabelsAndRows) {
  EXPECT_THROW(mel::classification_metrics({{0.5f, 0.5f, 0.f}}, {3}, kIsic), std::exception);
  EXPECT_THROW(mel::classification_metrics({{0.5f, 0.5f}}, {0}, kIsic), std::exception);
  EXPECT_THROW(mel::classification_metrics({{0.5f, 0.5f, 0.f}}, {0, 1}, kIsic), std::exception);
  EXPECT_THROW(mel::classification_metrics({{1.f}}, {0}, {"melanoma"}), std::exception);  // one class
}

// A class-per-folder data set sorts its classes by name: melanoma = 0, nevus = 1. The melanoma AUC
// must be the melanoma column's, found by name (it was column 1, nevus, whatever the names said).
TEST(ClassificationMetrics, FindsMelanomaByNameInAlphabeticalOrder) {
  const std::vector<std::string> alphabetical = {"melanoma", "nevus", "seborrheic_keratosis"};
  // The same six images as ConfusionAccuracyAndIsicAucs with columns 0 and 1 swapped.
  const std::vector<std::vector<float>> probs = {{0.2f, 0.7f, 0.1f}, {0.4f, 0.5f, 0.1f}, {0.7f, 0.2f, 0.1f},
                                                 {0.3f, 0.6f, 0.1f}, {0.1f, 0.1f, 0.8f}, {0.5f, 0.3f, 0.2f}};
  const std::vector<int64_t> labels = {1, 1, 0, 0, 2, 2};
  const mel::ClassificationMetrics m = mel::classification_metrics(probs, labels, alphabetical);
  EXPECT_EQ(m.melanoma_class, 0);
  EXPECT_EQ(m.keratosis_class, 2);
  EXPECT_DOUBLE_EQ(m.auc_melanoma, 0.75);  // as in the ISIC order: the same model, renumbered
  EXPECT_DOUBLE_EQ(m.auc_keratosis, 1.0);
  // Read by index, column 1 (nevus here) vs label 1 would have given the nevus AUC:
  // nevus scores 0.7, 0.5 vs 0.2, 0.6, 0.1, 0.3 -> 0.7 beats 4, 0.5 beats 3 -> 7/8.
  std::vector<double> col1;
  std::vector<bool> is1;
  for (size_t i = 0; i < probs.size(); ++i) {
    col1.push_back(probs[i][1]);
    is1.push_back(labels[i] == 1);
  }
  EXPECT_DOUBLE_EQ(mel::roc_auc(col1, is1), 0.875);
  EXPECT_NE(m.auc_melanoma, mel::roc_auc(col1, is1));
  const auto j = mel::to_json(m, alphabetical);
  EXPECT_DOUBLE_EQ(j["auc_melanoma"].get<double>(), 0.75);
  EXPECT_FALSE(j.contains("auc_melanoma_note"));
}

TEST(ClassificationMetrics, AbsentClassIsNullWithTheReason) {
  // No seborrheic keratosis class at all (a two-class model).
  const mel::ClassificationMetrics two =
      mel::classification_metrics({{0.8f, 0.2f}, {0.3f, 0.7f}, {0.6f, 0.4f}}, {0, 1, 1}, {"Melanoma", "Nevus"});
  EXPECT_EQ(two.melanoma_class, 0);  // matched ignoring case
  // Melanoma: positive 0.8 vs negatives 0.3, 0.6 -> 1.
  EXPECT_DOUBLE_EQ(two.auc_melanoma, 1.0);
  EXPECT_TRUE(std::isnan(two.auc_keratosis));
  EXPECT_TRUE(std::isnan(two.auc_mean));
  EXPECT_NE(two.auc_keratosis_note.find("no class named 'seborrheic_keratosis'"), std::string::npos);
  const auto j = mel::to_json(two, {"Melanoma", "Nevus"});
  EXPECT_TRUE(j["auc_seborrheic_keratosis"].is_null());
  EXPECT_NE(j["auc_seborrheic_keratosis_note"].get<std::string>().find("seborrheic_keratosis"), std::string::npos);
  EXPECT_TRUE(j["auc_mean"].is_null());
  EXPECT_TRUE(j.contains("auc_mean_note"));
  EXPECT_NE(mel::format_metrics(two, {"Melanoma", "Nevus"}).find("seborrheic keratosis AUC undefined"),
            std::string::npos);
  // The class exists but no image of it was scored.
  const mel::ClassificationMetrics none =
      mel::classification_metrics({{0.2f, 0.7f, 0.1f}, {0.1f, 0.1f, 0.8f}}, {0, 2}, kIsic);
  EXPECT_TRUE(std::isnan(none.auc_melanoma));
  EXPECT_NE(none.auc_melanoma_note.find("no melanoma image among the 2 scored"), std::string::npos);
}

TEST(FindClass, MatchesNamesNotPositions) {
  EXPECT_EQ(mel::find_class(kIsic, "melanoma"), 1);
  EXPECT_EQ(mel::find_class({"melanoma", "nevus", "seborrheic_keratosis"}, "melanoma"), 0);
  EXPECT_EQ(mel::find_class(kIsic, "Seborrheic Keratosis"), 2);
  EXPECT_EQ(mel::find_class(kIsic, "seborrheic-keratosis"), 2);
  EXPECT_EQ(mel::find_class(kIsic, "mel"), -1);
  EXPECT_EQ(mel::find_class({}, "melanoma"), -1);
}
