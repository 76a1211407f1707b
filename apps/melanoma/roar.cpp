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
#include "parcel.h"
#include "shared_model.h"

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

// One retraining: the degraded copy of the data for (method, p), a fresh network trained on it as
// one process, the copy and the network removed again. Its scratch files lie under o.out on the rank
// that runs it.
RoarRow retrain(const RoarOptions& o, const ModelMeta& meta, const std::string& method, int p, const SplitImages& tr,
                const SplitImages& va, const Tensor& maps_tr, const Tensor& maps_va, double& seconds) {
  const std::string dir = o.out + "/data-" + method + "-" + std::to_string(p);
  ensure_dir(dir + "/images");
  {
    std::string csv = "split,image_id,melanoma,seborrheic_keratosis\n";
    write_split(dir, tr, attr::mask_top_fraction(tr.images, maps_tr, p / 100.f, o.keep), meta.class_names, csv);
    write_split(dir, va, attr::mask_top_fraction(va.images, maps_va, p / 100.f, o.keep), meta.class_names, csv);
    write_text(dir + "/labels.csv", csv);  // atomic and checked
  }
  TrainOptions t = retraining(o.train, meta, dir, o.out + "/" + method + "-" + std::to_string(p) + ".safetensors");
  t.quiet = true;
  t.label = "  " + method + " " + std::to_string(p) + "%";
  const TrainResult r = train_model(t);
  seconds = r.seconds;
  std::error_code ec;
  fs::remove_all(dir, ec);  // the degraded copies are large and cheap to remake
  fs::remove(t.out, ec);
  fs::remove(sibling(t.out, ".curve.json"), ec);
  return {method, p, r.val};
}

void print_row(const RoarRow& row, double seconds) {
  std::printf("  %-20s %5d %8.3f %8.3f %8.3f %8.3f  (%.0fs)\n", row.method.c_str(), row.percent, row.metrics.accuracy,
              row.metrics.auc_melanoma, row.metrics.auc_keratosis, row.metrics.auc_mean, seconds);
  std::fflush(stdout);
}

}  // namespace

RoarResult run_roar(const RoarOptions& o) {
  const double t0 = now_s();
  GLIMPSE_CHECK(!o.percents.empty(), "roar: no percentages given (--percents 10,30,50,70,90)");
  for (int p : o.percents) GLIMPSE_CHECK(p > 0 && p < 100, "roar: each percentage must be in (0, 100), got ", p);
  std::vector<std::string> methods = parse_methods(o.methods);
  if (o.random_control) methods.push_back("random");
  dist::Communicator& comm = o.comm ? *o.comm : dist::local();
  const bool leader = comm.rank() == 0;
  ensure_dir(o.out);  // on every rank: its retrainings' scratch files go there

  TrainOptions start = o.train;
  start.out = o.out + "/model.safetensors";
  const StartingModel sm = load_or_train(o.model, start, "roar", comm);
  const std::shared_ptr<Model>& model = sm.model;
  const ModelMeta& meta = sm.meta;
  const std::string& data_dir = sm.data_dir;
  const data::Dataset &train_ds = sm.train, &val_ds = sm.val;
  RoarResult res;
  {
    // The original model's val scores: the images split over the ranks as eval splits them.
    data::Dataset part = val_ds;
    keep_shard(part, comm, static_cast<size_t>(kPredictBatch));
    const Predictions mine =
        part.samples.empty() ? Predictions() : predict(*model, part, meta.size, meta.preprocess, "  val");
    const Predictions p = gather_predictions(comm, mine);
    if (leader) res.original = classification_metrics(p.probs, p.labels, meta.class_names);
  }
  // Every rank masks every image (the retrainings need whole splits), so each keeps both in memory.
  const SplitImages tr = load_split(*model, meta, train_ds, o.train.train_split);
  const SplitImages va = load_split(*model, meta, val_ds, o.train.val_split);

  if (leader) {
    std::printf(
        "roar: %s on %s, %lld train / %lld val images at %lld px; %s the top t%% of each map, retrain "
        "%d epoch(s) each%s\n  original model: val acc %.3f, AUC mean %.3f\n",
        meta.arch.c_str(), data_dir.c_str(), static_cast<long long>(tr.ids.size()),
        static_cast<long long>(va.ids.size()), static_cast<long long>(meta.size), o.keep ? "keep" : "remove",
        o.train.epochs, comm.size() > 1 ? strf(", dealt out over %d ranks", comm.size()).c_str() : "",
        res.original.accuracy, res.original.auc_mean);
    std::printf("  %-20s %5s %8s %8s %8s %8s\n", "method", "t%", "acc", "AUC mel", "AUC sk", "mean");
    std::fflush(stdout);
  }
  // Retraining j (method-major, as one process runs them) is rank j mod N's; a rank computes the
  // maps of the methods it retrains with, and sends (j, row, seconds) for each of its retrainings.
  const size_t P = o.percents.size(), ranks = static_cast<size_t>(comm.size());
  auto mine = [&](size_t job) { return job % ranks == static_cast<size_t>(comm.rank()); };
  Parcel rows;
  agreed(comm, "roar", [&] {
    for (size_t m = 0; m < methods.size(); ++m) {
      bool any = false;
      for (size_t k = 0; k < P; ++k) any |= mine(m * P + k);
      if (!any) continue;
      const Tensor maps_tr = split_maps(*model, methods[m], meta, tr, train_ds, o.train.seed + 1);
      const Tensor maps_va = split_maps(*model, methods[m], meta, va, val_ds, o.train.seed + 2);
      for (size_t k = 0; k < P; ++k) {
        if (!mine(m * P + k)) continue;
        double seconds = 0;
        const RoarRow row = retrain(o, meta, methods[m], o.percents[k], tr, va, maps_tr, maps_va, seconds);
        if (comm.size() == 1) {
          res.rows.push_back(row);
          print_row(row, seconds);  // as it finishes: a retraining takes a while
        }
        rows.put_i64(static_cast<int64_t>(m * P + k));
        rows.put(row.metrics);
        rows.put_f64(seconds);
      }
    }
  });
  if (comm.size() > 1) {
    // Rank 0 puts every rank's rows back in the order of one process and prints them.
    const auto parts = comm.gather_bytes(rows.bytes().data(), rows.bytes().size(), 0);
    if (!leader) return res;
    std::vector<std::pair<RoarRow, double>> by_job(methods.size() * P);
    for (size_t r = 0; r < parts.size(); ++r)
      for (ParcelReader in(parts[r].data(), parts[r].size(), "roar: rank " + std::to_string(r) + "'s rows");
           !in.done();) {
        const int64_t job = in.i64();
        GLIMPSE_CHECK(job >= 0 && static_cast<size_t>(job) < by_job.size(), "roar: rank ", r, " sent retraining ", job,
                      " of ", by_job.size());
        RoarRow& row = by_job[static_cast<size_t>(job)].first;
        row = {methods[static_cast<size_t>(job) / P], o.percents[static_cast<size_t>(job) % P], in.metrics()};
        by_job[static_cast<size_t>(job)].second = in.f64();
      }
    for (const auto& [row, seconds] : by_job) {
      res.rows.push_back(row);
      print_row(row, seconds);
    }
  }
  res.seconds = seconds_since(t0);
  std::printf("roar: done in %.1fs\n", res.seconds);
  if (!o.json.empty()) {
    nlohmann::json rows_json = nlohmann::json::array();
    for (const auto& r : res.rows)
      // Each row's model was retrained on the ISIC layout written above: the ISIC class order.
      rows_json.push_back(
          {{"method", r.method}, {"percent", r.percent}, {"metrics", to_json(r.metrics, class_names())}});
    write_json(o.json, {{"data", data_dir},
                        {"keep", o.keep},
                        {"epochs", o.train.epochs},
                        {"percents", o.percents},
                        {"original", to_json(res.original, meta.class_names)},
                        {"rows", rows_json},
                        {"seconds", res.seconds}});
  }
  return res;
}

}  // namespace mel
