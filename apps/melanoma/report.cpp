// `melanoma report`: one self-contained HTML page (no external files: images inlined as base64 PNG,
// charts as inline SVG) with the model, the ISIC 2017 scores, the training curves, the localization
// table (and two-stage / ROAR results when their JSON files exist), and a gallery: each image with
// its expert mask outlined, then every method's overlay side by side.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <sstream>

#include "attribution/attribution.h"
#include "attribution/regions.h"
#include "attribution/render.h"
#include "autograd/functions.h"
#include "commands.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "json_in.h"

namespace fs = std::filesystem;
using namespace glimpse;
using nlohmann::json;

namespace mel {
namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

// A number for a table cell: "-" when absent, null or not finite. Every other fault (a string
// where a number belongs) is an Error naming the file and the key.
std::string num(const JsonIn& j, const char* key, const char* fmt = "%.3f") {
  const double v = j.number_or_nan(key);
  return std::isfinite(v) ? strf(fmt, v) : "&ndash;";
}

struct Series {
  std::string name, colour;
  std::vector<std::pair<double, double>> points;
};

// A line chart: x = epoch, one polyline per series, axes with a few ticks, a legend.
std::string svg_chart(const std::string& title, const std::vector<Series>& series, double ymin, double ymax,
                      bool fixed_range) {
  const double W = 560, H = 250, L = 48, R = 150, T = 28, B = 36;  // legend in the right margin
  double xmin = 1e300, xmax = -1e300;
  double lo = 1e300, hi = -1e300;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      if (std::isfinite(y)) {
        lo = std::min(lo, y);
        hi = std::max(hi, y);
      }
    }
  if (xmin > xmax) return "<p>(no data for " + esc(title) + ")</p>";
  if (xmax == xmin) xmax = xmin + 1;
  if (!fixed_range) {
    ymin = std::min(0.0, lo);
    ymax = hi > ymin ? hi * 1.05 : ymin + 1;
  }
  auto px = [&](double x) { return L + (x - xmin) / (xmax - xmin) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B); };
  std::ostringstream os;
  os << strf("<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' class='chart'>", W, H);
  os << strf("<text x='%.0f' y='18' font-size='14' font-weight='bold'>%s</text>", L, esc(title).c_str());
  os << strf("<rect x='%.0f' y='%.0f' width='%.0f' height='%.0f' fill='#fafafa' stroke='#ccc'/>", L, T, W - L - R,
             H - T - B);
  for (int k = 0; k <= 4; ++k) {
    const double y = ymin + (ymax - ymin) * k / 4;
    os << strf("<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#e4e4e4'/>", L, W - R, py(y), py(y));
    os << strf("<text x='%.1f' y='%.1f' font-size='10' text-anchor='end'>%.2f</text>", L - 4, py(y) + 3, y);
  }
  const int xt = static_cast<int>(std::min(8.0, xmax - xmin));
  for (int k = 0; k <= xt; ++k) {
    const double x = xmin + (xmax - xmin) * k / std::max(1, xt);
    os << strf("<text x='%.1f' y='%.1f' font-size='10' text-anchor='middle'>%.0f</text>", px(x), H - B + 14, x);
  }
  os << strf("<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>epoch</text>", (L + W - R) / 2, H - 6);
  double ly = T + 12;
  for (const auto& s : series) {
    std::string pts;
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) pts += strf("%.1f,%.1f ", px(x), py(std::clamp(y, ymin, ymax)));
    os << "<polyline fill='none' stroke-width='2' stroke='" << s.colour << "' points='" << pts << "'/>";
    for (auto [x, y] : s.points)
      if (std::isfinite(y))
        os << strf("<circle cx='%.1f' cy='%.1f' r='2.5' fill='%s'/>", px(x), py(std::clamp(y, ymin, ymax)),
                   s.colour.c_str());
    os << strf("<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='%s' stroke-width='3'/>", W - R + 8, W - R + 24,
               ly - 4, ly - 4, s.colour.c_str());
    os << strf("<text x='%.1f' y='%.1f' font-size='11'>%s</text>", W - R + 28, ly, esc(s.name).c_str());
    ly += 14;
  }
  os << "</svg>";
  return os.str();
}

// The charts of a training curve, from the same reader `train --resume` uses (read_curve).
std::string curves_html(const CurveRead& curve) {
  std::vector<Series> loss = {{"train loss", "#1f77b4", {}}, {"val loss", "#d62728", {}}};
  std::vector<Series> score = {{"val AUC mean", "#2ca02c", {}},
                               {"val AUC melanoma", "#9467bd", {}},
                               {"val AUC SK", "#8c564b", {}},
                               {"train accuracy", "#1f77b4", {}},
                               {"val accuracy", "#ff7f0e", {}}};
  for (const EpochRecord& e : curve.epochs) {
    const double x = static_cast<double>(e.epoch);
    loss[0].points.push_back({x, e.train_loss});
    loss[1].points.push_back({x, e.has_val ? e.val_loss : NAN});
    score[0].points.push_back({x, e.has_val ? e.auc_mean : NAN});
    score[1].points.push_back({x, e.has_val ? e.auc_melanoma : NAN});
    score[2].points.push_back({x, e.has_val ? e.auc_keratosis : NAN});
    score[3].points.push_back({x, e.train_accuracy});
    score[4].points.push_back({x, e.has_val ? e.val_accuracy : NAN});
  }
  std::string note;
  if (curve.skipped > 0)
    note = strf("<p class='warn'>%lld epoch record(s) of %s could not be read and are not drawn; first: ",
                static_cast<long long>(curve.skipped), esc(curve.path).c_str()) +
           esc(curve.problems.empty() ? std::string() : curve.problems.front()) + "</p>";
  return note + svg_chart("loss", loss, 0, 1, false) + svg_chart("AUC and accuracy", score, 0, 1, true);
}

// "[lo, hi]" of eval's <metric>_ci95 arrays ("-" for a null end: the metric was undefined).
std::string interval(const JsonIn& a) {
  const std::vector<JsonIn> v = a.items();
  if (v.size() != 2) a.fail("expected [lo, hi]");
  const double lo = v[0].raw().is_null() ? NAN : v[0].number(), hi = v[1].raw().is_null() ? NAN : v[1].number();
  return std::isfinite(lo) && std::isfinite(hi) ? strf("%.3f&ndash;%.3f", lo, hi) : "&ndash;";
}

// A metric and, when eval wrote one (<key>_ci95), its 95% bootstrap interval under it.
std::string with_ci(const JsonIn& e, const std::string& key) {
  std::string s = num(e, key.c_str());
  const std::string ci = key + "_ci95";
  if (e.has(ci.c_str())) s += "<br><small>" + interval(e.at(ci.c_str())) + "</small>";
  return s;
}

// eval's melanoma operating points (sensitivity and specificity with their intervals) and the
// calibration errors, when eval.json has them.
std::string eval_stats_html(const JsonIn& e) {
  std::ostringstream os;
  if (e.has("bootstrap")) {
    const JsonIn b = e.at("bootstrap");
    os << "<p>Under each score: its 95% bootstrap interval (" << b.integer("resamples", 0, 0, int64_t(1) << 40)
       << " resamples within each true class, percentile method). With few images these intervals are wide; "
          "read the scores with them.</p>";
  }
  const char* points[][2] = {{"melanoma_at_0.5", "P(melanoma) &ge; 0.5"},
                             {"melanoma_at_sensitivity_target", "threshold for the target sensitivity"}};
  std::string rows, note;
  for (const auto& [key, label] : points) {
    if (!e.has(key)) continue;
    const JsonIn p = e.at(key);
    std::string what = label;
    if (p.has("sensitivity_target")) what += strf(" (%.0f%%)", 100 * p.number("sensitivity_target", NAN));
    rows += "<tr><td>" + what + "</td><td>" + num(p, "threshold") + "</td><td>" + with_ci(p, "sensitivity") +
            "</td><td>" + with_ci(p, "specificity") + "</td><td>" +
            strf("%lld / %lld / %lld / %lld", static_cast<long long>(p.integer("tp", 0, 0, int64_t(1) << 50)),
                 static_cast<long long>(p.integer("fn", 0, 0, int64_t(1) << 50)),
                 static_cast<long long>(p.integer("tn", 0, 0, int64_t(1) << 50)),
                 static_cast<long long>(p.integer("fp", 0, 0, int64_t(1) << 50))) +
            "</td></tr>";
    if (p.has("note")) note = p.string("note", "");
  }
  if (!rows.empty())
    os << "<p>Melanoma against the rest at two operating points</p><table><tr><th>operating point</th>"
          "<th>threshold</th><th>sensitivity</th><th>specificity</th><th>TP / FN / TN / FP</th></tr>"
       << rows << "</table>" << (note.empty() ? "" : "<p class='warn'>" + esc(note) + "</p>");
  if (e.has("melanoma_operating_points_note"))
    os << "<p>No melanoma operating point: " << esc(e.string("melanoma_operating_points_note", "")) << "</p>";
  if (e.has("calibration")) {
    const JsonIn c = e.at("calibration");
    os << "<p>Calibration (" << c.integer("bins", 0, 0, 1 << 20)
       << " equal-width bins): expected calibration error of the top label <b>"
       << (c.has("top_label") ? num(c.at("top_label"), "ece") : "&ndash;") << "</b>";
    if (c.has("melanoma")) os << ", of P(melanoma) <b>" << num(c.at("melanoma"), "ece") << "</b>";
    os << " (0 = the probabilities are the observed frequencies).</p>";
  }
  return os.str();
}

std::string metrics_html(const JsonIn& e) {
  std::ostringstream os;
  os << "<table><tr><th>images</th><th>accuracy</th><th>balanced acc.</th><th>AUC melanoma</th><th>AUC SK</th>"
        "<th>mean AUC</th></tr><tr><td>"
     << e.integer("count", 0, 0, int64_t(1) << 50) << "</td><td>" << with_ci(e, "accuracy") << "</td><td>"
     << with_ci(e, "balanced_accuracy") << "</td><td>" << with_ci(e, "auc_melanoma") << "</td><td>"
     << with_ci(e, "auc_seborrheic_keratosis") << "</td><td><b>" << with_ci(e, "auc_mean") << "</b></td></tr></table>"
     << eval_stats_html(e);
  if (e.has("confusion")) {
    std::vector<std::string> names;
    if (e.has("class_names"))
      for (const JsonIn& n : e.at("class_names").items()) names.push_back(n.string());
    os << "<p>Confusion matrix (rows: true class, columns: predicted)</p><table><tr><th></th>";
    for (const auto& n : names) os << "<th>" << esc(n) << "</th>";
    os << "</tr>";
    size_t r = 0;
    for (const JsonIn& row : e.at("confusion").items()) {
      os << "<tr><th>" << esc(r < names.size() ? names[r] : "?") << "</th>";
      size_t c = 0;
      for (const JsonIn& v : row.items())
        os << "<td" << (c++ == r ? " class='diag'" : "") << ">" << v.integer(0, int64_t(1) << 50) << "</td>";
      os << "</tr>";
      ++r;
    }
    os << "</table>";
  }
  return os.str();
}

std::string localize_html(const JsonIn& l) {
  constexpr int64_t kMaxCount = int64_t(1) << 50;
  std::ostringstream os;
  os << "<p>" << l.integer("images", 0, 0, kMaxCount) << " images with expert masks at "
     << l.integer("resolution", 0, 0, kMaxCount) << " px, maps of the " << esc(l.string("target", "predicted"))
     << " class. dice*/iou*: best threshold t* shared by the split; dice/iou at the fixed threshold "
     << esc(l.string("fixed_threshold", "")) << "; deletion: lower is better, insertion: higher is better. "
     << "The centred Gaussian uses no model; a method is useful where it beats it.</p>";
  os << "<table><tr><th>method</th><th>dice*</th><th>t*</th><th>iou*</th><th>dice</th><th>iou</th><th>energy in "
        "mask</th><th>pointing game</th><th>deletion AUC</th><th>insertion AUC</th><th>s/img</th></tr>";
  const std::vector<JsonIn> rows = l.at("rows").items();
  double best = -1;
  for (const JsonIn& r : rows) {
    const double d = r.number_or_nan("dice_best");
    if (std::isfinite(d) && r.string("method", "") != "centred-gaussian") best = std::max(best, d);
  }
  for (const JsonIn& r : rows) {
    const std::string m = r.at("method").string();
    if (r.has("error")) {
      os << "<tr><td>" << esc(m) << "</td><td colspan='10'>failed: " << esc(r.at("error").string()) << "</td></tr>";
      continue;
    }
    const bool base = m == "centred-gaussian";
    const bool top = r.number_or_nan("dice_best") == best;
    const int64_t images = r.integer("images", 0, 0, kMaxCount);
    os << "<tr"
       << (base  ? " class='baseline'"
           : top ? " class='best'"
                 : "")
       << "><td>" << esc(m) << "</td><td>" << num(r, "dice_best") << "</td><td>" << num(r, "best_threshold", "%.2f")
       << "</td><td>" << num(r, "iou_best") << "</td><td>" << num(r, "dice_fixed") << "</td><td>" << num(r, "iou_fixed")
       << "</td><td>" << num(r, "energy_inside") << "</td><td>" << num(r, "pointing_game") << "</td><td>"
       << num(r, "deletion_auc") << "</td><td>" << num(r, "insertion_auc") << "</td><td>"
       << (images ? strf("%.3f", r.number("seconds", 0.0) / static_cast<double>(images)) : "") << "</td></tr>";
  }
  os << "</table>";
  return os.str();
}

std::string two_stage_html(const JsonIn& t) {
  std::ostringstream os;
  os << "<table><tr><th></th><th>AUC melanoma</th><th>AUC SK</th><th>mean AUC</th><th>accuracy</th></tr>";
  for (const auto& [key, name] : std::vector<std::pair<std::string, std::string>>{
           {"stage1", "stage 1"}, {"stage2", "stage 2 (crops) alone"}, {"combined", "stages 1+2"}}) {
    if (!t.has(key.c_str())) continue;
    const JsonIn m = t.at(key.c_str());
    os << "<tr><td>" << name << "</td><td>" << num(m, "auc_melanoma") << "</td><td>"
       << num(m, "auc_seborrheic_keratosis") << "</td><td><b>" << num(m, "auc_mean") << "</b></td><td>"
       << num(m, "accuracy") << "</td></tr>";
  }
  os << "</table><p>Crops: bounding box of the " << esc(t.string("method", "cam")) << " map above "
     << strf("%g", t.number("crop_threshold", 0.0)) << " of its maximum, margin " << strf("%g", t.number("margin", 0.0))
     << ". Jia &amp; Shen report 0.821 &rarr; 0.857 on ISIC 2017 val with a pretrained VGG16-GAP.</p>";
  return os.str();
}

std::string roar_html(const JsonIn& r) {
  struct Cell {
    int64_t percent;
    double accuracy, auc_mean;
  };
  std::map<std::string, std::vector<Cell>> by_method;
  std::vector<int64_t> percents;
  if (r.has("percents"))
    for (const JsonIn& p : r.at("percents").items()) percents.push_back(p.integer(0, 100));
  for (const JsonIn& row : r.at("rows").items()) {
    // Each row is read whole before it is used: a row without its metrics (the reliability case
    // {"rows":[{"method":"cam"}]}) is an Error naming rows[i].metrics, not a read of a missing key.
    const std::string method = row.at("method").string();
    const JsonIn met = row.at("metrics");
    met.expect_object();
    by_method[method].push_back(
        {row.at("percent").integer(0, 100), met.number_or_nan("accuracy"), met.number_or_nan("auc_mean")});
  }
  auto cell = [](double v) { return std::isfinite(v) ? strf("%.3f", v) : std::string("&ndash;"); };
  std::ostringstream os;
  os << "<p>" << (r.boolean("keep", false) ? "Kept" : "Removed")
     << " the top t% pixels of each map, retrained from scratch; val accuracy / mean "
        "AUC.</p><table><tr><th>method</th>";
  for (int64_t p : percents) os << "<th>t=" << p << "%</th>";
  os << "</tr>";
  for (const auto& [m, cells] : by_method) {
    os << "<tr" << (m == "random" ? " class='baseline'" : "") << "><td>" << esc(m) << "</td>";
    for (const Cell& c : cells) os << "<td>" << cell(c.accuracy) << " / " << cell(c.auc_mean) << "</td>";
    os << "</tr>";
  }
  os << "</table>";
  std::vector<Series> s;
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e", "#7f7f7f"};
  size_t k = 0;
  for (const auto& [m, cells] : by_method) {
    Series se{m, m == "random" ? "#000000" : colours[k++ % 7], {}};
    for (const Cell& c : cells) se.points.push_back({static_cast<double>(c.percent), c.accuracy});
    s.push_back(se);
  }
  std::string chart = svg_chart("ROAR: val accuracy vs t (%)", s, 0, 1, true);
  // The chart's x label says "epoch"; relabel for this one.
  const size_t at = chart.rfind(">epoch<");
  if (at != std::string::npos) chart.replace(at, 7, ">t (%)<");
  return os.str() + chart;
}

// An optional section of the page from a JSON file beside the model: absent, nothing; present but
// unreadable or malformed, a visible note in the page (and on stderr) while the rest of the report
// is still written.
std::string optional_section(const std::string& kind, const std::string& path, const std::string& title) {
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) return "";
  try {
    return "<h2>" + title + "</h2>" + parse_app_json(kind, path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "report: section '%s' skipped: %s\n", kind.c_str(), e.what());
    return "<h2>" + title + "</h2><p class='warn'>Not shown: " + esc(e.what()) + "</p>";
  }
}

// The reliability diagrams eval drew (eval.json's reliability_png, and its .top-label.png sibling),
// inlined; the path is tried as written (relative to where eval ran), then beside eval.json. A
// missing or unreadable picture costs only itself, with a note.
std::string reliability_html(const std::string& eval_path) {
  std::string png;
  try {
    png = JsonIn(read_json(eval_path), eval_path, "").string("reliability_png", "");
  } catch (const std::exception&) {
    return "";  // the eval section already says why the file could not be read
  }
  if (png.empty()) return "";
  std::error_code ec;
  if (!fs::exists(png, ec)) png = (fs::path(eval_path).parent_path() / fs::path(png).filename()).string();
  std::string html;
  for (const auto& [path, caption] :
       {std::pair{png, "P(melanoma) (or the top label's probability when there is no melanoma class)"},
        std::pair{sibling(png, ".top-label.png"), "the top label"}}) {
    if (!fs::exists(path, ec)) continue;
    try {
      html += "<div class='cell'><img src='data:image/png;base64," + png_base64(io::load_image(path)) +
              "'><div class='cap'>" + caption + "</div></div>";
    } catch (const std::exception& e) {
      html += "<p class='warn'>Reliability diagram not shown: " + esc(e.what()) + "</p>";
    }
  }
  if (html.empty())
    return "<p class='warn'>eval.json names a reliability diagram, " + esc(png) + ", that is not there.</p>";
  return "<p>Reliability diagrams (blue: observed frequency in each probability bin; red tick: the bin's mean "
         "probability; grey: perfect calibration)</p><div class='row'>" +
         html + "</div>";
}

}  // namespace

std::string parse_app_json(const std::string& kind, const std::string& path) {
  if (kind == "curve") return curves_html(read_curve(path));
  const char* hints[][2] = {{"eval", "expected the output of `melanoma eval --json`"},
                            {"localize", "expected the output of `melanoma localize --json`"},
                            {"two_stage", "expected the output of `melanoma two-stage --json`"},
                            {"roar", "expected the output of `melanoma roar --json`"}};
  for (const auto& [k, hint] : hints) {
    if (kind != k) continue;
    const json j = read_json(path);
    const JsonIn in(j, path, hint);
    in.expect_object();
    if (kind == "eval") return metrics_html(in);
    if (kind == "localize") return localize_html(in);
    if (kind == "two_stage") return two_stage_html(in);
    return roar_html(in);
  }
  GLIMPSE_FAIL("parse_app_json: unknown kind '", kind, "'; known: curve, eval, localize, two_stage, roar");
}

void run_report(const ReportOptions& o) {
  const double t0 = now_s();
  GLIMPSE_CHECK(o.count >= 0, "report: --count must be >= 0, got ", o.count);
  GLIMPSE_CHECK(o.thumb >= 32 && o.thumb <= 1024, "report: --thumb must be in [32, 1024], got ", o.thumb);
  const std::vector<std::string> methods = parse_methods(o.methods);
  LoadedModel lm = load_model(o.model);
  Model& model = *lm.model;
  const ModelMeta& meta = lm.meta;
  const std::string data_dir = o.data.empty() ? meta.data : o.data;
  data::Dataset ds = open_dataset(data_dir, o.split);
  align_dataset_to_model(meta, ds, o.model);
  const std::string dir = fs::path(o.model).parent_path().string();
  auto beside = [&](const std::string& given, const std::string& name) {
    return !given.empty() ? given : (fs::path(dir.empty() ? "." : dir) / name).string();
  };
  // The JSON files beside the model: each read by parse_app_json (the fuzzed code path); a malformed
  // one costs its own section, with a note in the page, never the whole report.
  const std::string curve_html =
      optional_section("curve", !o.curve.empty() ? o.curve : sibling(o.model, ".curve.json"), "Training curves");
  const std::string loc_html =
      optional_section("localize", beside(o.localize_json, "localize.json"), "Localization against the expert masks");
  const std::string two_html =
      optional_section("two_stage", beside(o.two_stage_json, "two-stage.json"), "Two-stage (CAM crop, Jia &amp; Shen)");
  const std::string roar_html = optional_section("roar", beside(o.roar_json, "roar.json"), "Remove and retrain (ROAR)");
  std::string eval_html;
  const std::string eval_path = beside(o.eval_json, "eval.json");
  std::error_code ec;
  if (fs::exists(eval_path, ec)) {
    try {
      eval_html = parse_app_json("eval", eval_path) + reliability_html(eval_path);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "report: %s; scoring the split now instead\n", e.what());
      eval_html = "<p class='warn'>Not read: " + esc(e.what()) + "; the scores below were computed now.</p>";
    }
  }
  if (eval_html.empty() || eval_html.rfind("<p class='warn'>", 0) == 0) {  // cheap: score the split now
    const Predictions p = predict(model, ds, meta.size, meta.preprocess);
    const json now = to_json(classification_metrics(p.probs, p.labels, meta.class_names), meta.class_names);
    eval_html += metrics_html(JsonIn(now, "(scores computed now)"));
  }

  // Gallery images: round-robin over the classes, images with masks first.
  std::vector<std::vector<const data::Sample*>> per_class(static_cast<size_t>(meta.classes));
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& s : ds.samples)
      if ((pass == 0) == !s.mask_path.empty() && s.label >= 0 && s.label < meta.classes)
        per_class[static_cast<size_t>(s.label)].push_back(&s);
  std::vector<const data::Sample*> chosen;
  for (size_t k = 0; static_cast<int64_t>(chosen.size()) < o.count; ++k) {
    bool any = false;
    for (auto& v : per_class)
      if (k < v.size() && static_cast<int64_t>(chosen.size()) < o.count) {
        chosen.push_back(v[k]);
        any = true;
      }
    if (!any) break;
  }

  std::ostringstream g;
  ProgressBar bar("  gallery", std::max<int64_t>(1, static_cast<int64_t>(chosen.size())), "img", progress());
  const int64_t S = meta.size, T = o.thumb;
  for (const data::Sample* s : chosen) {
    const Tensor x = data::load_for_model(s->image_path, S, meta.preprocess);
    std::vector<float> probs;
    {
      NoGradGuard no_grad;
      probs = softmax_rows(model(x))[0];
    }
    const int64_t pred = std::max_element(probs.begin(), probs.end()) - probs.begin();
    const io::Image photo = io::resize_image(io::load_image(s->image_path), T, T);
    io::Mask mask;
    if (!s->mask_path.empty()) mask = io::resize_mask(io::load_mask(s->mask_path), T, T);
    io::Image base = photo;
    if (!mask.data.empty()) attr::draw_mask_outline(base, mask, attr::kGreen, 1);
    g << "<div class='row'><div class='cell'><img src='data:image/png;base64," << png_base64(base)
      << "'><div class='cap'><b>" << esc(s->id)
      << "</b><br>true: " << esc(meta.class_names[static_cast<size_t>(s->label)])
      << "<br>pred: " << esc(meta.class_names[static_cast<size_t>(pred)])
      << strf(" (%.2f)", probs[static_cast<size_t>(pred)]) << "</div></div>";
    for (const auto& m : methods) {
      std::string cell;
      try {
        attr::Options opt = method_options(S);
        opt.targets = {pred};
        const attr::AttributionMap am = attr::explain(m, model, x, opt);
        const Tensor map = attr::normalize_maps(attr::upsample_maps(am.map, T, T));
        io::Image ov = attr::overlay_heatmap(photo, map, attr::Colormap::Jet, 0.5f);
        if (!mask.data.empty()) attr::draw_mask_outline(ov, mask, attr::kGreen, 1);
        attr::RegionOptions ro;
        ro.max_regions = 1;
        ro.min_area = std::max<int64_t>(1, T * T / 200);
        attr::RegionStyle st;
        st.colour = attr::kWhite;
        attr::draw_regions(ov, attr::find_regions(map, ro), T, T, st);
        cell = "<img src='data:image/png;base64," + png_base64(ov) + "'>";
      } catch (const std::exception& e) {
        cell = "<div class='err'>" + esc(e.what()).substr(0, 200) + "</div>";
      }
      g << "<div class='cell'>" << cell << "<div class='cap'>" << esc(m) << "</div></div>";
    }
    g << "</div>\n";
    bar.step(1);
  }
  bar.finish();

  std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::localtime(&now));
  std::ostringstream h;
  h << "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" << esc(o.title) << "</title><style>"
    << "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1600px}"
    << "h1{font-size:24px}h2{font-size:19px;margin-top:28px;border-bottom:1px solid #ddd}"
    << "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;"
    << "font-size:13px}th{background:#f0f0f0}td:first-child{text-align:left}"
    << "tr.baseline td{background:#fff6e0;font-style:italic}tr.best td{background:#e6f5e6;font-weight:bold}"
    << "td.diag{background:#e6f5e6}.gallery{overflow-x:auto}.row{display:flex;flex-wrap:nowrap;gap:4px;margin-bottom:"
       "10px}"
    << ".cell{width:" << T << "px;flex:none;font-size:11px;text-align:center}.cell img{width:" << T << "px;height:" << T
    << "px;image-rendering:auto}.cap{margin-top:2px}.err{width:" << T << "px;height:" << T
    << "px;background:#fee;font-size:10px;overflow:hidden}.chart{margin-right:16px}.meta{color:#555;font-size:13px}"
    << ".warn{background:#fee;padding:4px 8px;font-size:13px}"
    << "</style></head><body>";
  h << "<h1>" << esc(o.title) << "</h1><p class='meta'>Model <code>" << esc(o.model) << "</code>: " << esc(meta.arch)
    << " at " << meta.size << " px, " << meta.epoch << " epoch(s), " << esc(meta.optimizer) << " (lr " << meta.lr
    << ", " << esc(meta.schedule) << "); trained on <code>" << esc(meta.data) << "</code>. Evaluated on <code>"
    << esc(data_dir) << "</code> [" << esc(o.split) << "]. Generated " << when << " by glimpse.</p>";
  if (meta.mask_guidance > 0)
    h << "<p class='meta'><b>Mask-guided model</b> (<code>--mask-guidance " << strf("%g", meta.mask_guidance)
      << "</code>): its CAM was trained to lie inside the expert masks of the training photos, so the CAM-family "
         "maps below show what it learned to look at, not where an unguided network would look.</p>";
  h << "<h2>Classification (ISIC 2017 scoring)</h2>" << eval_html
    << "<p class='meta'>ISIC 2017 reference (val, mean AUC of melanoma and SK): Jia &amp; Shen 0.821 (stage 1) and "
       "0.857 (CAM crop stage 2) with a pretrained VGG16-GAP; the challenge's scoring is described by Codella et al. "
       "2017.</p>";
  if (!curve_html.empty()) h << "<div>" << curve_html << "</div>";
  h << loc_html << two_html << roar_html;
  h << "<h2>Gallery</h2><p class='meta'>First column: the photo with the expert mask outlined in green. Then each "
       "method's map for the predicted class (jet: blue low, red high) over the photo, the mask outline in green and "
       "the map's strongest region circled in white.</p>"
    << "<div class='gallery'>" << g.str() << "</div></body></html>\n";
  write_text(o.out, h.str());
  std::printf("report: %s (%zu gallery images x %zu methods, %.1f KiB, %.1fs)\n", o.out.c_str(), chosen.size(),
              methods.size(), static_cast<double>(h.str().size()) / 1024, seconds_since(t0));
  std::fflush(stdout);
}

}  // namespace mel
