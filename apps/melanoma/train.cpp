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
#include <map>
#include <sstream>

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
#include "layers/dist/sync.h"
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

// Everything one training run holds, built by set_up_run; the functions below read like the story:
// set up, then per epoch train, validate, checkpoint.
struct TrainRun {
  TrainOptions o;
  dist::Communicator* comm = nullptr;
  Device device;
  TrainResult r;
  data::Dataset train_ds, val_ds;
  bool has_val = false;
  std::unique_ptr<Optimizer> opt;
  std::string optimizer_resume;  // what happened to the optimizer's state on --resume
  std::unique_ptr<attr::MaskGuidance> guide;
  std::unique_ptr<data::DataLoader> loader;
  std::unique_ptr<LrSchedule> schedule;
  std::unique_ptr<dist::GradientAverager> averager;
  int64_t synced_bn = 0;  // batch-norm layers synchronized over the ranks (--sync-bn), 0: per-rank statistics
  std::vector<int64_t> counts;
  Tensor weights;  // class weights, or undefined
  float lr = 0;
  int64_t steps_per_epoch = 1, step = 0, first_step = 0;  // first_step: where this run started
  std::string last_checkpoint;  // what a stop leaves: the one resumed from until this run writes its own
  int64_t last_epoch = 0;

  Model& model() { return *r.model; }
  bool leader() const { return comm->rank() == 0; }
};

// The running sums of one epoch (this rank's; summed over ranks at its end).
struct EpochTally {
  double loss_sum = 0;      // of the global batches (loss x images), the same on every rank
  int64_t loss_images = 0;  // images of the global batches
  double outside_sum = 0;
  int64_t seen = 0, correct = 0, guided = 0;  // this rank's
};

void check_options(const TrainOptions& o) {
  GLIMPSE_CHECK(o.epochs >= 1, "train: --epochs must be >= 1, got ", o.epochs);
  GLIMPSE_CHECK(o.batch >= 1, "train: --batch must be >= 1, got ", o.batch);
  GLIMPSE_CHECK(o.schedule == "cosine" || o.schedule == "step", "train: unknown schedule '", o.schedule,
                "'; known: cosine, step");
  GLIMPSE_CHECK(o.class_weights == "auto" || o.class_weights == "none", "train: unknown --class-weights '",
                o.class_weights, "'; known: auto, none");
  GLIMPSE_CHECK(!o.out.empty(), "train: no checkpoint path (--out FILE)");
  GLIMPSE_CHECK(!fs::is_directory(o.out), "train: --out ", o.out, " is a directory; give a file name");
  GLIMPSE_CHECK(o.bucket_mb > 0, "train: --bucket-mb must be > 0, got ", o.bucket_mb);
}

// "--device cuda:N" lines as "--device cuda": the GPU may differ between ranks (one GPU per rank,
// --device cuda:<local rank>), the kind of device may not.
std::string without_gpu_index(const std::string& lines) {
  std::istringstream in(lines);
  std::string out;
  for (std::string line; std::getline(in, line);)
    out += (line.rfind("--device cuda:", 0) == 0 ? std::string("--device cuda") : line) + "\n";
  return out;
}

// Ranks started with other flags or another build would train different models in lockstep and
// overwrite each other's view of the run: refused before any work, naming the rank and the flag.
void check_ranks_agree(const TrainOptions& o, dist::Communicator& comm) {
  if (comm.size() == 1) return;
  GLIMPSE_CHECK(o.batch >= comm.size(), "train: --batch ", o.batch, " is smaller than the ", comm.size(),
                " ranks; every rank needs at least one image of each global batch");
  const std::string flags = "--out " + o.out + "\n--arch " + o.arch + "\n--size " + std::to_string(o.size) +
                            "\n--synthetic " + std::to_string(o.synthetic) + "\n--resume " + o.resume + "\n--init " +
                            o.init + "\n--freeze " + o.freeze + strf("\n--momentum %g", o.momentum) +
                            strf("\n--bucket-mb %g", o.bucket_mb) + strf("\n--sync-bn %d", o.sync_bn) + "\n" +
                            continue_flags(o) + "\nbinary " + dist::binary_fingerprint();
  // One flag a line, so that the refusal names the flag that differs.
  std::string lines;
  for (size_t i = 0; i < flags.size(); ++i) lines += flags.compare(i, 3, " --") == 0 ? '\n' : flags[i];
  dist::check_same_everywhere(comm, "train", without_gpu_index(lines));
}

// Checks that --out can be written (before the first epoch's work) and removes orphans of killed
// runs beside it, each the size of a checkpoint. Rank 0 only: the others write nothing.
fs::path prepare_out_dir(const TrainOptions& o) {
  const fs::path out_dir = fs::absolute(o.out).parent_path();
  ensure_dir(out_dir.string());
  io::check_writable_dir(out_dir.string());
  const std::string curve_path = sibling(o.out, ".curve.json");
  const int removed = io::remove_stale_temps(o.out) + io::remove_stale_temps(curve_path);
  if (removed > 0)
    std::fprintf(stderr, "train: removed %d temporary file(s) left beside %s by killed runs\n", removed, o.out.c_str());
  return out_dir;
}

// --synthetic N: the synthetic set is written beside the checkpoint, then read as --data.
void make_synthetic_data(TrainOptions& o, const fs::path& out_dir) {
  GLIMPSE_CHECK(o.data.empty(), "train: give either --data or --synthetic, not both");
  SynthOptions s;
  s.out = (out_dir / "synthetic").string();
  s.count = o.synthetic;
  s.size = std::max<int64_t>(o.size, 64);
  s.seed = o.seed;
  run_synth(s);
  o.data = s.out;
}

// The checkpoint to resume: its metadata decides arch and size.
void load_resume_checkpoint(TrainRun& t) {
  TrainOptions& o = t.o;
  LoadedModel lm = load_model(o.resume);
  t.r.model = lm.model;
  t.r.meta = lm.meta;
  const ModelMeta& meta = t.r.meta;
  if (t.leader() && (meta.arch != o.arch || meta.size != o.size))
    std::printf("train: resuming %s: %s at %lld px (from the checkpoint)\n", o.resume.c_str(), meta.arch.c_str(),
                static_cast<long long>(meta.size));
  o.arch = meta.arch;
  o.size = meta.size;
  GLIMPSE_CHECK(meta.epoch < o.epochs, "train: ", o.resume, " has already completed ", meta.epoch,
                " epoch(s); ask for more with --epochs (got ", o.epochs, ")");
}

void open_datasets(TrainRun& t) {
  const TrainOptions& o = t.o;
  t.train_ds = open_dataset(o.data, o.train_split);
  if (o.permute_labels) t.r.labels_changed = permute_labels(t.train_ds, o.seed);
  if (!o.val_split.empty() && !o.permute_labels) {  // permuted labels: nothing to validate against
    try {
      t.val_ds = data::Dataset::open(o.data, o.val_split);
      t.has_val = t.val_ds.size() > 0;
    } catch (const std::exception& e) {
      if (t.leader())
        std::fprintf(stderr, "train: no validation split '%s' in %s (%s); training without validation\n",
                     o.val_split.c_str(), o.data.c_str(), e.what());
    }
  }
  const int64_t classes = static_cast<int64_t>(t.train_ds.class_names.size());
  GLIMPSE_CHECK(classes >= 2, "train: ", o.data, " has ", classes, " class(es); need at least 2");
  GLIMPSE_CHECK(static_cast<int64_t>(t.train_ds.size()) >= t.comm->size(), "train: split '", o.train_split, "' of ",
                o.data, " has ", t.train_ds.size(), " image(s), fewer than the ", t.comm->size(), " ranks");
}

// A fresh model, or the resumed one with the data's labels in its class order.
void build_model(TrainRun& t) {
  const TrainOptions& o = t.o;
  ModelMeta& meta = t.r.meta;
  if (t.r.model) {
    align_dataset_to_model(meta, t.train_ds, o.resume);
    if (t.has_val) align_dataset_to_model(meta, t.val_ds, o.resume);
  } else {
    const int64_t classes = static_cast<int64_t>(t.train_ds.class_names.size());
    Rng rng(o.seed);
    t.r.model = make_model(o.arch, classes, o.size, rng);
    meta.arch = o.arch;
    meta.size = o.size;
    meta.classes = classes;
    meta.class_names = t.train_ds.class_names;
    meta.seed = o.seed;
    if (!o.init.empty()) meta.init = init_model(*t.r.model, o.init);
    meta.freeze = o.freeze;
  }
  freeze_layers(t.model(), meta.freeze);  // a resumed run keeps the checkpoint's
  // On the device before the optimizer exists and loads its state: state lives beside its parameter.
  t.model().to(t.device);
}

// The optimizer; resuming with the same one continues its moments and step counts.
void build_optimizer(TrainRun& t) {
  const TrainOptions& o = t.o;
  ModelMeta& meta = t.r.meta;
  // Default rates: the small net (no BatchNorm) takes a larger Adam step than the deep ones.
  t.lr = o.lr > 0 ? o.lr : o.optimizer == "sgd" ? 0.02f : (meta.arch == "small-gap" ? 3e-3f : 1e-3f);
  t.opt = make_optimizer(o, t.model(), t.lr);
  if (!o.resume.empty()) {
    if (meta.optimizer != o.optimizer) {
      t.optimizer_resume = "the checkpoint was trained with " + meta.optimizer + ", not " + o.optimizer +
                           ": the optimizer's moments restart from zero";
    } else if (load_checkpoint(t.model(), o.resume, /*strict=*/true, t.opt.get()).optimizer_loaded) {
      t.optimizer_resume = "the optimizer continues from its saved state";
    } else {
      t.optimizer_resume = "the checkpoint holds no optimizer state: its moments restart from zero";
    }
  }
  meta.optimizer = o.optimizer;
  meta.schedule = o.schedule;
  meta.lr = t.lr;
  meta.epochs = o.epochs;
  meta.data = o.data;
  // The preprocessing is part of the model: a resumed run keeps the checkpoint's.
  if (o.resume.empty()) meta.preprocess = o.preprocess;
  meta.mask_guidance = std::max(meta.mask_guidance, static_cast<double>(o.mask_guidance));  // ever guided: recorded
}

// Every rank starts from rank 0's weights, buffers and optimizer state: a fresh model is drawn from
// the same seed everywhere, but --init files or a resume read on another node need not agree.
void start_in_step(TrainRun& t) {
  dist::broadcast_module(*t.comm, t.model(), 0);
  dist::broadcast_optimizer(*t.comm, *t.opt, 0);
  t.averager = std::make_unique<dist::GradientAverager>(*t.comm, t.model().parameters(),
                                                        static_cast<int64_t>(t.o.bucket_mb * (1 << 20)));
  if (t.o.sync_bn && t.comm->size() > 1) t.synced_bn = dist::synchronize_batch_norm(*t.comm, t.model());
}

// Mask guidance needs the expert masks of the training split, and a GAP -> Linear head.
void build_guidance(TrainRun& t) {
  const TrainOptions& o = t.o;
  if (o.mask_guidance <= 0) return;
  int64_t with_mask = 0;
  for (const auto& s : t.train_ds.samples) with_mask += !s.mask_path.empty();
  GLIMPSE_CHECK(with_mask > 0, "train: --mask-guidance needs lesion masks, and split '", o.train_split, "' of ", o.data,
                " has none (expected masks/<id>_segmentation.png)");
  if (with_mask < static_cast<int64_t>(t.train_ds.size()) && t.leader())
    std::fprintf(stderr,
                 "train: --mask-guidance: %lld of %lld training images have no mask; they train on the "
                 "classification loss only\n",
                 static_cast<long long>(static_cast<int64_t>(t.train_ds.size()) - with_mask),
                 static_cast<long long>(t.train_ds.size()));
  t.guide = std::make_unique<attr::MaskGuidance>(t.model());
}

// The loader (this rank's slice of every global batch), the schedule and the class weights.
void build_loader(TrainRun& t) {
  const TrainOptions& o = t.o;
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.image_size = o.size;
  lo.shuffle = true;
  lo.augment = o.augment;
  lo.augment_options.vignette = o.vignette;
  lo.augment_options.stickers = o.stickers;
  lo.with_masks = t.guide != nullptr;  // augmented together with their images
  lo.preprocess = t.r.meta.preprocess;
  lo.drop_last = static_cast<int64_t>(t.train_ds.size()) > o.batch;  // no 1-image batch under BatchNorm
  lo.threads = loader_threads();
  lo.seed = o.seed;
  lo.shard = t.comm->rank();
  lo.shards = t.comm->size();
  t.loader = std::make_unique<data::DataLoader>(t.train_ds, lo);
  t.steps_per_epoch = std::max<int64_t>(1, t.loader->batches_per_epoch());
  const int64_t total_steps = t.steps_per_epoch * o.epochs;
  if (o.schedule == "cosine")
    t.schedule = std::make_unique<CosineLR>(total_steps, 0.f, std::min<int64_t>(100, total_steps / 10));
  else
    t.schedule = std::make_unique<StepLR>(std::max<int64_t>(1, t.steps_per_epoch * std::max(1, o.epochs / 3)), 0.1f);
  t.counts = t.train_ds.class_counts();
  if (o.class_weights == "auto") t.weights = class_weight_tensor(t.counts).to(t.device);
}

// The curve of the epochs already done. The checkpoint is the truth: curve epochs past its epoch
// (a stop between the curve write and the checkpoint write) are dropped, and a curve that cannot
// be read costs only the chart.
void resume_curve(TrainRun& t) {
  const ModelMeta& meta = t.r.meta;
  const std::string old_curve = sibling(t.o.resume, ".curve.json");
  std::error_code ec;
  if (!fs::exists(old_curve, ec)) {
    std::fprintf(stderr, "train: no curve %s beside the checkpoint; the curve restarts at epoch %lld\n",
                 old_curve.c_str(), static_cast<long long>(meta.epoch + 1));
    return;
  }
  try {
    const CurveRead c = read_curve(old_curve);
    int64_t beyond = 0;
    for (const EpochRecord& e : c.epochs) {
      if (e.epoch <= meta.epoch)
        t.r.history.push_back(e);
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
    if (static_cast<int64_t>(t.r.history.size()) < meta.epoch)
      std::fprintf(stderr,
                   "train: %s holds %zu of the checkpoint's %lld finished epoch(s); the chart will lack "
                   "the others\n",
                   old_curve.c_str(), t.r.history.size(), static_cast<long long>(meta.epoch));
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "train: the curve cannot be read (%s); resuming from the checkpoint, the curve "
                 "restarts at epoch %lld\n",
                 e.what(), static_cast<long long>(meta.epoch + 1));
  }
}

void print_start(TrainRun& t) {
  const TrainOptions& o = t.o;
  const ModelMeta& meta = t.r.meta;
  std::string w;
  for (size_t c = 0; c < t.counts.size(); ++c) {
    w += strf("%s%s %lld", c ? ", " : "", t.train_ds.class_names[c].c_str(), static_cast<long long>(t.counts[c]));
    if (t.weights.defined()) w += strf(" (w %.2f)", t.weights.to(Device::cpu()).data()[c]);
  }
  std::printf(
      "train: %s at %lld px (%lld parameters) on %s [%s: %s]; val %lld images; %s lr %g, %s schedule, "
      "batch %lld, epochs %lld..%d, %d thread(s), seed %llu\n",
      meta.arch.c_str(), static_cast<long long>(meta.size), static_cast<long long>(t.model().num_parameters()),
      o.data.c_str(), o.train_split.c_str(), w.c_str(), static_cast<long long>(t.has_val ? t.val_ds.size() : 0),
      o.optimizer.c_str(), t.lr, o.schedule.c_str(), static_cast<long long>(o.batch),
      static_cast<long long>(meta.epoch + 1), o.epochs, runtime_threads(), static_cast<unsigned long long>(o.seed));
  if (t.comm->size() > 1)
    std::printf(
        "train: %d ranks (%s), %lld images per rank per step, %lld gradient bucket(s); batch norm uses "
        "%s statistics\n",
        t.comm->size(), t.comm->backend().c_str(), static_cast<long long>(o.batch / t.comm->size()),
        static_cast<long long>(t.averager->buckets()),
        t.synced_bn ? strf("synchronized (%lld layers)", static_cast<long long>(t.synced_bn)).c_str() : "per-rank");
  if (!o.resume.empty())
    std::printf("train: resuming after epoch %lld (step %lld); %s\n", static_cast<long long>(meta.epoch),
                static_cast<long long>(meta.step), t.optimizer_resume.c_str());
  std::fflush(stdout);
}

// Everything before the first step. Steps that read files a rank may lack (data, checkpoint, --init)
// are agreed on, so that a fault on one rank stops every rank with that rank's message.
TrainRun set_up_run(const TrainOptions& o_in) {
  TrainRun t;
  t.o = o_in;
  t.comm = o_in.comm ? o_in.comm : &dist::local();
  if (!t.leader()) t.o.quiet = true;  // rank 0 prints for the job
  check_options(t.o);
  check_ranks_agree(t.o, *t.comm);
  t.device = resolve_device(t.o.device);  // an unusable device fails before any work
  fs::path out_dir;
  dist::agree(*t.comm, "train", [&] {
    if (t.leader()) out_dir = prepare_out_dir(t.o);
  });
  if (t.o.synthetic > 0) {
    // Written by rank 0 (beside the checkpoint), then read by all: one machine, or a shared folder.
    dist::agree(*t.comm, "train: --synthetic", [&] {
      if (t.leader()) make_synthetic_data(t.o, out_dir);
    });
    dist::broadcast_string(*t.comm, t.o.data, 0);
  }
  dist::agree(*t.comm, "train: reading the data and the starting weights", [&] {
    if (!t.o.resume.empty()) load_resume_checkpoint(t);
    open_datasets(t);
    build_model(t);
    build_optimizer(t);
    build_guidance(t);
    build_loader(t);
  });
  start_in_step(t);
  t.r.checkpoint = t.o.out;
  t.r.curve = sibling(t.o.out, ".curve.json");
  t.r.has_val = t.has_val;
  if (!t.o.resume.empty() && t.leader()) resume_curve(t);
  t.step = t.first_step = t.r.meta.step;
  t.last_checkpoint = t.o.resume;
  t.last_epoch = t.r.meta.epoch;
  if (!t.o.quiet) print_start(t);
  return t;
}

// After a stop signal: nothing is half-written (the flag is only checked between steps and
// writes), so say where things stand and how to continue, and let main() exit with 128 + signal.
[[noreturn]] void stop(const TrainRun& t, int64_t epoch, int64_t s) {
  const TrainOptions& o = t.o;
  const int sig = interrupt_signal();
  std::string msg = strf("train: interrupted at epoch %lld (step %lld/%lld); ", static_cast<long long>(epoch),
                         static_cast<long long>(s), static_cast<long long>(t.steps_per_epoch));
  if (t.last_checkpoint.empty())
    msg += "no checkpoint was written yet; start again with: melanoma train --out " + shell_word(o.out) + " --arch " +
           shell_word(o.arch) + " --size " + std::to_string(o.size) + continue_flags(o);
  else
    msg += strf("the last checkpoint (epoch %lld) is %s; resume with: melanoma train --resume ",
                static_cast<long long>(t.last_epoch), t.last_checkpoint.c_str()) +
           shell_word(t.last_checkpoint) + " --out " + shell_word(o.out) + continue_flags(o);
  std::fflush(stdout);
  std::fprintf(stderr, "\n%s\n", msg.c_str());
  throw Interrupted(sig, msg);
}

// The loss of one batch: cross-entropy, plus the CAM-outside-the-mask term under mask guidance.
Tensor batch_loss(TrainRun& t, const Tensor& logits, const data::Batch& b, EpochTally& tally) {
  Tensor loss = cross_entropy(logits, b.labels, t.weights);
  if (!t.guide) return loss;
  const Tensor outside = t.guide->loss(b.masks, b.labels);
  if (t.guide->last_count() == 0) return loss;
  tally.outside_sum += t.guide->last_outside() * static_cast<double>(t.guide->last_count());
  tally.guided += t.guide->last_count();
  return add(loss, mul_scalar(outside, t.o.mask_guidance));
}

// This rank's share of the global batch's loss: its images' total class weight (the denominator of
// its weighted mean), so that averaging gradients by it gives the global batch's mean.
double batch_weight(const TrainRun& t, const data::Batch& b) {
  if (!t.weights.defined()) return static_cast<double>(b.labels.size());
  const Tensor w = t.weights.to(Device::cpu());
  double sum = 0;
  for (int64_t y : b.labels) sum += w.data()[y];
  return sum;
}

// The global batch's loss (the same on every rank) and this rank's predictions.
void count(const Tensor& logits, const data::Batch& b, const dist::GradientAverager::GlobalBatch& global,
           EpochTally& tally) {
  const std::vector<int64_t> pred = argmax_rows(logits);
  for (size_t k = 0; k < pred.size(); ++k) tally.correct += pred[k] == b.labels[k];
  tally.seen += static_cast<int64_t>(b.labels.size());
  tally.loss_sum += global.loss * static_cast<double>(global.images);
  tally.loss_images += global.images;
}

// Each rank backpropagates its own loss; the averager weights the gradients by the ranks' shares.
dist::GradientAverager::GlobalBatch plain_backward(TrainRun& t, const Tensor& loss, float lv, const data::Batch& b) {
  loss.backward();
  return t.averager->average(batch_weight(t, b), lv, static_cast<int64_t>(b.labels.size()));
}

// With synchronized batch norm the statistics' backward adds up every rank's gradient, so each
// rank must backpropagate its share of the global loss, w_r / W of it (W = sum of the ranks'
// weights), not its own mean. Seeded with N w_r / W and averaged with equal weights (a mean over
// N), the gradients are those of the global batch's weighted mean, and so is the loss printed.
dist::GradientAverager::GlobalBatch synced_backward(TrainRun& t, const Tensor& loss, float lv, const data::Batch& b) {
  const double w = batch_weight(t, b);
  Tensor total = Tensor::from_vector({1}, {static_cast<float>(w)});
  t.comm->allreduce_sum(total);
  const double share = t.comm->size() * w / total.data()[0];
  mul_scalar(loss, static_cast<float>(share)).backward();
  return t.averager->average(1.0, lv * share, static_cast<int64_t>(b.labels.size()));
}

// One optimizer step on this rank's slice of a global batch.
void train_step(TrainRun& t, const data::Batch& b, int64_t epoch, int64_t s, EpochTally& tally) {
  t.schedule->apply(*t.opt, t.step);
  const Tensor logits = t.model()(b.images.to(t.device));  // decoded on the CPU by the loader
  const Tensor loss = batch_loss(t, logits, b, tally);
  const float lv = loss.item();
  GLIMPSE_CHECK(std::isfinite(lv), "train: the loss became ", lv, " at epoch ", epoch, ", step ", s, "/",
                t.steps_per_epoch, " (global step ", t.step + 1, ", lr ", t.opt->lr(), ") on rank ", t.comm->rank(),
                "; the last good checkpoint is ", t.o.out, "; try a smaller --lr");
  t.opt->zero_grad();
  const auto global = t.synced_bn ? synced_backward(t, loss, lv, b) : plain_backward(t, loss, lv, b);
  t.opt->step();
  ++t.step;
  count(logits, b, global, tally);
}

// The epoch's sums over every rank (accuracy and CAM share; the loss is global already).
void sum_over_ranks(dist::Communicator& comm, EpochTally& tally) {
  if (comm.size() == 1) return;
  Tensor v = Tensor::from_vector({4}, {static_cast<float>(tally.outside_sum), static_cast<float>(tally.seen),
                                       static_cast<float>(tally.correct), static_cast<float>(tally.guided)});
  comm.allreduce_sum(v);
  tally.outside_sum = v.data()[0];
  tally.seen = static_cast<int64_t>(v.data()[1]);
  tally.correct = static_cast<int64_t>(v.data()[2]);
  tally.guided = static_cast<int64_t>(v.data()[3]);
}

EpochRecord train_epoch(TrainRun& t, int64_t epoch) {
  const TrainOptions& o = t.o;
  if (interrupt_requested()) stop(t, epoch, 0);
  t.loader->start_epoch(epoch);
  // On a terminal the bar redraws; in a log the epoch line below is the one line per epoch. Rank 0
  // draws it for the job, counting every rank's images (the global rate).
  const ProgressBar::Mode mode = !t.leader()                              ? ProgressBar::Mode::Silent
                                 : progress() == ProgressBar::Mode::Plain ? ProgressBar::Mode::Plain
                                                                          : progress(true);
  ProgressBar bar(strf("%s %lld/%d", o.label.c_str(), static_cast<long long>(epoch), o.epochs), t.steps_per_epoch,
                  "img", mode);
  EpochTally tally;
  data::Batch b;
  int64_t s = 0;
  while (t.loader->next(b)) {
    train_step(t, b, epoch, ++s, tally);
    const double seen = static_cast<double>(tally.seen);
    bar.set_postfix(strf(
        "loss %.4f  acc %.1f%%  lr %.2g%s", tally.loss_sum / static_cast<double>(tally.loss_images),
        100.0 * static_cast<double>(tally.correct) / seen, t.opt->lr(),
        tally.guided ? strf("  cam-out %.3f", tally.outside_sum / static_cast<double>(tally.guided)).c_str() : ""));
    bar.step(static_cast<int64_t>(b.labels.size()) * t.comm->size());
    if (o.on_step) o.on_step(epoch, s);
    if (interrupt_requested()) break;  // within one step of the signal
  }
  bar.finish();
  if (interrupt_requested()) stop(t, epoch, s);
  sum_over_ranks(*t.comm, tally);
  GLIMPSE_CHECK(tally.seen > 0, "train: epoch ", epoch, " saw no images (", t.loader->skipped(), " unreadable)");
  EpochRecord e;
  e.epoch = epoch;
  e.train_loss = tally.loss_sum / static_cast<double>(tally.loss_images);
  e.train_accuracy = static_cast<double>(tally.correct) / static_cast<double>(tally.seen);
  e.lr = t.opt->lr();
  if (tally.guided > 0) e.train_cam_outside = tally.outside_sum / static_cast<double>(tally.guided);
  return e;
}

// The validation split's loss and ISIC AUCs, on rank 0 (the others wait at the next collective).
void validate(TrainRun& t, EpochRecord& e) {
  if (!t.has_val || !t.leader()) return;
  const Predictions p = predict(t.model(), t.val_ds, t.o.size, t.r.meta.preprocess, "  val");
  t.r.val = classification_metrics(p.probs, p.labels, t.r.meta.class_names);
  e.has_val = true;
  e.val_loss = p.loss;
  e.val_accuracy = t.r.val.accuracy;
  e.auc_melanoma = t.r.val.auc_melanoma;
  e.auc_keratosis = t.r.val.auc_keratosis;
  e.auc_mean = t.r.val.auc_mean;
  t.r.meta.val_auc_mean = t.r.val.auc_mean;
  if (interrupt_requested()) stop(t, e.epoch, t.steps_per_epoch);  // predict() stops early: not saved
}

// The curve, then the checkpoint (rank 0; atomically). A stop between the two writes leaves a
// curve one epoch ahead, which the resume trims to the checkpoint; the other order would lose this
// epoch from the curve for good. Batch-norm running statistics are averaged over the ranks first.
void save_epoch(TrainRun& t, const EpochRecord& e) {
  ModelMeta& meta = t.r.meta;
  meta.epoch = e.epoch;
  meta.step = t.step;
  t.r.history.push_back(e);
  dist::average_buffers(*t.comm, t.model());
  // Agreed on: a failed write (a full disk) stops every rank with rank 0's message, and no rank
  // goes on before the checkpoint is there.
  dist::agree(*t.comm, "train: writing the checkpoint", [&] {
    if (!t.leader()) return;
    std::map<std::string, std::string> m = meta_to_map(meta);
    m["data_parallel_ranks"] = std::to_string(t.comm->size());
    m["batch_norm_statistics"] =
        t.synced_bn > 0 ? strf("synchronized over %d ranks (the global batch of %lld; --sync-bn)", t.comm->size(),
                               static_cast<long long>(t.o.batch))
        : t.comm->size() > 1
            ? strf(
                  "per-rank (batches of %lld of the global %lld; running "
                  "statistics averaged over ranks at each checkpoint)",
                  static_cast<long long>(t.o.batch / t.comm->size()), static_cast<long long>(t.o.batch))
            : std::string("one process");
    write_json(t.r.curve, curve_to_json(t.r));
    save_checkpoint(t.model(), t.o.out, m, t.opt.get());
  });
  t.last_checkpoint = t.o.out;
  t.last_epoch = e.epoch;
}

void print_epoch(const TrainRun& t, const EpochRecord& e) {
  const std::string val = e.has_val ? strf(" | val loss %.4f acc %.1f%% AUC mel %.3f sk %.3f mean %.3f", e.val_loss,
                                           100 * e.val_accuracy, e.auc_melanoma, e.auc_keratosis, e.auc_mean)
                                    : std::string();
  const std::string out = e.train_cam_outside >= 0 ? strf(" cam-out %.3f", e.train_cam_outside) : std::string();
  std::printf("epoch %lld/%d: train loss %.4f acc %.1f%%%s%s | %.1fs\n", static_cast<long long>(e.epoch), t.o.epochs,
              e.train_loss, 100 * e.train_accuracy, out.c_str(), val.c_str(), e.seconds);
  std::fflush(stdout);
}

// After the last epoch: what was skipped, the model back on the CPU in eval mode (callers -- two-stage,
// roar, the demo -- use it beside CPU data; the checkpoints are already saved), the timings.
void finish_run(TrainRun& t, double t0) {
  if (t.loader->skipped() > 0)
    std::fprintf(stderr, "train: %lld unreadable image(s) skipped%s\n", static_cast<long long>(t.loader->skipped()),
                 t.comm->size() > 1 ? strf(" on rank %d", t.comm->rank()).c_str() : "");
  t.model().eval();
  t.model().to(Device::cpu());
  t.r.seconds = seconds_since(t0);
  if (t.o.quiet) return;
  const int64_t steps = t.step - t.first_step;
  if (t.comm->size() > 1 && steps > 0)
    std::printf(
        "train: gradient allreduce %.2f ms per step on rank 0, waiting for the slowest rank included (%lld "
        "bucket(s), %d ranks, %s)\n",
        1e3 * t.averager->seconds() / static_cast<double>(steps), static_cast<long long>(t.averager->buckets()),
        t.comm->size(), t.comm->backend().c_str());
  std::printf("train: done in %.1fs; checkpoint %s, curve %s\n", t.r.seconds, t.o.out.c_str(), t.r.curve.c_str());
  std::fflush(stdout);
}

}  // namespace

TrainResult train_model(const TrainOptions& o) {
  const double t0 = now_s();
  // Ctrl-C and SIGTERM from here on set a flag that the loop checks after every step; the previous
  // handlers come back when train_model returns or throws.
  InterruptGuard interrupt_guard;
  TrainRun t = set_up_run(o);
  t.model().train();
  for (int64_t epoch = t.r.meta.epoch + 1; epoch <= t.o.epochs; ++epoch) {
    const double te = now_s();
    EpochRecord e = train_epoch(t, epoch);
    validate(t, e);
    t.model().train();
    e.seconds = seconds_since(te);
    save_epoch(t, e);
    if (!t.o.quiet) print_epoch(t, e);
  }
  finish_run(t, t0);
  return std::move(t.r);
}

}  // namespace mel
