// ROC AUC (with ties), the ROC curve and the ISIC 2017 classification metrics of the melanoma app
// (apps/melanoma/roc.h), against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "roc.h"

using mel::roc_auc;

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
  const mel::ClassificationMetrics m = mel::classification_metrics(probs, labels);
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
  EXPECT_THROW(mel::classification_metrics({{0.5f, 0.5f, 0.f}}, {3}), std::exception);
  EXPECT_THROW(mel::classification_metrics({{0.5f, 0.5f}}, {0}), std::exception);
  EXPECT_THROW(mel::classification_metrics({{0.5f, 0.5f, 0.f}}, {0, 1}), std::exception);
}
