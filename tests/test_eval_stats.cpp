// `melanoma eval`'s trust numbers (apps/melanoma/eval_stats.h) on cases worked by hand: ECE of a
// perfectly calibrated toy and of overconfident ones, sensitivity/specificity on a hand-made set,
// the sensitivity-target threshold, quantiles, and bootstrap intervals that hold the point
// estimate, repeat with the seed and shrink as the set grows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval_stats.h"

namespace {

const std::vector<std::string> kIsic = {"nevus", "melanoma", "seborrheic_keratosis"};

TEST(Calibration, PerfectlyCalibratedToyHasZeroEce) {
  // Four at 0.25 with one right, four at 0.75 with three right: every bin's accuracy = its confidence.
  const std::vector<double> conf = {0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75};
  const std::vector<bool> ok = {true, false, false, false, true, true, true, false};
  const mel::Calibration c = mel::calibration(conf, ok, 10);
  EXPECT_NEAR(c.ece, 0.0, 1e-12);
  ASSERT_EQ(c.bins.size(), 10u);
  EXPECT_EQ(c.bins[2].count, 4);
  EXPECT_EQ(c.bins[7].count, 4);
  EXPECT_DOUBLE_EQ(c.bins[7].accuracy, 0.75);
  EXPECT_DOUBLE_EQ(c.bins[2].lo, 0.2);
  EXPECT_DOUBLE_EQ(c.bins[2].hi, 0.3);
}

TEST(Calibration, OverconfidentCasesByHand) {
  // Ten at 0.95, half right: |0.5 - 0.95| = 0.45.
  std::vector<double> conf(10, 0.95);
  std::vector<bool> ok(10, false);
  for (int i = 0; i < 5; ++i) ok[static_cast<size_t>(i)] = true;
  EXPECT_NEAR(mel::calibration(conf, ok, 10).ece, 0.45, 1e-12);
  // Two bins of two: 0.15 never right, 0.85 always right: 0.5 * 0.15 + 0.5 * 0.15.
  EXPECT_NEAR(mel::calibration({0.15, 0.15, 0.85, 0.85}, {false, false, true, true}, 10).ece, 0.15, 1e-12);
  // 1.0 lands in the last bin (closed), 0.0 in the first.
  const mel::Calibration edge = mel::calibration({1.0, 0.0}, {true, false}, 4);
  EXPECT_EQ(edge.bins[3].count, 1);
  EXPECT_EQ(edge.bins[0].count, 1);
  EXPECT_NEAR(edge.ece, 0.0, 1e-12);
  // With one bin the ECE is |mean accuracy - mean confidence|: (0.15 + 0.15 + 0.85 + 0.85) / 4 = 0.5 vs 0.5.
  EXPECT_NEAR(mel::calibration({0.15, 0.15, 0.85, 0.85}, {false, false, true, true}, 1).ece, 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(mel::calibration({}, {}, 10).ece));
  EXPECT_THROW(mel::calibration({1.5}, {true}, 10), std::exception);
  EXPECT_THROW(mel::calibration({0.5}, {true}, 0), std::exception);
}

TEST(OperatingPoint, SensitivitySpecificityByHand) {
  // Positives 0.9, 0.6, 0.3; negatives 0.7, 0.4, 0.2, 0.1.
  const std::vector<double> s = {0.9, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1};
  const std::vector<bool> p = {true, true, true, false, false, false, false};
  const mel::OperatingPoint half = mel::operating_point(s, p, 0.5);
  EXPECT_EQ(half.tp, 2);
  EXPECT_EQ(half.fn, 1);
  EXPECT_EQ(half.fp, 1);
  EXPECT_EQ(half.tn, 3);
  EXPECT_DOUBLE_EQ(half.sensitivity, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(half.specificity, 0.75);
  // Every positive called: t = 0.3, which also calls 0.7 and 0.4.
  EXPECT_DOUBLE_EQ(mel::threshold_for_sensitivity(s, p, 1.0), 0.3);
  const mel::OperatingPoint all = mel::operating_point(s, p, 0.3);
  EXPECT_DOUBLE_EQ(all.sensitivity, 1.0);
  EXPECT_DOUBLE_EQ(all.specificity, 0.5);
  // 0.6 of 3 positives -> 2 must be called: t = 0.6 (the second highest positive); t = 0.3 would
  // also reach it, but the largest threshold is the one with the best specificity.
  EXPECT_DOUBLE_EQ(mel::threshold_for_sensitivity(s, p, 0.6), 0.6);
  EXPECT_DOUBLE_EQ(mel::threshold_for_sensitivity(s, p, 2.0 / 3.0), 0.6);
  EXPECT_DOUBLE_EQ(mel::threshold_for_sensitivity(s, p, 0.7), 0.3);
  EXPECT_TRUE(std::isnan(mel::threshold_for_sensitivity({0.5}, {false}, 0.9)));
  EXPECT_TRUE(std::isnan(mel::operating_point({0.5}, {false}, 0.5).sensitivity));
}

TEST(Quantile, InterpolatesBetweenOrderStatistics) {
  EXPECT_DOUBLE_EQ(mel::quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(mel::quantile({4, 1, 3, 2}, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(mel::quantile({4, 1, 3, 2}, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(mel::quantile({10, 20}, 0.25), 12.5);
  EXPECT_DOUBLE_EQ(mel::quantile({NAN, 1, 3}, 0.5), 2.0);  // NaN ignored
  EXPECT_TRUE(std::isnan(mel::quantile({}, 0.5)));
}

// n images of the three ISIC classes; the true class gets a noisy head start, so AUCs sit between
// 0.5 and 1.
void noisy_set(int n, uint32_t seed, std::vector<std::vector<float>>& probs, std::vector<int64_t>& labels) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.f, 1.f);
  for (int i = 0; i < n; ++i) {
    const int64_t y = i % 5 == 0 ? 1 : i % 5 == 1 ? 2 : 0;
    std::vector<float> z = {noise(rng), noise(rng), noise(rng)};
    z[static_cast<size_t>(y)] += 1.f;
    float total = 0;
    for (float& v : z) total += (v = std::exp(v));
    for (float& v : z) v /= total;
    probs.push_back(z);
    labels.push_back(y);
  }
}

bool holds(const mel::Interval& i, double v) { return i.lo <= v && v <= i.hi; }

TEST(EvalStats, BootstrapHoldsThePointEstimateRepeatsAndShrinksWithN) {
  std::vector<std::vector<float>> probs;
  std::vector<int64_t> labels;
  noisy_set(100, 11, probs, labels);
  mel::EvalStatsOptions o;
  o.resamples = 400;
  o.seed = 5;
  const mel::EvalStats s = mel::eval_stats(probs, labels, kIsic, o);
  const mel::ClassificationMetrics m = mel::classification_metrics(probs, labels, kIsic);
  EXPECT_TRUE(holds(s.accuracy, m.accuracy));
  EXPECT_TRUE(holds(s.auc_melanoma, m.auc_melanoma));
  EXPECT_TRUE(holds(s.auc_keratosis, m.auc_keratosis));
  EXPECT_TRUE(holds(s.auc_mean, m.auc_mean));
  EXPECT_TRUE(holds(s.half_sensitivity, s.at_half.sensitivity));
  EXPECT_TRUE(holds(s.half_specificity, s.at_half.specificity));
  EXPECT_LT(s.auc_melanoma.lo, s.auc_melanoma.hi);  // not a degenerate interval on noisy data
  // Same seed, same intervals; another seed, other ones.
  const mel::EvalStats again = mel::eval_stats(probs, labels, kIsic, o);
  EXPECT_EQ(again.auc_melanoma.lo, s.auc_melanoma.lo);
  EXPECT_EQ(again.auc_melanoma.hi, s.auc_melanoma.hi);
  o.seed = 6;
  const mel::EvalStats other = mel::eval_stats(probs, labels, kIsic, o);
  EXPECT_TRUE(other.auc_melanoma.lo != s.auc_melanoma.lo || other.auc_melanoma.hi != s.auc_melanoma.hi);
  // The same images four times over: the same point estimates, intervals about half as wide
  // (1/sqrt(4)); asserted at under 0.75 of the width.
  std::vector<std::vector<float>> p4;
  std::vector<int64_t> l4;
  for (int k = 0; k < 4; ++k) {
    p4.insert(p4.end(), probs.begin(), probs.end());
    l4.insert(l4.end(), labels.begin(), labels.end());
  }
  o.seed = 5;
  const mel::EvalStats s4 = mel::eval_stats(p4, l4, kIsic, o);
  EXPECT_NEAR(mel::classification_metrics(p4, l4, kIsic).auc_melanoma, m.auc_melanoma, 1e-12);
  auto width = [](const mel::Interval& i) { return i.hi - i.lo; };
  EXPECT_LT(width(s4.auc_melanoma), 0.75 * width(s.auc_melanoma));
  EXPECT_LT(width(s4.accuracy), 0.75 * width(s.accuracy));
  EXPECT_LT(width(s4.auc_keratosis), 0.75 * width(s.auc_keratosis));
}

TEST(EvalStats, MelanomaFoundByNameAndJsonSaysHow) {
  // Alphabetical classes (class folders): melanoma is column 0.
  const std::vector<std::string> names = {"melanoma", "nevus", "seborrheic_keratosis"};
  const std::vector<std::vector<float>> probs = {{0.9f, 0.05f, 0.05f}, {0.6f, 0.3f, 0.1f}, {0.3f, 0.6f, 0.1f},
                                                 {0.7f, 0.2f, 0.1f},   {0.4f, 0.5f, 0.1f}, {0.2f, 0.1f, 0.7f},
                                                 {0.1f, 0.8f, 0.1f}};
  const std::vector<int64_t> labels = {0, 0, 0, 1, 1, 2, 1};
  mel::EvalStatsOptions o;
  o.resamples = 50;
  const mel::EvalStats s = mel::eval_stats(probs, labels, names, o);
  // The hand-made set of OperatingPoint.SensitivitySpecificityByHand, in P(melanoma).
  EXPECT_TRUE(s.has_melanoma);
  EXPECT_DOUBLE_EQ(s.at_half.sensitivity, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.at_half.specificity, 0.75);
  EXPECT_DOUBLE_EQ(s.at_target.threshold, static_cast<double>(0.3f));  // target 0.9 of 3 positives -> all 3
  EXPECT_DOUBLE_EQ(s.at_target.specificity, 0.5);
  const nlohmann::json j = mel::to_json(s);
  EXPECT_EQ(j["bootstrap"]["resamples"], 50);
  EXPECT_NE(j["bootstrap"]["method"].get<std::string>().find("stratified"), std::string::npos);
  EXPECT_DOUBLE_EQ(j["melanoma_at_0.5"]["specificity"].get<double>(), 0.75);
  EXPECT_EQ(j["calibration"]["bins"], 10);
  EXPECT_TRUE(j["calibration"]["melanoma"].is_object());
  // Without a melanoma class: no operating points, said so.
  const mel::EvalStats none = mel::eval_stats({{0.8f, 0.2f}, {0.3f, 0.7f}}, {0, 1}, {"cat", "dog"}, o);
  EXPECT_FALSE(none.has_melanoma);
  const nlohmann::json jn = mel::to_json(none);
  EXPECT_TRUE(jn["melanoma_operating_points"].is_null());
  EXPECT_TRUE(jn["auc_melanoma_ci95"][0].is_null());
  EXPECT_TRUE(jn["calibration"]["melanoma"].is_null());
}

TEST(ReliabilityDiagram, BarsWhereBinsHoldSamples) {
  // One bin: [0.7, 0.8), all right -> a full-height bar there; the bin [0.2, 0.3) empty.
  const mel::Calibration c = mel::calibration({0.75, 0.75}, {true, true}, 10);
  const glimpse::io::Image img = mel::reliability_diagram(c, 240);
  ASSERT_EQ(img.width, 240);
  const double m = 20, w = 200;  // the margin and plot side at 240 px
  auto pixel = [&](double vx, double vy) {
    return img.at(static_cast<int64_t>(m + vx * w), static_cast<int64_t>(m + (1 - vy) * w));
  };
  const uint8_t* bar = pixel(0.75, 0.5);
  EXPECT_EQ(bar[0], 70);
  EXPECT_EQ(bar[2], 200);
  const uint8_t* empty = pixel(0.27, 0.1);
  EXPECT_EQ(empty[0], 255);
  EXPECT_EQ(empty[1], 255);
}

}  // namespace
