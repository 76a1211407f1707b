// `melanoma roar`: remove and retrain (Hooker et al. 2019), the heatmap evaluation of the Grad-CAM
// tumour-segmentation study. A trained model ranks the pixels of every train and val image by a
// method's map (for its predicted class); the top t% are replaced by the image's mean colour
// (attribution/metrics.h: mask_top_fraction); a fresh network of the same kind is trained on the
// degraded train split and scored on the degraded val split. A map that finds what the classifier
// needs makes accuracy and AUC fall faster with t than the random-map control does. With --keep
// the top t% are kept and the rest removed (retraining on the heatmap-filtered images).
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "attribution/attribution.h"
#include "attribution/metrics.h"
#include "autograd/functions.h"
#include "commands.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {
namespace {

struct SplitImages {
  std::string split;
  std::vector<std::string> ids;
  std::vector<int64_t> labels;
  Tensor images;  // [N, 3, S, S] in [0, 1]
  std::vector<int64_t> predicted;
};

SplitImages load_split(Model& model, const ModelMeta& meta, const data::Dataset& ds, const std::string& split) {
  const int64_t S = meta.size, N = static_cast<int64_t>(ds.size());
  SplitImages s;
  s.split = split;
  s.images = Tensor::empty({N, 3, S, S});
  data::DataLoader loader(ds, inference_loader(S, 32, false, meta.preprocess));
  loader.start_epoch(0);
  data::Batch b;
  int64_t at = 0;
  NoGradGuard no_grad;
  model.eval();
  while (loader.next(b)) {
    const std::vector<int64_t> pred = argmax_rows(model(b.images));
    for (size_t i = 0; i < b.ids.size(); ++i, ++at) {
      GLIMPSE_CHECK(at < N, "roar: the loader returned more images than ", ds.root, " [", split, "] holds");
      s.images.slice(at, at + 1)
          .copy_from(data::denormalize(b.images.slice(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1)));
      s.ids.push_back(b.ids[i]);
      s.labels.push_back(b.labels[i]);
      s.predicted.push_back(pred[i]);
    }
  }
  if (at < N) s.images = s.images.slice(0, at).clone();
  return s;
}

// The method's maps [N, S, S] of a split, for the predicted classes.
Tensor split_maps(Model& model, const std::string& method, const ModelMeta& meta, const SplitImages& s,
                  const data::Dataset& ds, uint64_t seed) {
  const int64_t N = s.images.size(0), S = meta.size;
  if (method == "random") return attr::random_maps(N, S, S, seed);
  Tensor maps = Tensor::empty({N, S, S});
  data::DataLoader loader(ds, inference_loader(S, 32, false, meta.preprocess));
  loader.start_epoch(0);
  data::Batch b;
  int64_t at = 0;
  ProgressBar bar("  maps " + method + " " + s.split, N, "img", progress());
  while (loader.next(b)) {
    const int64_t B = static_cast<int64_t>(b.ids.size());
    for (int64_t i = 0; i < B; ++i)
      GLIMPSE_CHECK(at + i < N && b.ids[static_cast<size_t>(i)] == s.ids[static_cast<size_t>(at + i)],
                    "roar: the loader changed the image order between two passes over ", ds.root);
    attr::Options opt = method_options(S);
    opt.targets.assign(s.predicted.begin() + at, s.predicted.begin() + at + B);
    opt.seed = seed;
    const Tensor m = attr::explain(method, model, b.images, opt).map.contiguous();
    maps.slice(at, at + B).copy_from(m);
    at += B;
    bar.step(B);
  }
  bar.finish();
  return maps;
}

void write_split(const std::string& dir, const SplitImages& s, const Tensor& images,
                 const std::vector<std::string>& names, std::string& csv) {
  for (size_t i = 0; i < s.ids.size(); ++i) {
    const int64_t k = static_cast<int64_t>(i);
    io::save_png(dir + "/images/" + s.ids[i] + ".png", images.slice(k, k + 1));
    csv += csv_field(s.split) + "," + csv_field(s.ids[i]) + "," + isic_label_columns(names, s.labels[i]) + "\n";
  }
}

}  // namespace

RoarResult run_roar(const RoarOptions& o) {
  const double t0 = now_s();
  GLIMPSE_CHECK(!o.percents.empty(), "roar: no percentages given (--percents 10,30,50,70,90)");
  for (int p : o.percents) GLIMPSE_CHECK(p > 0 && p < 100, "roar: each percentage must be in (0, 100), got ", p);
  std::vector<std::string> methods = parse_methods(o.methods);
  if (o.random_control) methods.push_back("random");
  ensure_dir(o.out);

  TrainOptions start = o.train;
  start.out = o.out + "/model.safetensors";
  const StartingModel sm = load_or_train(o.model, start, "roar");
  const std::shared_ptr<Model>& model = sm.model;
  const ModelMeta& meta = sm.meta;
  const std::string& data_dir = sm.data_dir;
  data::Dataset train_ds = open_dataset(data_dir, o.train.train_split);
  data::Dataset val_ds = open_dataset(data_dir, o.train.val_split);
  align_dataset_to_model(meta, train_ds, o.model.empty() ? start.out : o.model);
  align_dataset_to_model(meta, val_ds, o.model.empty() ? start.out : o.model);
  RoarResult res;
  {
    const Predictions p = predict(*model, val_ds, meta.size, meta.preprocess, "  val");
    res.original = classification_metrics(p.probs, p.labels, meta.class_names);
  }
  const SplitImages tr = load_split(*model, meta, train_ds, o.train.train_split);
  const SplitImages va = load_split(*model, meta, val_ds, o.train.val_split);

  std::printf(
      "roar: %s on %s, %lld train / %lld val images at %lld px; %s the top t%% of each map, retrain "
      "%d epoch(s) each\n  original model: val acc %.3f, AUC mean %.3f\n",
      meta.arch.c_str(), data_dir.c_str(), static_cast<long long>(tr.ids.size()), static_cast<long long>(va.ids.size()),
      static_cast<long long>(meta.size), o.keep ? "keep" : "remove", o.train.epochs, res.original.accuracy,
      res.original.auc_mean);
  std::printf("  %-20s %5s %8s %8s %8s %8s\n", "method", "t%", "acc", "AUC mel", "AUC sk", "mean");
  std::fflush(stdout);
  for (const std::string& method : methods) {
    const Tensor maps_tr = split_maps(*model, method, meta, tr, train_ds, o.train.seed + 1);
    const Tensor maps_va = split_maps(*model, method, meta, va, val_ds, o.train.seed + 2);
    for (int p : o.percents) {
      const std::string dir = o.out + "/data-" + method + "-" + std::to_string(p);
      ensure_dir(dir + "/images");
      {
        std::string csv = "split,image_id,melanoma,seborrheic_keratosis\n";
        write_split(dir, tr, attr::mask_top_fraction(tr.images, maps_tr, p / 100.f, o.keep), meta.class_names, csv);
        write_split(dir, va, attr::mask_top_fraction(va.images, maps_va, p / 100.f, o.keep), meta.class_names, csv);
        write_text(dir + "/labels.csv", csv);  // atomic and checked
      }
      TrainOptions t = o.train;
      t.data = dir;
      t.synthetic = 0;
      t.resume.clear();
      t.arch = meta.arch;
      t.size = meta.size;
      t.preprocess = {};  // the images written above are already preprocessed
      t.out = o.out + "/" + method + "-" + std::to_string(p) + ".safetensors";
      t.quiet = true;
      t.label = "  " + method + " " + std::to_string(p) + "%";
      const TrainResult r = train_model(t);
      RoarRow row{method, p, r.val};
      res.rows.push_back(row);
      std::printf("  %-20s %5d %8.3f %8.3f %8.3f %8.3f  (%.0fs)\n", method.c_str(), p, r.val.accuracy,
                  r.val.auc_melanoma, r.val.auc_keratosis, r.val.auc_mean, r.seconds);
      std::fflush(stdout);
      std::error_code ec;
      fs::remove_all(dir, ec);  // the degraded copies are large and cheap to remake
      fs::remove(t.out, ec);
      fs::remove(sibling(t.out, ".curve.json"), ec);
    }
  }
  res.seconds = seconds_since(t0);
  std::printf("roar: done in %.1fs\n", res.seconds);
  if (!o.json.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : res.rows)
      // Each row's model was retrained on the ISIC layout written above: the ISIC class order.
      rows.push_back({{"method", r.method}, {"percent", r.percent}, {"metrics", to_json(r.metrics, class_names())}});
    write_json(o.json, {{"data", data_dir},
                        {"keep", o.keep},
                        {"epochs", o.train.epochs},
                        {"percents", o.percents},
                        {"original", to_json(res.original, meta.class_names)},
                        {"rows", rows},
                        {"seconds", res.seconds}});
  }
  return res;
}

}  // namespace mel
