// `melanoma train`: a GAP classifier on an ISIC-layout data set, with class weighting (melanoma is
// the minority class), a cosine or step schedule, per-epoch validation (ISIC 2017 AUCs), a checkpoint
// rewritten atomically after every epoch (so an interrupted run loses at most the current epoch)
// and the training curve as JSON beside it.
//
// Nothing lost: the curve is written before the checkpoint each epoch, and a resume keeps only the
// curve's epochs up to the checkpoint's (the checkpoint is the truth), so a kill between the two
// writes costs nothing; a malformed curve never blocks a resume; temporaries of killed runs are
// removed at start; an unwritable --out fails before the first epoch; Ctrl-C / SIGTERM stop after
// the current step with the last checkpoint intact and print the command that continues.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "attribution/guidance.h"
#include "autograd/functions.h"
#include "commands.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/atomic_file.h"
#include "init_weights.h"
#include "interrupt.h"
#include "json_in.h"
#include "layers/checkpoint.h"
#include "layers/lr_schedule.h"
#include "layers/optim.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {
namespace {

std::unique_ptr<Optimizer> make_optimizer(const TrainOptions& o, Model& model, float lr) {
  if (o.optimizer == "sgd") {
    SGDOptions s;
    s.lr = lr;
    s.momentum = o.momentum;
    s.nesterov = o.momentum > 0;
    s.weight_decay = o.weight_decay >= 0 ? o.weight_decay : 5e-4f;
    return std::make_unique<SGD>(model.parameters(), s);
  }
  AdamOptions a;
  a.lr = lr;
  if (o.optimizer == "adamw") {
    a.weight_decay = o.weight_decay >= 0 ? o.weight_decay : 1e-2f;
    return std::make_unique<AdamW>(model.parameters(), a);
  }
  GLIMPSE_CHECK(o.optimizer == "adam", "unknown optimizer '", o.optimizer, "'; known: sgd, adam, adamw");
  a.weight_decay = o.weight_decay >= 0 ? o.weight_decay : 5e-4f;
  return std::make_unique<Adam>(model.parameters(), a);
}

// Inverse class frequency, n / (K n_c) (sklearn's "balanced"); a class absent from the training
// set gets weight 1.
Tensor class_weight_tensor(const std::vector<int64_t>& counts) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  std::vector<float> w;
  for (int64_t c : counts)
    w.push_back(c > 0 ? static_cast<float>(static_cast<double>(n) / (static_cast<double>(counts.size()) * c)) : 1.f);
  return Tensor::from_vector({static_cast<int64_t>(w.size())}, w);
}

nlohmann::json epoch_json(const EpochRecord& e) {
  nlohmann::json j = {{"epoch", e.epoch},
                      {"train_loss", e.train_loss},
                      {"train_accuracy", e.train_accuracy},
                      {"lr", e.lr},
                      {"seconds", e.seconds}};
  if (e.train_cam_outside >= 0) j["train_cam_outside"] = e.train_cam_outside;
  if (e.has_val) {
    j["val_loss"] = e.val_loss;
    j["val_accuracy"] = e.val_accuracy;
    j["auc_melanoma"] = std::isfinite(e.auc_melanoma) ? nlohmann::json(e.auc_melanoma) : nlohmann::json();
    j["auc_seborrheic_keratosis"] = std::isfinite(e.auc_keratosis) ? nlohmann::json(e.auc_keratosis) : nlohmann::json();
    j["auc_mean"] = std::isfinite(e.auc_mean) ? nlohmann::json(e.auc_mean) : nlohmann::json();
  }
  return j;
}

// One epoch record, every field type-checked (an Error names the key). Only "epoch" is required;
// an absent number is NaN (not drawn), as a null is.
EpochRecord epoch_from_json(const JsonIn& j) {
  EpochRecord e;
  e.epoch = j.at("epoch").integer(1, 100000000);
  e.train_loss = j.number_or_nan("train_loss");
  e.train_accuracy = j.number_or_nan("train_accuracy");
  e.lr = j.number("lr", 0.0);
  e.seconds = j.number("seconds", 0.0);
  e.train_cam_outside = j.number("train_cam_outside", -1.0);
  if (j.has("val_loss")) {
    e.has_val = true;
    e.val_loss = j.number_or_nan("val_loss");
    e.val_accuracy = j.number_or_nan("val_accuracy");
    e.auc_melanoma = j.number_or_nan("auc_melanoma");
    e.auc_keratosis = j.number_or_nan("auc_seborrheic_keratosis");
    e.auc_mean = j.number_or_nan("auc_mean");
  }
  return e;
}

// A word for the shell: quoted when it holds anything but [A-Za-z0-9_./:=,+-].
std::string shell_word(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,+-") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The flags that continue this run: the checkpoint holds arch, size and preprocessing; the rest
// is given again when it differs from the default.
std::string continue_flags(const TrainOptions& o) {
  const TrainOptions d;
  std::string f = " --data " + shell_word(o.data) + " --epochs " + std::to_string(o.epochs);
  if (o.train_split != d.train_split) f += " --train-split " + shell_word(o.train_split);
  if (o.val_split != d.val_split) f += " --val-split " + shell_word(o.val_split);
  if (o.batch != d.batch) f += " --batch " + std::to_string(o.batch);
  if (o.optimizer != d.optimizer) f += " --optimizer " + shell_word(o.optimizer);
  if (o.lr > 0) f += strf(" --lr %g", o.lr);
  if (o.weight_decay >= 0) f += strf(" --weight-decay %g", o.weight_decay);
  if (o.schedule != d.schedule) f += " --schedule " + shell_word(o.schedule);
  if (o.class_weights != d.class_weights) f += " --class-weights " + shell_word(o.class_weights);
  if (!o.augment) f += " --no-augment";
  if (o.vignette > 0) f += strf(" --vignette %g", o.vignette);
  if (o.stickers > 0) f += strf(" --stickers %g", o.stickers);
  if (o.mask_guidance > 0) f += strf(" --mask-guidance %g", o.mask_guidance);
  if (o.seed != d.seed) f += " --seed " + std::to_string(o.seed);
  if (o.device != d.device) f += " --device " + shell_word(o.device);
  return f;
}

}  // namespace

nlohmann::json curve_to_json(const TrainResult& r) {
  nlohmann::json j;
  j["arch"] = r.meta.arch;
  j["input_size"] = r.meta.size;
  j["data"] = r.meta.data;
  j["optimizer"] = r.meta.optimizer;
  j["schedule"] = r.meta.schedule;
  j["lr"] = r.meta.lr;
  j["mask_guidance"] = r.meta.mask_guidance;
  j["checkpoint"] = r.checkpoint;
  j["epochs"] = nlohmann::json::array();
  for (const auto& e : r.history) j["epochs"].push_back(epoch_json(e));
  return j;
}

CurveRead read_curve(const std::string& path) {
  CurveRead c;
  c.path = path;
  const nlohmann::json j = read_json(path);
  const JsonIn in(j, path, "expected a training curve written by `melanoma train`");
  for (const JsonIn& e : in.at("epochs").items()) {
    try {
      c.epochs.push_back(epoch_from_json(e));
    } catch (const glimpse::Error& err) {
      ++c.skipped;
      if (c.problems.size() < 5) c.problems.push_back(err.what());
    }
  }
  // Sorted by epoch; of an epoch written twice (only by hand: train rewrites the whole file) the
  // last one is kept.
  std::stable_sort(c.epochs.begin(), c.epochs.end(),
                   [](const EpochRecord& a, const EpochRecord& b) { return a.epoch < b.epoch; });
  std::vector<EpochRecord> unique;
  for (size_t i = 0; i < c.epochs.size(); ++i) {
    if (i + 1 < c.epochs.size() && c.epochs[i + 1].epoch == c.epochs[i].epoch) {
      ++c.skipped;
      if (c.problems.size() < 5)
        c.problems.push_back("'" + path + "': epoch " + std::to_string(c.epochs[i].epoch) +
                             " appears twice; the last is kept");
      continue;
    }
    unique.push_back(c.epochs[i]);
  }
  c.epochs = std::move(unique);
  return c;
}

namespace {
// Shuffles the labels among the samples (Fisher-Yates, seeded), keeping each class's count; returns
// the fraction of samples whose label changed.
double permute_labels(data::Dataset& ds, uint64_t seed) {
  std::vector<int64_t> labels;
  for (const data::Sample& s : ds.samples) labels.push_back(s.label);
  Rng rng(seed ^ 0x5eed1abe15ULL);  // not the initialization's stream
  for (size_t i = labels.size(); i > 1; --i) std::swap(labels[i - 1], labels[rng.below(i)]);
  int64_t changed = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    changed += ds.samples[i].label != labels[i];
    ds.samples[i].label = labels[i];
  }
  return labels.empty() ? 0.0 : static_cast<double>(changed) / static_cast<double>(labels.size());
}
}  // namespace

TrainResult train_model(const TrainOptions& o_in) {
  TrainOptions o = o_in;
  const double t0 = now_s();
  const Device device = resolve_device(o.device);  // first: an unusable device fails before any work
  GLIMPSE_CHECK(o.epochs >= 1, "train: --epochs must be >= 1, got ", o.epochs);
  GLIMPSE_CHECK(o.batch >= 1, "train: --batch must be >= 1, got ", o.batch);
  GLIMPSE_CHECK(o.schedule == "cosine" || o.schedule == "step", "train: unknown schedule '", o.schedule,
                "'; known: cosine, step");
  GLIMPSE_CHECK(o.class_weights == "auto" || o.class_weights == "none", "train: unknown --class-weights '",
                o.class_weights, "'; known: auto, none");
  GLIMPSE_CHECK(!o.out.empty(), "train: no checkpoint path (--out FILE)");
  GLIMPSE_CHECK(!fs::is_directory(o.out), "train: --out ", o.out, " is a directory; give a file name");
  const fs::path out_dir = fs::absolute(o.out).parent_path();
  ensure_dir(out_dir.string());
  // An unwritable directory fails now, naming it, not after the first epoch's work.
  io::check_writable_dir(out_dir.string());
  // Orphans of runs killed mid-write (kill -9, a power cut): each the size of a checkpoint.
  {
    const std::string curve_path = sibling(o.out, ".curve.json");
    const int removed = io::remove_stale_temps(o.out) + io::remove_stale_temps(curve_path);
    if (removed > 0)
      std::fprintf(stderr, "train: removed %d temporary file(s) left beside %s by killed runs\n", removed,
                   o.out.c_str());
  }
  // Ctrl-C and SIGTERM from here on set a flag that the loop checks after every step; the previous
  // handlers come back when train_model returns or throws.
  InterruptGuard interrupt_guard;

  if (o.synthetic > 0) {
    GLIMPSE_CHECK(o.data.empty(), "train: give either --data or --synthetic, not both");
    SynthOptions s;
    s.out = (out_dir / "synthetic").string();
    s.count = o.synthetic;
    s.size = std::max<int64_t>(o.size, 64);
    s.seed = o.seed;
    run_synth(s);
    o.data = s.out;
  }

  // The model: fresh, or from the checkpoint to resume (whose metadata decides arch and size).
  TrainResult r;
  ModelMeta& meta = r.meta;
  if (!o.resume.empty()) {
    LoadedModel lm = load_model(o.resume);
    r.model = lm.model;
    meta = lm.meta;
    if (meta.arch != o.arch || meta.size != o.size)
      std::printf("train: resuming %s: %s at %lld px (from the checkpoint)\n", o.resume.c_str(), meta.arch.c_str(),
                  static_cast<long long>(meta.size));
    o.arch = meta.arch;
    o.size = meta.size;
    GLIMPSE_CHECK(meta.epoch < o.epochs, "train: ", o.resume, " has already completed ", meta.epoch,
                  " epoch(s); ask for more with --epochs (got ", o.epochs, ")");
  }

  data::Dataset train_ds = open_dataset(o.data, o.train_split);
  if (o.permute_labels) r.labels_changed = permute_labels(train_ds, o.seed);
  data::Dataset val_ds;
  bool has_val = false;
  if (!o.val_split.empty() && !o.permute_labels) {  // permuted labels: nothing to validate against
    try {
      val_ds = data::Dataset::open(o.data, o.val_split);
      has_val = val_ds.size() > 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "train: no validation split '%s' in %s (%s); training without validation\n",
                   o.val_split.c_str(), o.data.c_str(), e.what());
    }
  }
  const int64_t classes = static_cast<int64_t>(train_ds.class_names.size());
  GLIMPSE_CHECK(classes >= 2, "train: ", o.data, " has ", classes, " class(es); need at least 2");

  if (!r.model) {
    Rng rng(o.seed);
    r.model = make_model(o.arch, classes, o.size, rng);
    meta.arch = o.arch;
    meta.size = o.size;
    meta.classes = classes;
    meta.class_names = train_ds.class_names;
    meta.seed = o.seed;
    if (!o.init.empty()) meta.init = init_model(*r.model, o.init);
    meta.freeze = o.freeze;
  } else {
    align_dataset_to_model(meta, train_ds, o.resume);
    if (has_val) align_dataset_to_model(meta, val_ds, o.resume);
  }
  Model& model = *r.model;
  freeze_layers(model, meta.freeze);  // a resumed run keeps the checkpoint's
  // On the device before the optimizer exists and loads its state: state lives beside its parameter.
  model.to(device);
  // Default rates: the small net (no BatchNorm) takes a larger Adam step than the deep ones.
  const float lr = o.lr > 0 ? o.lr : o.optimizer == "sgd" ? 0.02f : (meta.arch == "small-gap" ? 3e-3f : 1e-3f);
  std::unique_ptr<Optimizer> opt = make_optimizer(o, model, lr);
  // Resuming with the same optimizer continues its moments and step counts from the checkpoint.
  std::string optimizer_resume;
  if (!o.resume.empty()) {
    if (meta.optimizer != o.optimizer) {
      optimizer_resume = "the checkpoint was trained with " + meta.optimizer + ", not " + o.optimizer +
                         ": the optimizer's moments restart from zero";
    } else if (load_checkpoint(model, o.resume, /*strict=*/true, opt.get()).optimizer_loaded) {
      optimizer_resume = "the optimizer continues from its saved state";
    } else {
      optimizer_resume = "the checkpoint holds no optimizer state: its moments restart from zero";
    }
  }
  meta.optimizer = o.optimizer;
  meta.schedule = o.schedule;
  meta.lr = lr;
  meta.epochs = o.epochs;
  meta.data = o.data;
  // The preprocessing is part of the model: a resumed run keeps the checkpoint's.
  if (o.resume.empty()) meta.preprocess = o.preprocess;
  meta.mask_guidance = std::max(meta.mask_guidance, static_cast<double>(o.mask_guidance));  // ever guided: recorded

  // Mask guidance needs the expert masks of the training split, and a GAP -> Linear head.
  std::unique_ptr<attr::MaskGuidance> guide;
  if (o.mask_guidance > 0) {
    int64_t with_mask = 0;
    for (const auto& s : train_ds.samples) with_mask += !s.mask_path.empty();
    GLIMPSE_CHECK(with_mask > 0, "train: --mask-guidance needs lesion masks, and split '", o.train_split, "' of ",
                  o.data, " has none (expected masks/<id>_segmentation.png)");
    if (with_mask < static_cast<int64_t>(train_ds.size()))
      std::fprintf(stderr,
                   "train: --mask-guidance: %lld of %lld training images have no mask; they train on the "
                   "classification loss only\n",
                   static_cast<long long>(static_cast<int64_t>(train_ds.size()) - with_mask),
                   static_cast<long long>(train_ds.size()));
    guide = std::make_unique<attr::MaskGuidance>(model);
  }

  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.image_size = o.size;
  lo.shuffle = true;
  lo.augment = o.augment;
  lo.augment_options.vignette = o.vignette;
  lo.augment_options.stickers = o.stickers;
  lo.with_masks = guide != nullptr;  // augmented together with their images
  lo.preprocess = meta.preprocess;
  lo.drop_last = static_cast<int64_t>(train_ds.size()) > o.batch;  // no 1-image batch under BatchNorm
  lo.threads = loader_threads();
  lo.seed = o.seed;
  data::DataLoader loader(train_ds, lo);
  const int64_t steps_per_epoch = std::max<int64_t>(1, loader.batches_per_epoch());
  const int64_t total_steps = steps_per_epoch * o.epochs;

  std::unique_ptr<LrSchedule> schedule;
  if (o.schedule == "cosine")
    schedule = std::make_unique<CosineLR>(total_steps, 0.f, std::min<int64_t>(100, total_steps / 10));
  else
    schedule = std::make_unique<StepLR>(std::max<int64_t>(1, steps_per_epoch * std::max(1, o.epochs / 3)), 0.1f);

  const std::vector<int64_t> counts = train_ds.class_counts();
  const Tensor weights = o.class_weights == "auto" ? class_weight_tensor(counts).to(device) : Tensor();

  r.checkpoint = o.out;
  r.curve = sibling(o.out, ".curve.json");
  r.has_val = has_val;
  if (!o.resume.empty()) {  // keep the curve of the epochs already done
    // The checkpoint is the truth: curve epochs past its epoch (a stop between the curve write and
    // the checkpoint write) are dropped, and a curve that cannot be read costs only the chart.
    const std::string old_curve = sibling(o.resume, ".curve.json");
    std::error_code ec;
    if (!fs::exists(old_curve, ec)) {
      std::fprintf(stderr, "train: no curve %s beside the checkpoint; the curve restarts at epoch %lld\n",
                   old_curve.c_str(), static_cast<long long>(meta.epoch + 1));
    } else {
      try {
        const CurveRead c = read_curve(old_curve);
        int64_t beyond = 0;
        for (const EpochRecord& e : c.epochs) {
          if (e.epoch <= meta.epoch)
            r.history.push_back(e);
          else
            ++beyond;
        }
        if (c.skipped > 0)
          std::fprintf(stderr, "train: %lld epoch record(s) of %s could not be read and are dropped (first: %s)\n",
                       static_cast<long long>(c.skipped), old_curve.c_str(), c.problems.front().c_str());
        if (beyond > 0)
          std::fprintf(stderr,
                       "train: %lld epoch(s) of %s lie beyond the checkpoint's epoch %lld (a run stopped "
                       "between the two writes) and are dropped\n",
                       static_cast<long long>(beyond), old_curve.c_str(), static_cast<long long>(meta.epoch));
        if (static_cast<int64_t>(r.history.size()) < meta.epoch)
          std::fprintf(stderr,
                       "train: %s holds %zu of the checkpoint's %lld finished epoch(s); the chart will lack "
                       "the others\n",
                       old_curve.c_str(), r.history.size(), static_cast<long long>(meta.epoch));
      } catch (const std::exception& e) {
        std::fprintf(stderr,
                     "train: the curve cannot be read (%s); resuming from the checkpoint, the curve "
                     "restarts at epoch %lld\n",
                     e.what(), static_cast<long long>(meta.epoch + 1));
      }
    }
  }

  if (!o.quiet) {
    std::string w;
    if (weights.defined())
      for (size_t c = 0; c < counts.size(); ++c)
        w += strf("%s%s %lld (w %.2f)", c ? ", " : "", train_ds.class_names[c].c_str(),
                  static_cast<long long>(counts[c]), weights.data()[c]);
    else
      for (size_t c = 0; c < counts.size(); ++c)
        w += strf("%s%s %lld", c ? ", " : "", train_ds.class_names[c].c_str(), static_cast<long long>(counts[c]));
    std::printf(
        "train: %s at %lld px (%lld parameters) on %s [%s: %s]; val %lld images; %s lr %g, %s schedule, "
        "batch %lld, epochs %lld..%d, %d thread(s), seed %llu\n",
        meta.arch.c_str(), static_cast<long long>(meta.size), static_cast<long long>(model.num_parameters()),
        o.data.c_str(), o.train_split.c_str(), w.c_str(), static_cast<long long>(has_val ? val_ds.size() : 0),
        o.optimizer.c_str(), lr, o.schedule.c_str(), static_cast<long long>(o.batch),
        static_cast<long long>(meta.epoch + 1), o.epochs, runtime_threads(), static_cast<unsigned long long>(o.seed));
    if (!o.resume.empty())
      std::printf("train: resuming after epoch %lld (step %lld); %s\n", static_cast<long long>(meta.epoch),
                  static_cast<long long>(meta.step), optimizer_resume.c_str());
    std::fflush(stdout);
  }

  int64_t step = meta.step;
  // The checkpoint a stop leaves: the one resumed from until this run writes its own.
  std::string last_checkpoint = o.resume;
  int64_t last_epoch = meta.epoch;
  // After a stop signal: nothing is half-written (the flag is only checked between steps and
  // writes), so say where things stand and how to continue, and let main() exit with 128 + signal.
  auto stop = [&](int64_t epoch, int64_t s) {
    const int sig = interrupt_signal();
    std::string msg = strf("train: interrupted at epoch %lld (step %lld/%lld); ", static_cast<long long>(epoch),
                           static_cast<long long>(s), static_cast<long long>(steps_per_epoch));
    if (last_checkpoint.empty())
      msg += "no checkpoint was written yet; start again with: melanoma train --out " + shell_word(o.out) + " --arch " +
             shell_word(o.arch) + " --size " + std::to_string(o.size) + continue_flags(o);
    else
      msg += strf("the last checkpoint (epoch %lld) is %s; resume with: melanoma train --resume ",
                  static_cast<long long>(last_epoch), last_checkpoint.c_str()) +
             shell_word(last_checkpoint) + " --out " + shell_word(o.out) + continue_flags(o);
    std::fflush(stdout);
    std::fprintf(stderr, "\n%s\n", msg.c_str());
    throw Interrupted(sig, msg);
  };
  model.train();
  data::Batch b;
  for (int64_t epoch = meta.epoch + 1; epoch <= o.epochs; ++epoch) {
    if (interrupt_requested()) stop(epoch, 0);
    const double te = now_s();
    loader.start_epoch(epoch);
    // On a terminal the bar redraws; in a log the epoch line below is the one line per epoch.
    ProgressBar bar(strf("%s %lld/%d", o.label.c_str(), static_cast<long long>(epoch), o.epochs), steps_per_epoch,
                    "img", progress() == ProgressBar::Mode::Plain ? ProgressBar::Mode::Plain : progress(true));
    double loss_sum = 0, outside_sum = 0;
    int64_t seen = 0, correct = 0, s = 0, guided = 0;
    while (loader.next(b)) {
      ++s;
      schedule->apply(*opt, step);
      Tensor logits = model(b.images.to(device));  // decoded on the CPU by the loader
      Tensor loss = cross_entropy(logits, b.labels, weights);
      if (guide) {
        const Tensor outside = guide->loss(b.masks, b.labels);
        if (guide->last_count() > 0) {
          outside_sum += guide->last_outside() * static_cast<double>(guide->last_count());
          guided += guide->last_count();
          loss = add(loss, mul_scalar(outside, o.mask_guidance));
        }
      }
      const float lv = loss.item();
      GLIMPSE_CHECK(std::isfinite(lv), "train: the loss became ", lv, " at epoch ", epoch, ", step ", s, "/",
                    steps_per_epoch, " (global step ", step + 1, ", lr ", opt->lr(), "); the last good checkpoint is ",
                    o.out, "; try a smaller --lr");
      opt->zero_grad();
      loss.backward();
      opt->step();
      ++step;
      const std::vector<int64_t> pred = argmax_rows(logits);
      for (size_t k = 0; k < pred.size(); ++k) correct += pred[k] == b.labels[k];
      const int64_t bs = static_cast<int64_t>(b.labels.size());
      loss_sum += static_cast<double>(lv) * static_cast<double>(bs);
      seen += bs;
      bar.set_postfix(strf("loss %.4f  acc %.1f%%  lr %.2g%s", loss_sum / static_cast<double>(seen),
                           100.0 * static_cast<double>(correct) / static_cast<double>(seen), opt->lr(),
                           guided ? strf("  cam-out %.3f", outside_sum / static_cast<double>(guided)).c_str() : ""));
      bar.step(bs);
      if (o.on_step) o.on_step(epoch, s);
      if (interrupt_requested()) break;  // within one step of the signal
    }
    bar.finish();
    if (interrupt_requested()) stop(epoch, s);
    GLIMPSE_CHECK(seen > 0, "train: epoch ", epoch, " saw no images (", loader.skipped(), " unreadable)");

    EpochRecord e;
    e.epoch = epoch;
    e.train_loss = loss_sum / static_cast<double>(seen);
    e.train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
    e.lr = opt->lr();
    if (guided > 0) e.train_cam_outside = outside_sum / static_cast<double>(guided);
    if (has_val) {
      const Predictions p = predict(model, val_ds, o.size, meta.preprocess, "  val");
      r.val = classification_metrics(p.probs, p.labels, meta.class_names);
      e.has_val = true;
      e.val_loss = p.loss;
      e.val_accuracy = r.val.accuracy;
      e.auc_melanoma = r.val.auc_melanoma;
      e.auc_keratosis = r.val.auc_keratosis;
      e.auc_mean = r.val.auc_mean;
      meta.val_auc_mean = r.val.auc_mean;
      if (interrupt_requested()) stop(epoch, s);  // predict() stops early on the flag: this epoch is not saved
    }
    model.train();
    e.seconds = seconds_since(te);
    r.history.push_back(e);

    meta.epoch = epoch;
    meta.step = step;
    // The curve first: a stop between the two writes leaves a curve one epoch ahead, which the
    // resume trims to the checkpoint; the other order would lose this epoch from the curve for good.
    write_json(r.curve, curve_to_json(r));
    save_checkpoint(model, o.out, meta_to_map(meta), opt.get());
    last_checkpoint = o.out;
    last_epoch = epoch;
    if (!o.quiet) {
      std::string val = has_val ? strf(" | val loss %.4f acc %.1f%% AUC mel %.3f sk %.3f mean %.3f", e.val_loss,
                                       100 * e.val_accuracy, e.auc_melanoma, e.auc_keratosis, e.auc_mean)
                                : std::string();
      const std::string out = e.train_cam_outside >= 0 ? strf(" cam-out %.3f", e.train_cam_outside) : std::string();
      std::printf("epoch %lld/%d: train loss %.4f acc %.1f%%%s%s | %.1fs\n", static_cast<long long>(epoch), o.epochs,
                  e.train_loss, 100 * e.train_accuracy, out.c_str(), val.c_str(), e.seconds);
      std::fflush(stdout);
    }
  }
  if (loader.skipped() > 0)
    std::fprintf(stderr, "train: %lld unreadable image(s) skipped\n", static_cast<long long>(loader.skipped()));
  model.eval();
  // Callers (two-stage, roar, the demo) use the model beside CPU data; checkpoints are already saved.
  model.to(Device::cpu());
  r.seconds = seconds_since(t0);
  if (!o.quiet) {
    std::printf("train: done in %.1fs; checkpoint %s, curve %s\n", r.seconds, o.out.c_str(), r.curve.c_str());
    std::fflush(stdout);
  }
  return r;
}

StartingModel load_or_train(const std::string& model_path, const TrainOptions& train, const char* who) {
  StartingModel m;
  m.data_dir = train.data;
  if (!model_path.empty()) {
    LoadedModel lm = load_model(model_path);
    m.model = lm.model;
    m.meta = lm.meta;
    if (m.data_dir.empty()) m.data_dir = m.meta.data;
    std::printf("%s: starting model %s (%s, %lld px)\n", who, model_path.c_str(), m.meta.arch.c_str(),
                static_cast<long long>(m.meta.size));
  } else {
    std::printf("%s: training the starting model\n", who);
    std::fflush(stdout);
    TrainResult r = train_model(train);
    m.model = r.model;
    m.meta = r.meta;
    m.data_dir = m.meta.data;
  }
  GLIMPSE_CHECK(m.meta.classes == 3 && find_class(m.meta.class_names, kMelanoma) >= 0 &&
                    find_class(m.meta.class_names, kKeratosis) >= 0,
                who,
                ": the ISIC scoring needs a 3-class model with classes melanoma, seborrheic_keratosis and nevus; "
                "this one has ",
                m.meta.classes, " (", m.meta.class_names.empty() ? "" : m.meta.class_names[0],
                m.meta.classes > 1 ? ", " + m.meta.class_names[1] : "", m.meta.classes > 2 ? ", ..." : "", ")");
  return m;
}

}  // namespace mel
