// `melanoma sanity`: the cascading model-randomization test of Adebayo et al., "Sanity Checks for
// Saliency Maps" (NeurIPS 2018). A map that explains the model must change when the model's weights
// are destroyed. Starting from the top (the classifier), the parameterized layers are re-initialized
// one more at a time -- step k has the top k layers random, the rest trained -- and after each
// step every method's maps of the same images (for the trained model's predicted classes) are
// compared with the trained model's maps by Spearman rank correlation and SSIM
// (attribution/similarity.h), averaged over the images.
//
// Re-initialization: every parameter tensor of the layer is replaced by Gaussian noise with that
// tensor's own mean and standard deviation (seeded), so activations keep their scale and only the
// learned arrangement is lost. Batch-norm running statistics are kept.
//
// A method is flagged when, with EVERY layer re-initialized, its maps still rank the pixels like
// the trained model's (mean Spearman >= 0.5): its maps then show the image or the architecture
// rather than what the network learned.
//
// Data randomization (--data-randomization), the paper's second test: a copy of the architecture is
// trained on the same training images with their labels permuted (train_model's permute_labels:
// same arch, size, optimizer, learning rate, schedule, preprocessing and initial seed as the
// checkpoint records, so the labels are the one difference; from scratch, without mask guidance).
// Such a network can only memorize, so a map that explains what the network learned must differ
// from the trained model's; the same targets (the trained model's predictions) are explained, and a
// method is flagged when its maps still have mean Spearman >= the same threshold.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <unistd.h>

#include "attribution/attribution.h"
#include "attribution/render.h"
#include "attribution/similarity.h"
#include "commands.h"
#include "core/error.h"
#include "core/rng.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {
namespace {

// The modules that own parameters directly, top (last registered) first, with their dotted names.
std::vector<std::pair<std::string, Module*>> layers_top_down(Model& model) {
  std::vector<std::pair<std::string, Module*>> out;
  for (auto& [name, m] : model.named_modules()) {
    if (name.empty() || !m->children().empty()) continue;  // leaves only
    if (!m->parameters().empty()) out.emplace_back(name, m);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

void reinitialize(Module& m, Rng& rng) {
  for (Tensor p : m.parameters()) {
    Tensor c = p.to(Device::cpu()).contiguous();
    double mean = 0, sq = 0;
    const int64_t n = c.numel();
    for (int64_t i = 0; i < n; ++i) mean += c.data()[i];
    mean /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) sq += (c.data()[i] - mean) * (c.data()[i] - mean);
    const double sd = n > 1 ? std::sqrt(sq / static_cast<double>(n - 1)) : 0.0;
    Tensor fresh = Tensor::empty(c.shape());
    for (int64_t i = 0; i < n; ++i) fresh.data()[i] = rng.normal(static_cast<float>(mean), static_cast<float>(sd));
    p.copy_from(fresh);
  }
}

// targets empty: the predicted classes, returned in `targets`.
Tensor maps_of(Model& model, const std::string& method, const Tensor& x, std::vector<int64_t>& targets, int64_t size,
               uint64_t seed) {
  attr::Options opt = method_options(size);
  opt.targets = targets;
  opt.seed = seed;
  attr::AttributionMap am = attr::explain(method, model, x, opt);
  targets = am.targets;
  return am.map.contiguous();
}

double nan_mean(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (!std::isnan(x)) {
      s += x;
      ++n;
    }
  return n ? s / n : std::numeric_limits<double>::quiet_NaN();
}

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Mean Spearman and SSIM over the images of two [N, H, W] map batches, appended to row.
void compare(const Tensor& a, const Tensor& b, SanityRow& row) {
  std::vector<double> rho, ss;
  for (int64_t i = 0; i < a.size(0); ++i) {
    rho.push_back(attr::spearman_correlation(a.slice(i, i + 1), b.slice(i, i + 1)));
    ss.push_back(attr::ssim(a.slice(i, i + 1), b.slice(i, i + 1)));
  }
  row.spearman.push_back(nan_mean(rho));
  row.ssim.push_back(nan_mean(ss));
}

// The data-randomization test (above): trains the random-label copy, compares its maps of x for the
// trained model's `targets` with `trained`; `first` gets each method's map of image 0.
DataRandomizationResult data_randomization(const SanityOptions& o, const ModelMeta& meta,
                                           const std::vector<std::string>& methods, const Tensor& x,
                                           const std::vector<int64_t>& targets, const std::vector<Tensor>& trained,
                                           std::vector<Tensor>& first) {
  TrainOptions t;
  t.data = o.data;
  t.train_split = o.train_split;
  t.val_split.clear();
  t.arch = meta.arch;
  t.size = meta.size;
  t.epochs = o.data_epochs > 0 ? o.data_epochs : static_cast<int>(std::max<int64_t>(1, meta.epochs));
  t.batch = o.data_batch;
  if (!meta.optimizer.empty()) t.optimizer = meta.optimizer;
  if (!meta.schedule.empty()) t.schedule = meta.schedule;
  t.lr = static_cast<float>(meta.lr);
  t.preprocess = meta.preprocess;
  t.seed = meta.seed;
  t.permute_labels = true;
  // Random labels can only be memorized, which is the point (Adebayo et al. train to > 95% training
  // accuracy); augmentation shows each photo differently every epoch and fights memorization.
  t.augment = false;
  t.quiet = true;
  t.label = "random labels";
  t.out = (fs::temp_directory_path() / strf("glimpse-sanity-%d-random-labels.safetensors", static_cast<int>(getpid())))
              .string();
  TrainResult tr = train_model(t);
  std::error_code ec;
  fs::remove(tr.checkpoint, ec);
  fs::remove(tr.curve, ec);
  GLIMPSE_CHECK(tr.meta.classes == meta.classes, "sanity: split '", o.train_split, "' of ", o.data, " has ",
                tr.meta.classes, " classes; the model has ", meta.classes);
  Model& random = *tr.model;
  random.eval();

  DataRandomizationResult d;
  d.run = true;
  d.epochs = t.epochs;
  d.labels_changed = tr.labels_changed;
  d.train_accuracy = tr.history.empty() ? 0.0 : tr.history.back().train_accuracy;
  for (size_t k = 0; k < methods.size(); ++k) {
    std::vector<int64_t> same = targets;
    const Tensor maps = maps_of(random, methods[k], x, same, meta.size, o.seed);
    SanityRow row;
    row.method = methods[k];
    compare(trained[k], maps, row);
    row.flagged = !std::isnan(row.spearman[0]) && row.spearman[0] >= o.flag_spearman;
    d.rows.push_back(row);
    first.push_back(maps.slice(0, 1));
  }
  return d;
}

}  // namespace

SanityResult run_sanity(const SanityOptions& o) {
  const double t0 = now_s();
  GLIMPSE_CHECK(o.limit >= 1, "sanity: --limit must be >= 1, got ", o.limit);
  const std::vector<std::string> methods = parse_methods(o.methods);
  LoadedModel lm = load_model(o.model);
  Model& model = *lm.model;
  const int64_t S = lm.meta.size;
  data::Dataset ds = open_dataset(o.data, o.split);
  align_dataset_to_model(lm.meta, ds, o.model);
  if (static_cast<int64_t>(ds.samples.size()) > o.limit) ds.samples.resize(static_cast<size_t>(o.limit));
  // The images, in one batch.
  data::DataLoader loader(ds, inference_loader(S, o.limit, false, lm.meta.preprocess));
  loader.start_epoch(0);
  data::Batch b;
  GLIMPSE_CHECK(loader.next(b), "sanity: no image of ", o.data, " [", o.split, "] could be read");
  const Tensor x = b.images;
  std::vector<int64_t> targets;  // the trained model's predicted classes, kept for every step
  const int64_t N = x.size(0);

  SanityResult r;
  r.images = N;
  const auto layers = layers_top_down(model);
  GLIMPSE_CHECK(!layers.empty(), "sanity: ", o.model, " has no layer with parameters");
  std::vector<Tensor> trained;
  for (const auto& m : methods) trained.push_back(maps_of(model, m, x, targets, S, o.seed));
  for (const auto& [name, mod] : layers) r.layers.push_back(name);
  r.rows.resize(methods.size());
  for (size_t k = 0; k < methods.size(); ++k) r.rows[k].method = methods[k];
  // Figure: per method, image 0's map trained and after each step.
  std::vector<std::vector<Tensor>> strip(methods.size());
  for (size_t k = 0; k < methods.size(); ++k) strip[k].push_back(trained[k].slice(0, 1));

  // Data randomization first: the cascade below destroys `model` layer by layer.
  std::vector<Tensor> random_labels_maps;
  if (o.data_randomization) r.data = data_randomization(o, lm.meta, methods, x, targets, trained, random_labels_maps);

  Rng rng(o.seed);
  ProgressBar bar("  sanity", static_cast<int64_t>(layers.size()), "layer", progress());
  for (const auto& [name, mod] : layers) {
    reinitialize(*mod, rng);
    for (size_t k = 0; k < methods.size(); ++k) {
      const Tensor now = maps_of(model, methods[k], x, targets, S, o.seed);
      compare(trained[k], now, r.rows[k]);
      strip[k].push_back(now.slice(0, 1));
    }
    bar.step(1);
  }
  bar.finish();
  for (auto& row : r.rows) {
    const double last = row.spearman.back();
    row.flagged = !std::isnan(last) && last >= o.flag_spearman;
  }
  r.seconds = seconds_since(t0);

  std::printf(
      "sanity: %s (%s, %lld px), %lld image(s) of %s [%s]; layers re-initialized cumulatively from the top\n"
      "  mean Spearman rank correlation / SSIM of each method's maps with the trained model's:\n  %-22s",
      o.model.c_str(), lm.meta.arch.c_str(), static_cast<long long>(S), static_cast<long long>(N), o.data.c_str(),
      o.split.c_str(), "method");
  for (size_t l = 0; l < r.layers.size(); ++l) std::printf(" %13s", ("+" + r.layers[l]).substr(0, 13).c_str());
  std::printf("\n");
  for (const auto& row : r.rows) {
    std::printf("  %-22s", row.method.c_str());
    for (size_t l = 0; l < row.spearman.size(); ++l)
      std::printf("   %5s/%5.2f", std::isnan(row.spearman[l]) ? "const" : strf("%.2f", row.spearman[l]).c_str(),
                  row.ssim[l]);
    std::printf("%s\n", row.flagged ? "  <- FLAG: barely changes with every layer random" : "");
  }
  std::printf(
      "  (const: every map of that step was constant, e.g. all cut to 0 by a ReLU -- no ranking left, which\n"
      "  is a change; flag: Spearman >= %.2f with every layer re-initialized; %.1fs)\n",
      o.flag_spearman, r.seconds);
  if (r.data.run) {
    std::printf(
        "  data randomization: %s retrained for %d epoch(s) on split '%s' of %s with the labels permuted\n"
        "  (%.0f%% changed); its accuracy on the permuted labels after the last epoch: %.1f%%.\n"
        "  Its maps against the trained model's:\n  %-22s  Spearman   SSIM\n",
        lm.meta.arch.c_str(), r.data.epochs, o.train_split.c_str(), o.data.c_str(), 100 * r.data.labels_changed,
        100 * r.data.train_accuracy, "method");
    for (const auto& row : r.data.rows)
      std::printf("  %-22s  %8s  %5.2f%s\n", row.method.c_str(),
                  std::isnan(row.spearman[0]) ? "const" : strf("%.2f", row.spearman[0]).c_str(), row.ssim[0],
                  row.flagged ? "  <- FLAG: barely changes when the labels are random" : "");
    if (r.data.train_accuracy < 0.9)
      std::printf(
          "  note: the copy has not memorized its random labels (%.1f%%; Adebayo et al. trained to > 95%%), so it\n"
          "  is compared as a network that learned little; more --data-randomization-epochs get closer to the paper\n",
          100 * r.data.train_accuracy);
  }
  std::fflush(stdout);

  if (!o.figure.empty()) {
    // One row per method: the trained map, then one map per step, then (data randomization) the
    // random-label model's map; tiles of `tile` px, 2 px apart.
    for (size_t k = 0; k < random_labels_maps.size(); ++k) strip[k].push_back(random_labels_maps[k]);
    const int64_t tile = std::max<int64_t>(S, 48), gap = 2,
                  cols = static_cast<int64_t>(layers.size()) + 1 + (r.data.run ? 1 : 0);
    io::Image fig(cols * (tile + gap), static_cast<int64_t>(methods.size()) * (tile + gap), 3, 255);
    for (size_t k = 0; k < methods.size(); ++k)
      for (int64_t c = 0; c < cols; ++c) {
        const io::Image t = io::resize_image(attr::colorize(strip[k][static_cast<size_t>(c)]), tile, tile);
        for (int64_t y = 0; y < tile; ++y)
          std::copy(t.at(0, y), t.at(0, y) + tile * 3,
                    fig.at(c * (tile + gap), static_cast<int64_t>(k) * (tile + gap) + y));
      }
    if (const fs::path p(o.figure); p.has_parent_path()) ensure_dir(p.parent_path().string());
    io::save_png(o.figure, fig);
  }
  if (!o.json.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : r.rows) {
      nlohmann::json sp = nlohmann::json::array(), ss = nlohmann::json::array();
      for (double v : row.spearman) sp.push_back(num(v));
      for (double v : row.ssim) ss.push_back(num(v));
      rows.push_back({{"method", row.method}, {"spearman", sp}, {"ssim", ss}, {"flagged", row.flagged}});
    }
    nlohmann::json data_rand = nullptr;
    if (r.data.run) {
      nlohmann::json drows = nlohmann::json::array();
      for (const auto& row : r.data.rows)
        drows.push_back({{"method", row.method},
                         {"spearman", num(row.spearman[0])},
                         {"ssim", num(row.ssim[0])},
                         {"flagged", row.flagged}});
      data_rand = {{"train_split", o.train_split},
                   {"epochs", r.data.epochs},
                   {"labels_changed", r.data.labels_changed},
                   {"train_accuracy_permuted", r.data.train_accuracy},
                   {"training",
                    "the checkpoint's arch, size, optimizer, lr, schedule, preprocessing and seed; labels "
                    "permuted (seeded); from scratch, no mask guidance, no validation"},
                   {"rows", drows}};
    }
    write_json(o.json, {{"model", o.model},
                        {"data", o.data},
                        {"split", o.split},
                        {"images", r.images},
                        {"layers_randomized_in_order", r.layers},
                        {"reinitialization",
                         "each parameter tensor: Gaussian with its own mean and std, seeded; "
                         "cumulative from the top"},
                        {"similarity",
                         "mean over images of Spearman rank correlation and SSIM (7x7 uniform "
                         "windows, L = 1) between normalized maps"},
                        {"flag_spearman", o.flag_spearman},
                        {"spearman_null", "every map of that step was constant (no ranking to compare)"},
                        {"seed", o.seed},
                        {"rows", rows},
                        {"data_randomization", data_rand},
                        {"seconds", r.seconds}});
  }
  return r;
}

}  // namespace mel
