// ROC AUC with ties, accuracy and the confusion matrix; see roc.h.
#include "roc.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

#include "core/error.h"

namespace mel {

double roc_auc(const std::vector<double>& scores, const std::vector<bool>& positive) {
  GLIMPSE_CHECK(scores.size() == positive.size(), "roc_auc: ", scores.size(), " scores but ", positive.size(),
                " labels");
  const size_t n = scores.size();
  for (size_t i = 0; i < n; ++i) GLIMPSE_CHECK(!std::isnan(scores[i]), "roc_auc: score ", i, " is NaN");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mid-ranks (1-based): a run of equal scores at sorted positions [i, j) gets (i + 1 + j) / 2.
  double positive_rank_sum = 0;
  int64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mid = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (positive[order[k]]) {
        positive_rank_sum += mid;
        ++pos;
      }
    i = j;
  }
  const int64_t neg = static_cast<int64_t>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  const double P = static_cast<double>(pos), N = static_cast<double>(neg);
  return (positive_rank_sum - P * (P + 1) / 2) / (P * N);
}

RocCurve roc_curve(const std::vector<double>& scores, const std::vector<bool>& positive) {
  GLIMPSE_CHECK(scores.size() == positive.size(), "roc_curve: ", scores.size(), " scores but ", positive.size(),
                " labels");
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  const double P = static_cast<double>(std::count(positive.begin(), positive.end(), true));
  const double N = static_cast<double>(n) - P;
  RocCurve c;
  c.fpr.push_back(0);
  c.tpr.push_back(0);
  double tp = 0, fp = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) {
      (positive[order[j]] ? tp : fp) += 1;
      ++j;
    }
    c.thresholds.push_back(scores[order[i]]);
    c.fpr.push_back(N > 0 ? fp / N : 0);
    c.tpr.push_back(P > 0 ? tp / P : 0);
    i = j;
  }
  return c;
}

double curve_area(const RocCurve& c) {
  double a = 0;
  for (size_t k = 1; k < c.fpr.size(); ++k) a += (c.fpr[k] - c.fpr[k - 1]) * (c.tpr[k] + c.tpr[k - 1]) / 2;
  return a;
}

namespace {
std::string class_key(const std::string& name) {
  std::string k;
  for (char ch : name)
    k += (ch == ' ' || ch == '-') ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return k;
}

// One class against the rest: its AUC, or NaN and the reason.
double one_vs_rest_auc(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels, int64_t cls,
                       const std::string& name, const std::vector<int64_t>& counts, std::string& note) {
  if (cls < 0) {
    note = "no class named '" + name + "' in this model's classes";
    return std::numeric_limits<double>::quiet_NaN();
  }
  const int64_t pos = counts[static_cast<size_t>(cls)], n = static_cast<int64_t>(labels.size());
  if (pos == 0 || pos == n) {
    note = pos == 0 ? "no " + name + " image among the " + std::to_string(n) + " scored"
                    : "every scored image is " + name + " (no image of another class)";
    return std::numeric_limits<double>::quiet_NaN();
  }
  std::vector<double> score(labels.size());
  std::vector<bool> is(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    score[i] = probs[i][static_cast<size_t>(cls)];
    is[i] = labels[i] == cls;
  }
  return roc_auc(score, is);
}
}  // namespace

int64_t find_class(const std::vector<std::string>& names, const std::string& wanted) {
  const std::string key = class_key(wanted);
  for (size_t c = 0; c < names.size(); ++c)
    if (class_key(names[c]) == key) return static_cast<int64_t>(c);
  return -1;
}

ClassificationMetrics classification_metrics(const std::vector<std::vector<float>>& probs,
                                             const std::vector<int64_t>& labels,
                                             const std::vector<std::string>& class_names) {
  GLIMPSE_CHECK(probs.size() == labels.size(), "classification_metrics: ", probs.size(), " predictions but ",
                labels.size(), " labels");
  const int64_t classes = static_cast<int64_t>(class_names.size());
  GLIMPSE_CHECK(classes >= 2, "classification_metrics: needs at least 2 class names, got ", classes);
  ClassificationMetrics m;
  m.count = static_cast<int64_t>(labels.size());
  m.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  m.class_counts.assign(static_cast<size_t>(classes), 0);
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto& p = probs[i];
    GLIMPSE_CHECK(static_cast<int64_t>(p.size()) == classes, "classification_metrics: prediction ", i, " has ",
                  p.size(), " probabilities, expected ", classes, " (one per class name)");
    GLIMPSE_CHECK(labels[i] >= 0 && labels[i] < classes, "classification_metrics: label ", labels[i], " of sample ", i,
                  " is not in [0, ", classes, ")");
    for (size_t c = 0; c < p.size(); ++c)
      GLIMPSE_CHECK(!std::isnan(p[c]), "classification_metrics: probability ", c, " of sample ", i, " is NaN");
    const int64_t pred = std::max_element(p.begin(), p.end()) - p.begin();
    ++m.confusion[static_cast<size_t>(labels[i])][static_cast<size_t>(pred)];
    ++m.class_counts[static_cast<size_t>(labels[i])];
    correct += pred == labels[i];
  }
  m.accuracy = m.count ? static_cast<double>(correct) / static_cast<double>(m.count) : 0;
  double recall_sum = 0;
  int present = 0;
  for (int64_t c = 0; c < classes; ++c) {
    if (m.class_counts[static_cast<size_t>(c)] == 0) continue;
    recall_sum += static_cast<double>(m.confusion[static_cast<size_t>(c)][static_cast<size_t>(c)]) /
                  static_cast<double>(m.class_counts[static_cast<size_t>(c)]);
    ++present;
  }
  m.balanced_accuracy = present ? recall_sum / present : 0;
  m.melanoma_class = find_class(class_names, kMelanoma);
  m.keratosis_class = find_class(class_names, kKeratosis);
  m.auc_melanoma = one_vs_rest_auc(probs, labels, m.melanoma_class, kMelanoma, m.class_counts, m.auc_melanoma_note);
  m.auc_keratosis = one_vs_rest_auc(probs, labels, m.keratosis_class, kKeratosis, m.class_counts, m.auc_keratosis_note);
  m.auc_mean = (m.auc_melanoma + m.auc_keratosis) / 2;
  return m;
}

namespace {
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

nlohmann::json to_json(const ClassificationMetrics& m, const std::vector<std::string>& class_names) {
  nlohmann::json j;
  j["count"] = m.count;
  j["accuracy"] = num(m.accuracy);
  j["balanced_accuracy"] = num(m.balanced_accuracy);
  j["auc_melanoma"] = num(m.auc_melanoma);
  j["auc_seborrheic_keratosis"] = num(m.auc_keratosis);
  j["auc_mean"] = num(m.auc_mean);
  if (!m.auc_melanoma_note.empty()) j["auc_melanoma_note"] = m.auc_melanoma_note;
  if (!m.auc_keratosis_note.empty()) j["auc_seborrheic_keratosis_note"] = m.auc_keratosis_note;
  if (!std::isfinite(m.auc_mean)) j["auc_mean_note"] = "undefined: it needs both AUCs";
  j["class_names"] = class_names;
  j["class_counts"] = m.class_counts;
  j["confusion"] = m.confusion;
  j["confusion_axes"] = "rows: true class, columns: predicted class";
  return j;
}

std::string format_metrics(const ClassificationMetrics& m, const std::vector<std::string>& class_names) {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "  images %lld  accuracy %.3f  balanced accuracy %.3f\n"
                "  ROC AUC  melanoma vs rest %.3f  seborrheic keratosis vs rest %.3f  mean %.3f\n",
                static_cast<long long>(m.count), m.accuracy, m.balanced_accuracy, m.auc_melanoma, m.auc_keratosis,
                m.auc_mean);
  os << buf;
  if (!m.auc_melanoma_note.empty()) os << "  melanoma AUC undefined: " << m.auc_melanoma_note << "\n";
  if (!m.auc_keratosis_note.empty()) os << "  seborrheic keratosis AUC undefined: " << m.auc_keratosis_note << "\n";
  os << "  confusion matrix (rows: true, columns: predicted)\n";
  // Row labels in full, column headers cut to 10 characters.
  size_t w = 6, cw = 6;
  for (const auto& n : class_names) {
    w = std::max(w, n.size());
    cw = std::max(cw, std::min<size_t>(10, n.size()));
  }
  os << "  " << std::string(w, ' ');
  for (size_t c = 0; c < m.confusion.size(); ++c) {
    const std::string name = c < class_names.size() ? class_names[c].substr(0, 10) : "?";
    std::snprintf(buf, sizeof buf, " %*s", static_cast<int>(cw), name.c_str());
    os << buf;
  }
  os << "\n";
  for (size_t r = 0; r < m.confusion.size(); ++r) {
    std::snprintf(buf, sizeof buf, "  %-*s", static_cast<int>(w),
                  r < class_names.size() ? class_names[r].c_str() : "?");
    os << buf;
    for (size_t c = 0; c < m.confusion[r].size(); ++c) {
      std::snprintf(buf, sizeof buf, " %*lld", static_cast<int>(cw), static_cast<long long>(m.confusion[r][c]));
      os << buf;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace mel
