// Bootstrap intervals, operating points and calibration of `melanoma eval`; see eval_stats.h.
#include "eval_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "attribution/render.h"
#include "common.h"
#include "core/error.h"
#include "core/rng.h"

namespace mel {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
nlohmann::json interval_json(const Interval& i) { return {num(i.lo), num(i.hi)}; }
Interval percentile_interval(const std::vector<double>& v) { return {quantile(v, 0.025), quantile(v, 0.975)}; }

// The melanoma-vs-rest scores of a set of rows.
void melanoma_scores(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels, int64_t mel,
                     const std::vector<size_t>& rows, std::vector<double>& score, std::vector<bool>& positive) {
  score.resize(rows.size());
  positive.resize(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    score[k] = probs[rows[k]][static_cast<size_t>(mel)];
    positive[k] = labels[rows[k]] == mel;
  }
}

}  // namespace

OperatingPoint operating_point(const std::vector<double>& scores, const std::vector<bool>& positive, double threshold) {
  GLIMPSE_CHECK(scores.size() == positive.size(), "operating_point: ", scores.size(), " scores but ", positive.size(),
                " labels");
  OperatingPoint p;
  p.threshold = threshold;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool called = scores[i] >= threshold;
    if (positive[i])
      (called ? p.tp : p.fn) += 1;
    else
      (called ? p.fp : p.tn) += 1;
  }
  p.sensitivity = p.tp + p.fn ? static_cast<double>(p.tp) / static_cast<double>(p.tp + p.fn) : kNaN;
  p.specificity = p.tn + p.fp ? static_cast<double>(p.tn) / static_cast<double>(p.tn + p.fp) : kNaN;
  return p;
}

double threshold_for_sensitivity(const std::vector<double>& scores, const std::vector<bool>& positive, double target) {
  GLIMPSE_CHECK(target > 0 && target <= 1, "threshold_for_sensitivity: target ", target, " is not in (0, 1]");
  std::vector<double> pos;
  for (size_t i = 0; i < scores.size(); ++i)
    if (positive[i]) pos.push_back(scores[i]);
  if (pos.empty()) return kNaN;
  // Calling the k highest-scoring positives needs t <= the k-th highest; k = ceil(target * P).
  std::sort(pos.begin(), pos.end(), std::greater<>());
  const auto k = static_cast<size_t>(std::ceil(target * static_cast<double>(pos.size()) - 1e-9));
  return pos[std::clamp<size_t>(k, 1, pos.size()) - 1];
}

Calibration calibration(const std::vector<double>& confidence, const std::vector<bool>& correct, int bins) {
  GLIMPSE_CHECK(confidence.size() == correct.size(), "calibration: ", confidence.size(), " confidences but ",
                correct.size(), " outcomes");
  GLIMPSE_CHECK(bins >= 1 && bins <= 1000, "calibration: bins must be in [1, 1000], got ", bins);
  Calibration c;
  c.bins.resize(static_cast<size_t>(bins));
  std::vector<double> sum_conf(c.bins.size(), 0), sum_ok(c.bins.size(), 0);
  for (size_t i = 0; i < confidence.size(); ++i) {
    const double p = confidence[i];
    GLIMPSE_CHECK(p >= 0 && p <= 1, "calibration: confidence ", i, " is ", p, ", not in [0, 1]");
    const auto b = std::min<size_t>(static_cast<size_t>(p * bins), c.bins.size() - 1);  // 1.0 in the last bin
    ++c.bins[b].count;
    sum_conf[b] += p;
    sum_ok[b] += correct[i] ? 1 : 0;
  }
  const double n = static_cast<double>(confidence.size());
  c.ece = confidence.empty() ? kNaN : 0;
  for (size_t b = 0; b < c.bins.size(); ++b) {
    CalibrationBin& bin = c.bins[b];
    bin.lo = static_cast<double>(b) / bins;
    bin.hi = static_cast<double>(b + 1) / bins;
    if (bin.count == 0) continue;
    bin.confidence = sum_conf[b] / static_cast<double>(bin.count);
    bin.accuracy = sum_ok[b] / static_cast<double>(bin.count);
    c.ece += static_cast<double>(bin.count) / n * std::abs(bin.accuracy - bin.confidence);
  }
  return c;
}

double quantile(std::vector<double> values, double p) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }), values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const double at = std::clamp(p, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (at - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

EvalStats eval_stats(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels,
                     const std::vector<std::string>& class_names, const EvalStatsOptions& o) {
  GLIMPSE_CHECK(o.resamples >= 1 && o.resamples <= 1000000, "eval: --bootstrap must be in [1, 1000000], got ",
                o.resamples);
  const ClassificationMetrics full = classification_metrics(probs, labels, class_names);  // checks the inputs
  EvalStats s;
  s.resamples = o.resamples;
  s.seed = o.seed;
  s.sensitivity_target = o.sensitivity_target;
  const size_t n = labels.size();
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;

  // Point estimates.
  const int64_t mel = full.melanoma_class;
  std::vector<double> score;
  std::vector<bool> positive;
  std::vector<double> top_conf(n);
  std::vector<bool> top_ok(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& p = probs[i];
    const auto pred = std::max_element(p.begin(), p.end()) - p.begin();
    top_conf[i] = p[static_cast<size_t>(pred)];
    top_ok[i] = pred == labels[i];
  }
  s.top_label = calibration(top_conf, top_ok, o.calibration_bins);
  double target_t = kNaN;
  if (mel >= 0) {
    melanoma_scores(probs, labels, mel, all, score, positive);
    s.melanoma = calibration(score, positive, o.calibration_bins);
    const int64_t pos = full.class_counts[static_cast<size_t>(mel)];
    s.has_melanoma = pos > 0 && pos < static_cast<int64_t>(n);
    s.at_half = operating_point(score, positive, 0.5);
    target_t = threshold_for_sensitivity(score, positive, o.sensitivity_target);
    s.at_target = operating_point(score, positive, target_t);
  }

  // Stratified bootstrap: resample within each true class.
  std::vector<std::vector<size_t>> by_class(class_names.size());
  for (size_t i = 0; i < n; ++i) by_class[static_cast<size_t>(labels[i])].push_back(i);
  glimpse::Rng rng(o.seed);
  std::vector<double> acc, bal, auc_m, auc_k, auc_mean, hs, hp, ts, tp;
  std::vector<size_t> rows(n);
  std::vector<std::vector<float>> rp(n);
  std::vector<int64_t> rl(n);
  for (int b = 0; b < o.resamples; ++b) {
    size_t k = 0;
    for (const auto& members : by_class)
      for (size_t j = 0; j < members.size(); ++j) rows[k++] = members[rng.below(members.size())];
    for (size_t i = 0; i < n; ++i) {
      rp[i] = probs[rows[i]];
      rl[i] = labels[rows[i]];
    }
    const ClassificationMetrics m = classification_metrics(rp, rl, class_names);
    acc.push_back(m.accuracy);
    bal.push_back(m.balanced_accuracy);
    auc_m.push_back(m.auc_melanoma);
    auc_k.push_back(m.auc_keratosis);
    auc_mean.push_back(m.auc_mean);
    if (mel >= 0) {
      melanoma_scores(probs, labels, mel, rows, score, positive);
      const OperatingPoint h = operating_point(score, positive, 0.5);
      const OperatingPoint t = operating_point(score, positive, target_t);
      hs.push_back(h.sensitivity);
      hp.push_back(h.specificity);
      ts.push_back(t.sensitivity);
      tp.push_back(t.specificity);
    }
  }
  s.accuracy = percentile_interval(acc);
  s.balanced_accuracy = percentile_interval(bal);
  s.auc_melanoma = percentile_interval(auc_m);
  s.auc_keratosis = percentile_interval(auc_k);
  s.auc_mean = percentile_interval(auc_mean);
  s.half_sensitivity = percentile_interval(hs);
  s.half_specificity = percentile_interval(hp);
  s.target_sensitivity = percentile_interval(ts);
  s.target_specificity = percentile_interval(tp);
  return s;
}

nlohmann::json to_json(const EvalStats& s) {
  auto point = [](const OperatingPoint& p, const Interval& sens, const Interval& spec) {
    return nlohmann::json{{"threshold", num(p.threshold)},
                          {"sensitivity", num(p.sensitivity)},
                          {"sensitivity_ci95", interval_json(sens)},
                          {"specificity", num(p.specificity)},
                          {"specificity_ci95", interval_json(spec)},
                          {"tp", p.tp},
                          {"fn", p.fn},
                          {"tn", p.tn},
                          {"fp", p.fp}};
  };
  auto cal = [](const Calibration& c, const char* what) {
    nlohmann::json bins = nlohmann::json::array();
    for (const auto& b : c.bins)
      bins.push_back(
          {{"lo", b.lo}, {"hi", b.hi}, {"count", b.count}, {"confidence", b.confidence}, {"accuracy", b.accuracy}});
    return nlohmann::json{{"ece", num(c.ece)}, {"what", what}, {"bins", bins}};
  };
  nlohmann::json j;
  j["bootstrap"] = {{"resamples", s.resamples},
                    {"seed", s.seed},
                    {"method", "percentile, resampled with replacement within each true class (stratified)"},
                    {"level", 0.95}};
  j["accuracy_ci95"] = interval_json(s.accuracy);
  j["balanced_accuracy_ci95"] = interval_json(s.balanced_accuracy);
  j["auc_melanoma_ci95"] = interval_json(s.auc_melanoma);
  j["auc_seborrheic_keratosis_ci95"] = interval_json(s.auc_keratosis);
  j["auc_mean_ci95"] = interval_json(s.auc_mean);
  if (s.has_melanoma) {
    j["melanoma_at_0.5"] = point(s.at_half, s.half_sensitivity, s.half_specificity);
    nlohmann::json t = point(s.at_target, s.target_sensitivity, s.target_specificity);
    t["sensitivity_target"] = s.sensitivity_target;
    t["note"] = "threshold chosen on these same images: its specificity is optimistic";
    j["melanoma_at_sensitivity_target"] = t;
  } else {
    j["melanoma_operating_points"] = nullptr;
    j["melanoma_operating_points_note"] = "needs a class named melanoma and images of it and of another class";
  }
  const std::string binning = "equal-width bins on [0, 1]";
  j["calibration"] = {
      {"bins", s.top_label.bins.size()},
      {"binning", binning},
      {"top_label", cal(s.top_label, "confidence = largest probability; correct = argmax is the true class")},
      {"melanoma", s.melanoma.bins.empty() ? nlohmann::json(nullptr)
                                           : cal(s.melanoma,
                                                 "confidence = P(melanoma); "
                                                 "outcome = the image is a melanoma")}};
  return j;
}

std::string format_eval_stats(const EvalStats& s, const ClassificationMetrics& m) {
  auto ci = [](double v, const Interval& i) {
    if (!std::isfinite(v)) return std::string("undefined");
    return strf("%.3f [%.3f, %.3f]", v, i.lo, i.hi);
  };
  std::ostringstream os;
  os << strf("  95%% intervals (stratified bootstrap, %d resamples, seed %llu):\n", s.resamples,
             static_cast<unsigned long long>(s.seed));
  os << "    accuracy " << ci(m.accuracy, s.accuracy) << "  balanced accuracy "
     << ci(m.balanced_accuracy, s.balanced_accuracy) << "\n";
  os << "    AUC melanoma " << ci(m.auc_melanoma, s.auc_melanoma) << "  seborrheic keratosis "
     << ci(m.auc_keratosis, s.auc_keratosis) << "  mean " << ci(m.auc_mean, s.auc_mean) << "\n";
  if (s.has_melanoma) {
    auto line = [&](const char* name, const OperatingPoint& p, const Interval& se, const Interval& sp) {
      os << strf("    melanoma at P >= %.3f (%s): sensitivity ", p.threshold, name) << ci(p.sensitivity, se) << " ("
         << p.tp << "/" << p.tp + p.fn << "), specificity " << ci(p.specificity, sp) << " (" << p.tn << "/"
         << p.tn + p.fp << ")\n";
    };
    line("0.5", s.at_half, s.half_sensitivity, s.half_specificity);
    line(strf("sensitivity >= %.2f, chosen on these images", s.sensitivity_target).c_str(), s.at_target,
         s.target_sensitivity, s.target_specificity);
  }
  os << strf("  calibration (%zu equal-width bins): ECE top label %.3f", s.top_label.bins.size(), s.top_label.ece);
  if (!s.melanoma.bins.empty()) os << strf(", ECE of P(melanoma) %.3f", s.melanoma.ece);
  os << "\n";
  return os.str();
}

glimpse::io::Image reliability_diagram(const Calibration& c, int64_t side) {
  namespace attr = glimpse::attr;
  namespace io = glimpse::io;
  GLIMPSE_CHECK(side >= 64 && side <= 4096, "reliability_diagram: side ", side, " is not in [64, 4096]");
  io::Image img(side, side, 3, 255);
  const double m = static_cast<double>(side) / 12, w = static_cast<double>(side) - 2 * m;
  auto X = [&](double v) { return m + v * w; };
  auto Y = [&](double v) { return m + (1 - v) * w; };
  const attr::Rgb grid{225, 225, 225}, bar{70, 110, 200}, tick{220, 40, 40}, diag{120, 120, 120}, axis{0, 0, 0};
  for (double g = 0.25; g < 1; g += 0.25) {
    attr::draw_line(img, X(g), Y(0), X(g), Y(1), grid);
    attr::draw_line(img, X(0), Y(g), X(1), Y(g), grid);
  }
  for (const auto& b : c.bins) {
    if (b.count == 0) continue;
    const auto x0 = static_cast<int64_t>(std::lround(X(b.lo))) + 1, x1 = static_cast<int64_t>(std::lround(X(b.hi))) - 1;
    const auto y0 = static_cast<int64_t>(std::lround(Y(b.accuracy))), y1 = static_cast<int64_t>(std::lround(Y(0)));
    for (int64_t y = std::min(y0, y1); y <= y1; ++y)
      for (int64_t x = x0; x <= x1; ++x) std::copy(bar.begin(), bar.end(), img.at(x, y));
    attr::draw_line(img, X(b.lo), Y(b.confidence), X(b.hi), Y(b.confidence), tick, 2);
  }
  attr::draw_line(img, X(0), Y(0), X(1), Y(1), diag, 1);
  attr::draw_box(img, std::lround(X(0)), std::lround(Y(1)), std::lround(X(1)), std::lround(Y(0)), axis, 1);
  return img;
}

}  // namespace mel
