// `melanoma demo`: the whole story in one command -- synthetic lesions (or an ISIC folder), a small
// GAP network trained on them, its ISIC 2017 scores, every attribution method scored against the
// lesion masks, a few photos explained with their regions circled, and one HTML report.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "serve.h"

namespace fs = std::filesystem;

namespace mel {

void run_demo(const DemoOptions& o) {
  const double t0 = now_s();
  GLIMPSE_CHECK(!o.out.empty(), "demo: no output directory (--out DIR)");
  ensure_dir(o.out);
  std::vector<std::pair<std::string, double>> times;
  auto step = [&](const char* name, double since) { times.push_back({name, seconds_since(since)}); };

  std::string data_dir = o.data;
  double t = now_s();
  if (data_dir.empty()) {
    std::printf("\n== 1. synthetic data ==\n");
    SynthOptions s;
    s.out = o.out + "/data";
    s.count = o.count;
    s.size = o.synth_size;
    s.seed = o.seed;
    run_synth(s);
    data_dir = s.out;
    step("synth", t);
  } else {
    std::printf("\n== 1. data: %s ==\n", data_dir.c_str());
  }

  std::printf("\n== 2. train ==\n");
  std::fflush(stdout);
  t = now_s();
  TrainOptions to;
  to.data = data_dir;
  to.train_split = o.train_split;
  to.val_split = o.split;
  to.arch = o.arch;
  to.size = o.size;
  to.epochs = o.epochs;
  to.batch = o.batch;
  to.preprocess = o.preprocess;
  to.vignette = o.vignette;
  to.stickers = o.stickers;
  to.mask_guidance = o.mask_guidance;
  to.seed = o.seed;
  to.out = o.out + "/model.safetensors";
  const TrainResult tr = train_model(to);
  step("train", t);

  std::printf("\n== 3. evaluate ==\n");
  std::fflush(stdout);
  t = now_s();
  EvalOptions eo;
  eo.model = to.out;
  eo.data = data_dir;
  eo.split = o.split;
  eo.json = o.out + "/eval.json";
  const EvalResult er = run_eval(eo);
  step("eval", t);

  std::printf("\n== 4. localize: maps vs lesion masks ==\n");
  std::fflush(stdout);
  t = now_s();
  LocalizeOptions lo;
  lo.model = to.out;
  lo.data = data_dir;
  lo.split = o.split;
  std::string methods = o.methods;
  if (methods == "fast") {
    methods.clear();
    for (const auto& m : default_methods(true)) methods += (methods.empty() ? "" : ",") + m;
  }
  lo.methods = methods;
  lo.limit = o.localize_limit;
  lo.json = o.out + "/localize.json";
  const LocalizeResult lr = run_localize(lo);
  step("localize", t);

  std::printf("\n== 5. explain ==\n");
  std::fflush(stdout);
  t = now_s();
  const glimpse::data::Dataset val = open_dataset(data_dir, o.split);
  std::vector<const glimpse::data::Sample*> picks;
  for (int64_t c = 0; static_cast<int64_t>(picks.size()) < o.explain_count && c < 64; ++c)
    for (const auto& s : val.samples)  // one image per class, melanoma first
      if (s.label == (c + 1) % 3 && std::find(picks.begin(), picks.end(), &s) == picks.end()) {
        picks.push_back(&s);
        break;
      }
  std::vector<std::string> explained;
  for (const auto* s : picks) {
    ExplainOptions xo;
    xo.model = to.out;
    xo.image = s->image_path;
    xo.method = "gradcam";
    xo.out = o.out + "/explain/" + s->id + "-gradcam.png";
    xo.json = o.out + "/explain/" + s->id + "-gradcam.json";
    run_explain(xo);
    explained.push_back(xo.out);
  }
  step("explain", t);

  std::printf("\n== 6. report ==\n");
  std::fflush(stdout);
  t = now_s();
  ReportOptions ro;
  ro.model = to.out;
  ro.data = data_dir;
  ro.split = o.split;
  ro.methods = methods;
  ro.count = o.gallery;
  ro.out = o.out + "/report.html";
  ro.eval_json = eo.json;
  ro.localize_json = lo.json;
  ro.title = o.data.empty() ? "glimpse melanoma demo (synthetic lesions)" : "glimpse melanoma demo (" + o.data + ")";
  run_report(ro);
  step("report", t);

  const double total = seconds_since(t0);
  const LocalizeRow* base = nullptr;
  const LocalizeRow* best = nullptr;
  for (const auto& r : lr.rows) {
    if (!r.error.empty()) continue;
    if (r.method == "centred-gaussian")
      base = &r;
    else if (!best || r.dice_best > best->dice_best)
      best = &r;
  }
  std::printf("\n== summary ==\n");
  std::printf("classifier: %s at %lld px, %d epochs; val mean AUC %.3f (melanoma %.3f, SK %.3f), accuracy %.3f\n",
              o.arch.c_str(), static_cast<long long>(o.size), o.epochs, er.metrics.auc_mean, er.metrics.auc_melanoma,
              er.metrics.auc_keratosis, er.metrics.accuracy);
  if (best && base)
    std::printf(
        "localization: best method %s, Dice %.3f / energy %.3f / pointing %.3f vs centred Gaussian %.3f / "
        "%.3f / %.3f\n",
        best->method.c_str(), best->dice_best, best->energy, best->pointing, base->dice_best, base->energy,
        base->pointing);
  std::printf("time:");
  for (const auto& [name, s] : times) std::printf(" %s %.1fs,", name.c_str(), s);
  std::printf(" total %.1fs\n", total);
  std::printf("files in %s:\n", o.out.c_str());
  if (o.data.empty()) std::printf("  data/                 the synthetic set (images/, masks/, labels.csv)\n");
  std::printf("  model.safetensors     the trained model (+ model.curve.json, the training curve)\n");
  std::printf("  eval.json             ISIC 2017 scores, confusion matrix, per-image probabilities\n");
  std::printf("  localize.json         the localization table\n");
  for (const auto& e : explained) std::printf("  %s (+ .json)\n", fs::relative(e, o.out).string().c_str());
  std::printf("  report.html           everything in one page: open %s\n", fs::absolute(ro.out).string().c_str());
  print_serve_command(fs::absolute(to.out).string(), fs::absolute(data_dir).string());
  std::fflush(stdout);
  (void)tr;
}

}  // namespace mel
