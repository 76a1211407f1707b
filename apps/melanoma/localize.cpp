// `melanoma localize`: attribution maps as lesion segmentations, scored against the expert masks of
// a split (Guan & Loew's evaluation), one row per method plus a no-model baseline.
//
// Everything is measured at the model's input size (masks resized by nearest neighbour), on maps
// normalized per image to [0, 1] and computed for the predicted class (or the true one, or one named
// class in every image: --target):
//   dice*, iou*  : the best mean Dice over one threshold shared by the whole split, swept over the
//                  values 0.05, 0.10, ..., 0.95 of the normalized map (the "best threshold" of
//                  MISSION.md's reference numbers -- optimistic, as it is chosen on the same images),
//                  and the mean IoU at that threshold;
//   dice, iou    : at a fixed threshold (--threshold, default value:0.5);
//   energy       : the fraction of the map's mass inside the mask;
//   pointing     : the fraction of images whose map peak lies within the tolerance of the mask
//                  (15 px at 224 px, i.e. 15/224 of the side);
//   deletion, insertion : RISE's AUCs (attribution/metrics.h), lower / higher is more faithful.
// The baseline row "centred-gaussian" is a map that ignores the image: exp(-r^2 / 2 sigma^2) with
// sigma = 0.15 of the side (by default: the sigma whose energy, 0.45 on ISIC 2017's val masks, is the
// mission's anchor); a method is useful only where it beats it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "attribution/attribution.h"
#include "attribution/metrics.h"
#include "attribution/regions.h"
#include "autograd/functions.h"
#include "commands.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "layers/dist/comm.h"

using namespace glimpse;

namespace mel {
namespace {

constexpr const char* kBaseline = "centred-gaussian";
// Perturbed copies per forward pass of the deletion/insertion curves (bench/NOTES.md, W3).
constexpr int64_t kCurveBatch = 64;

Tensor gaussian_map(int64_t n, int64_t s, double sigma_fraction) {
  Tensor m = Tensor::empty({n, s, s});
  const double sigma = sigma_fraction * static_cast<double>(s), c = (static_cast<double>(s) - 1) / 2;
  float* d = m.data();
  for (int64_t y = 0; y < s; ++y)
    for (int64_t x = 0; x < s; ++x) {
      const double r2 = (x - c) * (x - c) + (y - c) * (y - c);
      d[y * s + x] = static_cast<float>(std::exp(-r2 / (2 * sigma * sigma)));
    }
  for (int64_t i = 1; i < n; ++i) std::copy(d, d + s * s, d + i * s * s);
  return m;
}

struct Accum {
  std::vector<double> dice_t, iou_t;
  double dice = 0, iou = 0, energy = 0, hit = 0, deletion = 0, insertion = 0;
  int64_t n = 0, curves = 0;
};

// One image's numbers, flat: Dice and IoU at each swept threshold, then dice, iou, energy, hit,
// deletion, insertion and whether the curves ran. Each rank keeps its images' records; rank 0 sums
// them all in image order, so the totals are those of one process to the last bit.
struct ImageScores {
  size_t thresholds = 0;
  std::vector<double> v;
  size_t width() const { return 2 * thresholds + 7; }
  void add(const std::vector<double>& dice_t, const std::vector<double>& iou_t, const attr::LocalizationScores& ls,
           double deletion, double insertion, bool curves) {
    v.insert(v.end(), dice_t.begin(), dice_t.end());
    v.insert(v.end(), iou_t.begin(), iou_t.end());
    v.insert(v.end(), {ls.dice, ls.iou, ls.energy, ls.hit ? 1.0 : 0.0, deletion, insertion, curves ? 1.0 : 0.0});
  }
  void sum_into(Accum& acc) const {
    for (size_t at = 0; at + width() <= v.size(); at += width()) {
      const double* r = v.data() + at;
      for (size_t k = 0; k < thresholds; ++k) {
        acc.dice_t[k] += r[k];
        acc.iou_t[k] += r[thresholds + k];
      }
      const double* t = r + 2 * thresholds;
      acc.dice += t[0];
      acc.iou += t[1];
      acc.energy += t[2];
      acc.hit += t[3];
      if (t[6] > 0) {
        acc.deletion += t[4];
        acc.insertion += t[5];
        ++acc.curves;
      }
      ++acc.n;
    }
  }
};

// Every rank's records on rank 0, in rank order (= image order: the shards are contiguous).
ImageScores gather_scores(dist::Communicator& c, const ImageScores& mine) {
  if (c.size() == 1) return mine;
  const auto parts = c.gather_bytes(mine.v.data(), mine.v.size() * sizeof(double), 0);
  ImageScores all{mine.thresholds, {}};
  for (const auto& p : parts) {
    const size_t n = p.size() / sizeof(double);
    if (n == 0) continue;  // a rank with no images
    all.v.resize(all.v.size() + n);
    std::memcpy(all.v.data() + all.v.size() - n, p.data(), p.size());
  }
  return all;
}

// A method that failed on any rank failed: the first rank's message, naming it.
std::string agreed_error(dist::Communicator& c, const std::string& mine) {
  if (c.size() == 1) return mine;
  const std::vector<std::string> all = dist::allgather_strings(c, mine);
  for (int r = 0; r < c.size(); ++r)
    if (!all[r].empty()) return "rank " + std::to_string(r) + ": " + all[r];
  return "";
}

}  // namespace

LocalizeResult run_localize(const LocalizeOptions& o) {
  const double t0 = now_s();
  GLIMPSE_CHECK(o.tolerance >= 0 && o.tolerance <= 1, "localize: --tolerance is a fraction of the side in [0, 1], got ",
                o.tolerance);
  GLIMPSE_CHECK(o.gaussian_sigma > 0, "localize: --gaussian-sigma must be > 0, got ", o.gaussian_sigma);
  GLIMPSE_CHECK(o.curve_steps >= 2, "localize: --curve-steps must be >= 2, got ", o.curve_steps);
  const std::vector<std::string> methods = o.methods == "none" ? std::vector<std::string>{} : parse_methods(o.methods);
  const attr::Threshold fixed = attr::parse_threshold(o.threshold);

  const Device device = resolve_device(o.device);  // before loading anything: fails at once
  LoadedModel lm = load_model(o.model);
  Model& model = *lm.model;
  model.to(device);
  const int64_t S = lm.meta.size;
  // --target: "predicted", "true", or a class name (the same class in every image: where the
  // network sees, say, melanoma, whatever it predicts).
  int64_t fixed_class = -1;
  if (o.target != "predicted" && o.target != "true") {
    std::string known;
    fixed_class = find_class(lm.meta.class_names, o.target);  // by name, never by index (roc.h)
    for (const auto& n : lm.meta.class_names) known += ", " + n;
    GLIMPSE_CHECK(fixed_class >= 0, "localize: --target '", o.target, "' is neither predicted, true nor a class of ",
                  o.model, " (predicted, true", known, ")");
  }
  data::Dataset ds = open_dataset(o.data, o.split);
  align_dataset_to_model(lm.meta, ds, o.model);
  std::vector<data::Sample> with_masks;
  for (const auto& s : ds.samples)
    if (!s.mask_path.empty()) with_masks.push_back(s);
  GLIMPSE_CHECK(!with_masks.empty(), "localize: no image of ", o.data, " [", o.split,
                "] has a mask (expected masks/<id>_segmentation.png)");
  if (o.limit > 0 && static_cast<int64_t>(with_masks.size()) > o.limit) with_masks.resize(static_cast<size_t>(o.limit));
  ds.samples = with_masks;

  LocalizeResult res;
  res.images = static_cast<int64_t>(ds.size());
  // Under mpirun each rank scores its shard of whole batches; rank 0 sums and prints.
  dist::Communicator& comm = o.comm ? *o.comm : dist::local();
  const bool leader = comm.rank() == 0;
  keep_shard(ds, comm, static_cast<size_t>(o.batch));
  res.resolution = S;
  for (int k = 1; k <= 19; ++k) res.thresholds.push_back(0.05 * k);
  attr::CurveOptions co;
  co.steps = o.curve_steps;
  co.batch = kCurveBatch;
  co.blur_sigma = std::max(1.f, 5.f * static_cast<float>(S) / 224.f);

  if (leader)
    std::printf(
        "localize: %s (%s, %lld px) on %lld masked images of %s [%s]; %zu method(s) + baseline; "
        "target %s class\n",
        o.model.c_str(), lm.meta.arch.c_str(), static_cast<long long>(S), static_cast<long long>(res.images),
        o.data.c_str(), o.split.c_str(), methods.size(), o.target.c_str());
  if (lm.meta.mask_guidance > 0 && leader)
    std::printf(
        "localize: note: %s was trained with --mask-guidance %g: its CAM was taught to lie inside the "
        "training masks, so the CAM-family rows measure how well that learned, not where an unguided "
        "network looks\n",
        o.model.c_str(), lm.meta.mask_guidance);
  res.mask_guidance = lm.meta.mask_guidance;
  std::fflush(stdout);

  std::vector<std::string> all = {kBaseline};
  all.insert(all.end(), methods.begin(), methods.end());
  // What every method's pass over batch b shares, kept from the first pass: the predicted classes
  // and the curves' map-independent copies (the clean image, the baselines).
  std::vector<std::vector<int64_t>> predicted;
  std::vector<attr::CurveAnchors> anchors;
  for (const std::string& method : all) {
    const double tm = now_s();
    LocalizeRow row;
    row.method = method;
    Accum acc;
    acc.dice_t.assign(res.thresholds.size(), 0);
    acc.iou_t.assign(res.thresholds.size(), 0);
    ImageScores scores{res.thresholds.size(), {}};
    std::vector<double> dice_t(res.thresholds.size()), iou_t(res.thresholds.size());
    // A rank whose shard is empty (fewer batches than ranks) scores nothing but joins the gathering.
    std::unique_ptr<data::DataLoader> loader;
    if (!ds.samples.empty()) {
      loader = std::make_unique<data::DataLoader>(ds, inference_loader(S, o.batch, true, lm.meta.preprocess));
      loader->start_epoch(0);
    }
    ProgressBar bar("  " + method, static_cast<int64_t>(ds.size()), "img",
                    leader ? progress() : ProgressBar::Mode::Silent);
    try {
      data::Batch b;
      for (size_t at = 0; loader && loader->next(b); ++at) {
        if (predicted.size() <= at) predicted.emplace_back(), anchors.emplace_back();
        b.images = b.images.to(device);  // decoded on the CPU; maps come back on the CPU
        const int64_t B = b.images.size(0);
        std::vector<int64_t> targets = b.labels;
        if (fixed_class >= 0) {
          targets.assign(static_cast<size_t>(B), fixed_class);
        } else if (o.target == "predicted") {
          if (predicted[at].empty()) {
            NoGradGuard no_grad;
            model.eval();
            predicted[at] = argmax_rows(model(b.images));
          }
          targets = predicted[at];
        }
        Tensor maps;
        if (method == kBaseline) {
          maps = gaussian_map(B, S, o.gaussian_sigma);
        } else {
          attr::Options opt = method_options(S);
          opt.targets = targets;
          opt.layer = o.layer;
          opt.seed = o.seed;
          maps = attr::explain(method, model, b.images, opt).map;
        }
        maps = maps.contiguous();
        // Both curves of the whole batch at once (attribution/metrics.h: fuller forward passes).
        std::vector<attr::CurvePair> curves;
        if (o.curves) curves = attr::rise_curves(model, b.images, maps, targets, co, &anchors[at]);
        for (int64_t i = 0; i < B; ++i) {
          const Tensor m = maps.slice(i, i + 1);
          io::Mask truth = b.masks[static_cast<size_t>(i)];
          if (truth.width != S || truth.height != S) truth = io::resize_mask(truth, S, S);
          for (size_t k = 0; k < res.thresholds.size(); ++k) {
            const io::Mask p =
                attr::threshold_map(m, {attr::ThresholdMethod::Value, static_cast<float>(res.thresholds[k])});
            dice_t[k] = attr::dice(p, truth);
            iou_t[k] = attr::iou(p, truth);
          }
          const attr::LocalizationScores ls = score_against_mask(m, truth, fixed, o.tolerance);
          double deletion = 0, insertion = 0;
          if (o.curves) {
            deletion = curves[static_cast<size_t>(i)].deletion.auc;
            insertion = curves[static_cast<size_t>(i)].insertion.auc;
          }
          scores.add(dice_t, iou_t, ls, deletion, insertion, o.curves);
        }
        bar.step(B);
      }
      bar.finish();
    } catch (const std::exception& e) {
      bar.finish("failed");
      row.error = e.what();
      std::fprintf(stderr, "localize: %s failed: %s\n", method.c_str(), e.what());
    }
    row.error = agreed_error(comm, row.error);
    gather_scores(comm, scores).sum_into(acc);  // on rank 0; nothing elsewhere
    if (!leader) continue;
    if (row.error.empty() && acc.n > 0) {
      const double n = static_cast<double>(acc.n);
      row.images = acc.n;
      size_t best = 0;
      for (size_t k = 0; k < res.thresholds.size(); ++k) {
        row.dice_by_threshold.push_back(acc.dice_t[k] / n);
        if (acc.dice_t[k] > acc.dice_t[best]) best = k;
      }
      row.best_threshold = res.thresholds[best];
      row.dice_best = acc.dice_t[best] / n;
      row.iou_best = acc.iou_t[best] / n;
      row.dice_fixed = acc.dice / n;
      row.iou_fixed = acc.iou / n;
      row.energy = acc.energy / n;
      row.pointing = acc.hit / n;
      if (acc.curves > 0) {
        row.deletion = acc.deletion / static_cast<double>(acc.curves);
        row.insertion = acc.insertion / static_cast<double>(acc.curves);
      }
    }
    row.seconds = seconds_since(tm);
    // The baseline reads every image and mask first: none readable is an error (exit 1), not a
    // table of zeros.
    if (method == kBaseline)
      GLIMPSE_CHECK(acc.n > 0, "localize: none of the ", res.images, " masked image(s) of ", o.data, " [", o.split,
                    "] could be read", row.error.empty() ? std::string() : " (" + row.error + ")",
                    "; are the image files there (", ds.missing_images, " listed but missing)?");
    res.rows.push_back(row);
  }
  res.seconds = seconds_since(t0);
  if (!leader) return res;  // rank 0 prints for the job
  std::printf("%s", format_localize_table(res).c_str());
  std::fflush(stdout);
  if (!o.json.empty()) write_json(o.json, localize_to_json(o, res));
  return res;
}

attr::LocalizationScores score_against_mask(const Tensor& map, const io::Mask& truth, const attr::Threshold& threshold,
                                            double tolerance) {
  GLIMPSE_CHECK(map.defined() && map.dim() >= 2, "score_against_mask: expected a map [1, S, S], got ",
                map.defined() ? shape_str(map.shape()) : std::string("an undefined tensor"));
  const int64_t h = map.size(map.dim() - 2), w = map.size(map.dim() - 1);
  if (truth.width == w && truth.height == h)
    return attr::localization_scores(map, truth, threshold, tolerance * static_cast<double>(w));
  return attr::localization_scores(map, io::resize_mask(truth, w, h), threshold, tolerance * static_cast<double>(w));
}

std::string format_localize_table(const LocalizeResult& r) {
  std::string s = strf("%-22s %6s %5s %6s %6s %6s %6s %6s %7s %7s %7s\n", "method", "dice*", "t*", "iou*", "dice",
                       "iou", "energy", "point", "del(-)", "ins(+)", "s/img");
  for (const auto& row : r.rows) {
    if (!row.error.empty()) {
      s += strf("%-22s failed: %.90s\n", row.method.c_str(), row.error.c_str());
      continue;
    }
    const std::string del = row.deletion >= 0 ? strf("%7.3f", row.deletion) : std::string("      -");
    const std::string ins = row.insertion >= 0 ? strf("%7.3f", row.insertion) : std::string("      -");
    s += strf("%-22s %6.3f %5.2f %6.3f %6.3f %6.3f %6.3f %6.3f %s %s %7.3f\n", row.method.c_str(), row.dice_best,
              row.best_threshold, row.iou_best, row.dice_fixed, row.iou_fixed, row.energy, row.pointing, del.c_str(),
              ins.c_str(), row.images ? row.seconds / static_cast<double>(row.images) : 0.0);
  }
  s += strf(
      "(%lld images at %lld px; dice*/iou*: best shared threshold t* of the normalized map; dice/iou at the "
      "fixed threshold; %.1fs)\n",
      static_cast<long long>(r.images), static_cast<long long>(r.resolution), r.seconds);
  return s;
}

nlohmann::json localize_to_json(const LocalizeOptions& o, const LocalizeResult& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json j = {{"method", row.method}, {"images", row.images}, {"seconds", row.seconds}};
    if (!row.error.empty()) {
      j["error"] = row.error;
    } else {
      j["dice_best"] = row.dice_best;
      j["best_threshold"] = row.best_threshold;
      j["iou_best"] = row.iou_best;
      j["dice_fixed"] = row.dice_fixed;
      j["iou_fixed"] = row.iou_fixed;
      j["energy_inside"] = row.energy;
      j["pointing_game"] = row.pointing;
      j["deletion_auc"] = row.deletion >= 0 ? nlohmann::json(row.deletion) : nlohmann::json();
      j["insertion_auc"] = row.insertion >= 0 ? nlohmann::json(row.insertion) : nlohmann::json();
      j["dice_by_threshold"] = row.dice_by_threshold;
    }
    rows.push_back(j);
  }
  return {{"model", o.model},
          {"data", o.data},
          {"split", o.split},
          {"images", r.images},
          {"resolution", r.resolution},
          {"target", o.target},
          {"fixed_threshold", o.threshold},
          {"thresholds", r.thresholds},
          {"pointing_tolerance_fraction", o.tolerance},
          {"gaussian_sigma_fraction", o.gaussian_sigma},
          {"model_mask_guidance", r.mask_guidance},
          {"curve_steps", o.curve_steps},
          {"seconds", r.seconds},
          {"rows", rows}};
}

}  // namespace mel
