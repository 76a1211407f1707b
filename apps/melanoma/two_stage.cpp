// `melanoma two-stage`: Jia & Shen's pipeline. Stage 1 is a GAP classifier; each image (train and
// val) is cropped to the bounding box of its thresholded class activation map -- the top region of
// the map of the predicted class at `crop_threshold` x max, grown by `margin` of its side on every
// side -- on the full-resolution photo; stage 2 is the same network retrained on the crops. On val,
// stages 1+2 average the class probabilities of stage 1 (whole image) and stage 2 (its crop).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "attribution/attribution.h"
#include "attribution/regions.h"
#include "autograd/functions.h"
#include "commands.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "root_writer.h"
#include "shared_model.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {
namespace {

io::Image crop_image(const io::Image& img, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  io::Image out(x1 - x0 + 1, y1 - y0 + 1, img.channels);
  for (int64_t y = y0; y <= y1; ++y)
    std::copy(img.at(x0, y), img.at(x0, y) + out.width * img.channels, out.at(0, y - y0));
  return out;
}
io::Mask crop_mask(const io::Mask& m, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
  io::Mask out(x1 - x0 + 1, y1 - y0 + 1);
  for (int64_t y = y0; y <= y1; ++y)
    for (int64_t x = x0; x <= x1; ++x) out.at(x - x0, y - y0) = m.at(x, y);
  return out;
}

// Images per attribution batch of the cropping; also the granule of its split over the ranks.
constexpr int64_t kCropBatch = 32;

// Writes the CAM crops of one split into <dir>/images (and masks) and their labels.csv rows, through
// `out`: under mpirun each rank crops its shard (contiguous, in whole batches) and rank 0 writes.
// out's tally counts the images that fell back to the whole image (no region above the threshold).
void write_crops(Model& model, const ModelMeta& meta, data::Dataset ds, const std::string& split,
                 const TwoStageOptions& o, const std::string& dir, RootWriter& out, dist::Communicator& c) {
  const int64_t S = meta.size;
  keep_shard(ds, c, static_cast<size_t>(kCropBatch));
  std::map<std::string, const data::Sample*> by_id;
  for (const auto& s : ds.samples) by_id[s.id] = &s;
  std::unique_ptr<data::DataLoader> loader;  // none on a rank whose shard is empty
  if (!ds.samples.empty()) {
    loader = std::make_unique<data::DataLoader>(ds, inference_loader(S, kCropBatch, false, meta.preprocess));
    loader->start_epoch(0);
  }
  ProgressBar bar("  crop " + split, std::max<int64_t>(1, static_cast<int64_t>(ds.size())), "img", progress());
  data::Batch b;
  const int64_t out_side = std::max<int64_t>(2 * S, 128);
  const int64_t batches = (static_cast<int64_t>(ds.size()) + kCropBatch - 1) / kCropBatch;
  for (int64_t round = largest_over_ranks(c, batches); round > 0; --round, out.flush()) {
    if (!loader || !loader->next(b)) continue;  // this rank is done; it still joins the round
    std::vector<int64_t> pred;
    {
      NoGradGuard no_grad;
      model.eval();
      pred = argmax_rows(model(b.images));
    }
    attr::Options opt = method_options(S);
    opt.targets = pred;
    const Tensor maps = attr::explain(o.method, model, b.images, opt).map.contiguous();
    for (size_t i = 0; i < b.ids.size(); ++i) {
      const data::Sample& s = *by_id.at(b.ids[i]);
      attr::RegionOptions ro;
      ro.threshold = {attr::ThresholdMethod::Fraction, o.crop_threshold};
      ro.max_regions = 1;
      const auto regions = attr::find_regions(maps.slice(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1), ro);
      double bx0 = 0, by0 = 0, bx1 = S, by1 = S;  // in map pixels, [x0, x1) continuous
      if (!regions.empty()) {
        const attr::Box& bb = regions[0].bbox;
        const double mw = o.margin * (bb.width()), mh = o.margin * (bb.height());
        bx0 = std::max(0.0, bb.x0 - mw);
        by0 = std::max(0.0, bb.y0 - mh);
        bx1 = std::min<double>(S, bb.x1 + 1 + mw);
        by1 = std::min<double>(S, bb.y1 + 1 + mh);
      } else {
        out.count(1);
      }
      const io::Image photo = io::load_image(s.image_path);
      const double sx = static_cast<double>(photo.width) / S, sy = static_cast<double>(photo.height) / S;
      const int64_t x0 = std::clamp<int64_t>(std::llround(bx0 * sx), 0, photo.width - 1);
      const int64_t y0 = std::clamp<int64_t>(std::llround(by0 * sy), 0, photo.height - 1);
      const int64_t x1 = std::clamp<int64_t>(std::llround(bx1 * sx) - 1, x0, photo.width - 1);
      const int64_t y1 = std::clamp<int64_t>(std::llround(by1 * sy) - 1, y0, photo.height - 1);
      const io::Image crop = io::resize_image(crop_image(photo, x0, y0, x1, y1), out_side, out_side);
      out.png(dir + "/images/" + s.id + ".png", crop);
      if (!s.mask_path.empty()) {
        const io::Mask m = io::load_mask(s.mask_path);
        if (m.width == photo.width && m.height == photo.height)
          out.png(dir + "/masks/" + s.id + "_segmentation.png",
                  io::resize_mask(crop_mask(m, x0, y0, x1, y1), out_side, out_side));
      }
      out.text(csv_field(split) + "," + csv_field(s.id) + "," + isic_label_columns(meta.class_names, s.label) + "\n");
    }
    bar.step(static_cast<int64_t>(b.ids.size()));
  }
  bar.finish();
}

}  // namespace

TwoStageResult run_two_stage(const TwoStageOptions& o) {
  const double t0 = now_s();
  const std::string err = check_method(o.method);
  GLIMPSE_CHECK(err.empty(), "two-stage: ", err);
  GLIMPSE_CHECK(o.crop_threshold > 0 && o.crop_threshold < 1, "two-stage: --crop-threshold must be in (0, 1), got ",
                o.crop_threshold);
  GLIMPSE_CHECK(o.margin >= 0 && o.margin <= 1, "two-stage: --margin must be in [0, 1], got ", o.margin);
  // Under mpirun the ranks share the cropping (the attribution of every image); both trainings and
  // the val scores run on rank 0 alone, so that every number is one process's.
  dist::Communicator& comm = o.comm ? *o.comm : dist::local();
  const bool leader = comm.rank() == 0;
  if (leader) ensure_dir(o.out);

  // Stage 1.
  TrainOptions start = o.train;
  start.out = o.out + "/stage1.safetensors";
  start.label = "stage1";
  const StartingModel sm = load_or_train(o.model, start, "two-stage", comm);
  const std::shared_ptr<Model>& stage1 = sm.model;
  const ModelMeta& meta = sm.meta;
  const std::string& data_dir = sm.data_dir;
  const data::Dataset &train_ds = sm.train, &val_ds = sm.val;

  // Crops.
  const std::string crops = o.out + "/crops";
  int64_t fallback = 0;
  {
    if (leader) {
      ensure_dir(crops + "/images");
      ensure_dir(crops + "/masks");
    }
    std::string csv = "split,image_id,melanoma,seborrheic_keratosis\n";
    const double tc = now_s();
    for (const auto& [ds, split] :
         {std::pair(&train_ds, &o.train.train_split), std::pair(&val_ds, &o.train.val_split)}) {
      RootWriter out(comm, "two-stage crops");
      write_crops(*stage1, meta, *ds, *split, o, crops, out, comm);
      csv += out.all_text();
      fallback += out.tally();
    }
    if (!leader) return {};                  // rank 0 carries on alone
    write_text(crops + "/labels.csv", csv);  // atomic and checked
    std::printf(
        "two-stage: %zu crops (%s map > %.2f max, margin %.2f) in %s, %lld without a region kept whole "
        "(%.1fs)\n",
        train_ds.size() + val_ds.size(), o.method.c_str(), o.crop_threshold, o.margin, crops.c_str(),
        static_cast<long long>(fallback), seconds_since(tc));
    std::fflush(stdout);
  }

  // Stage 2: the same network and schedule, on the crops.
  TrainOptions t2 = retraining(o.train, meta, crops, o.out + "/stage2.safetensors");  // crops of preprocessed photos
  t2.label = "stage2";
  std::printf("two-stage: training stage 2 on the crops\n");
  std::fflush(stdout);
  TrainResult r2 = train_model(t2);

  // Val: stage 1 on the photos, stage 2 on the crops, and their average.
  const Predictions p1 = predict(*stage1, val_ds, meta.size, meta.preprocess, "  stage1 val");
  const data::Dataset crops_val = open_dataset(crops, o.train.val_split);
  const Predictions p2 = predict(*r2.model, crops_val, meta.size, {}, "  stage2 val");
  // Stage 2 was trained on the crops' ISIC layout: its classes in stage 1's order, matched by name.
  std::vector<size_t> from2(meta.class_names.size());
  for (size_t k = 0; k < from2.size(); ++k) {
    const int64_t c = find_class(r2.meta.class_names, meta.class_names[k]);
    GLIMPSE_CHECK(c >= 0, "two-stage: stage 2 has no class '", meta.class_names[k], "'");
    from2[k] = static_cast<size_t>(c);
  }
  std::map<std::string, size_t> at2;
  for (size_t i = 0; i < p2.ids.size(); ++i) at2[p2.ids[i]] = i;
  std::vector<std::vector<float>> avg, s2;
  std::vector<int64_t> labels;
  for (size_t i = 0; i < p1.ids.size(); ++i) {
    auto it = at2.find(p1.ids[i]);
    GLIMPSE_CHECK(it != at2.end(), "two-stage: the crop of ", p1.ids[i], " is missing from ", crops);
    const auto& a = p1.probs[i];
    std::vector<float> c(a.size()), m(a.size());
    for (size_t k = 0; k < a.size(); ++k) {
      c[k] = p2.probs[it->second][from2[k]];
      m[k] = (a[k] + c[k]) / 2;
    }
    avg.push_back(m);
    s2.push_back(c);
    labels.push_back(p1.labels[i]);
  }
  TwoStageResult res;
  res.stage1 = classification_metrics(p1.probs, p1.labels, meta.class_names);
  res.stage2 = classification_metrics(s2, labels, meta.class_names);
  res.combined = classification_metrics(avg, labels, meta.class_names);
  auto metrics_json = [&](const ClassificationMetrics& m) { return to_json(m, meta.class_names); };
  res.seconds = seconds_since(t0);
  std::printf("two-stage on %s [%s], %zu images:\n  %-14s %8s %8s %8s %8s\n", data_dir.c_str(),
              o.train.val_split.c_str(), labels.size(), "", "AUC mel", "AUC sk", "mean", "acc");
  auto line = [](const char* name, const ClassificationMetrics& m) {
    std::printf("  %-14s %8.3f %8.3f %8.3f %8.3f\n", name, m.auc_melanoma, m.auc_keratosis, m.auc_mean, m.accuracy);
  };
  line("stage 1", res.stage1);
  line("stage 2 alone", res.stage2);
  line("stages 1+2", res.combined);
  std::printf("  (Jia & Shen, ISIC 2017 val with a pretrained VGG16-GAP: mean AUC 0.821 -> 0.857; %.1fs)\n",
              res.seconds);
  std::fflush(stdout);
  if (!o.json.empty())
    write_json(o.json, {{"data", data_dir},
                        {"split", o.train.val_split},
                        {"method", o.method},
                        {"crop_threshold", o.crop_threshold},
                        {"margin", o.margin},
                        {"crops_without_region", fallback},
                        {"stage1_model", o.model.empty() ? o.out + "/stage1.safetensors" : o.model},
                        {"stage2_model", t2.out},
                        {"stage1", metrics_json(res.stage1)},
                        {"stage2", metrics_json(res.stage2)},
                        {"combined", metrics_json(res.combined)},
                        {"seconds", res.seconds}});
  return res;
}

}  // namespace mel
