// melanoma: the flagship app of glimpse -- train GAP classifiers on ISIC-2017-style dermoscopy
// (or on synthetic lesions, no data needed), score them as the ISIC 2017 challenge did, and ask
// every attribution method what the network took for melanoma.
//
//   build/bin/melanoma demo --out demo            # the whole story in a few minutes
//   build/bin/melanoma <subcommand> --help        # synth train eval explain predict sanity localize two-stage roar
//   report demo serve export
//
// This file only parses flags (CLI11) into the option structs of commands.h; a bad flag prints the
// error and the subcommand's usage; errors at run time print one line naming the value at fault.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "attribution/regions.h"
#include "attribution/render.h"
#include "commands.h"
#include "core/io/image.h"
#include "export.h"
#include "interrupt.h"
#include "layers/models.h"
#include "serve.h"

namespace fs = std::filesystem;
using namespace mel;

namespace {

struct Common {
  int threads = 0;
  uint64_t seed = 1;
  std::string progress = "auto";
  double max_megapixels = 40;  // pixel budget of every image read (io::set_max_image_pixels)
};

const CLI::Validator kMethod([](std::string& v) -> std::string { return check_method(v); }, "METHOD",
                             "attribution method");
const CLI::Validator kMethodList(
    [](std::string& v) -> std::string {
      if (v == "all" || v == "fast" || v == "none") return "";
      std::stringstream ss(v);
      for (std::string m; std::getline(ss, m, ',');)
        if (std::string e = check_method(m); !e.empty()) return e;
      return "";
    },
    "a,b,c|all", "method list");
std::string arch_help() {
  std::string s = "Architecture:";
  for (const auto& spec : glimpse::model_specs())
    s += "\n  " + spec.name + " (default " + std::to_string(spec.default_input_size) + " px): " + spec.description;
  return s;
}
const CLI::Validator kArch(
    [](std::string& v) -> std::string {
      for (const auto& n : glimpse::model_names())
        if (n == v) return "";
      std::string known;
      for (const auto& n : glimpse::model_names()) known += (known.empty() ? "" : ", ") + n;
      return "unknown architecture '" + v + "'; known: " + known;
    },
    "ARCH", "architecture");
const CLI::Validator kThreshold(
    [](std::string& v) -> std::string {
      try {
        glimpse::attr::parse_threshold(v);
        return "";
      } catch (const std::exception& e) {
        return e.what();
      }
    },
    "SPEC", "threshold");
const CLI::Validator kOutFile(
    [](std::string& path) -> std::string {
      if (path.empty()) return "the path is empty";
      if (fs::is_directory(path)) return path + " is a directory; give a file name";
      return "";
    },
    "FILE", "output file");
const CLI::Validator kPercents(
    [](std::string& v) -> std::string {
      std::stringstream ss(v);
      int n = 0;
      for (std::string p; std::getline(ss, p, ',');) {
        try {
          size_t used = 0;
          const int x = std::stoi(p, &used);
          if (used != p.size() || x <= 0 || x >= 100)
            return "each percentage must be an integer in (0, 100), got '" + p + "'";
        } catch (const std::exception&) {
          return "not an integer: '" + p + "'";
        }
        ++n;
      }
      return n ? "" : "no percentage given";
    },
    "10,30,...", "percentages");

void add_common(CLI::App* sub, Common& c, bool seed = true, bool reads_images = true) {
  if (reads_images)
    sub->add_option("--max-megapixels", c.max_megapixels,
                    "Largest image read, in megapixels (width x height from "
                    "its header, checked before decoding)")
        ->check(CLI::Range(0.000001, 4000.0))
        ->capture_default_str();
  sub->add_option("--threads", c.threads, "CPU threads for the kernels (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  if (seed)
    sub->add_option("--seed", c.seed, "Seed of everything random (init, shuffling, augmentation, noise)")
        ->capture_default_str();
  sub->add_option("--progress", c.progress,
                  "Progress bars on stderr: auto (redraw on a terminal, one line per job "
                  "otherwise), tty, plain, none")
      ->check(CLI::IsMember({"auto", "tty", "plain", "none"}))
      ->capture_default_str();
}

// The syntax is checked at parse time; whether the device is usable, when the command starts
// (resolve_device), so that the error says why.
void add_device(CLI::App* sub, std::string& device) {
  sub->add_option("--device", device,
                  "Where the model runs: cpu, cuda (= cuda:0) or cuda:N, e.g. --device cuda:1. "
                  "Images are decoded on the CPU; checkpoints and maps are written from the CPU. "
                  "An unusable device fails at once, saying why")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return parse_device(v) ? "" : "'" + v + "' is not a device; use cpu, cuda or cuda:N";
          },
          "cpu|cuda[:N]", "device"))
      ->capture_default_str();
}

void add_train_flags(CLI::App* sub, TrainOptions& t, bool with_out) {
  sub->add_option("--data", t.data, "Data directory (ISIC layout: labels.csv, images/, masks/)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--synthetic", t.synthetic, "Train on N generated images instead of --data (written beside --out)")
      ->check(CLI::Range(int64_t(3), int64_t(1000000)));
  sub->add_option("--train-split", t.train_split, "Split to train on")->capture_default_str();
  sub->add_option("--val-split", t.val_split, "Split to validate on after each epoch (\"\" for none)")
      ->capture_default_str();
  sub->add_option("--arch", t.arch, arch_help())->check(kArch)->capture_default_str();
  sub->add_option("--size", t.size, "Input side in pixels")
      ->check(CLI::Range(int64_t(8), int64_t(1024)))
      ->capture_default_str();
  sub->add_option("--epochs", t.epochs, "Passes over the training split")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  sub->add_option("--batch", t.batch, "Images per step")
      ->check(CLI::Range(int64_t(1), int64_t(4096)))
      ->capture_default_str();
  sub->add_option("--optimizer", t.optimizer, "sgd (Nesterov momentum), adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
  sub->add_option("--lr", t.lr,
                  "Peak learning rate (default: 0.02 for sgd; for adam/adamw 3e-3 for small-gap, 1e-3 otherwise)")
      ->check(CLI::Range(1e-7f, 10.f));
  sub->add_option("--weight-decay", t.weight_decay, "Weight decay (default: 5e-4; 1e-2 for adamw)")
      ->check(CLI::Range(0.f, 1.f));
  sub->add_option("--schedule", t.schedule, "cosine (with warm-up) or step (x0.1 every third of the run)")
      ->check(CLI::IsMember({"cosine", "step"}))
      ->capture_default_str();
  sub->add_option("--class-weights", t.class_weights, "auto: inverse class frequency in the loss; none")
      ->check(CLI::IsMember({"auto", "none"}))
      ->capture_default_str();
  sub->add_flag("!--no-augment", t.augment,
                "Turn off flips, 90-degree rotations, random resized crops and colour jitter");
  sub->add_option("--vignette", t.vignette,
                  "Probability of drawing a dermoscope's round field (black outside a random "
                  "circle) onto a training photo, so that the lens rim stops being evidence")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  sub->add_option("--stickers", t.stickers,
                  "Probability of pasting a coloured dot cut by the border onto a training "
                  "photo (ISIC 2017's nevus photos carry such dots), so that a dot stops being evidence")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  sub->add_option(
         "--mask-guidance", t.mask_guidance,
         "Weight of a second loss: the share of the true class's CAM (min-max normalised) that falls "
         "outside the expert mask of the training photo (needs masks; 0: off). The CAM is then trained to lie in "
         "the lesion, so it no longer shows where an unguided network would look")
      ->check(CLI::Range(0.f, 100.f))
      ->capture_default_str();
  sub->add_flag("--hair-removal", t.preprocess.hair_removal, "DullRazor-style hair removal before the network");
  sub->add_flag("--color-constancy", t.preprocess.color_constancy,
                "Shades of Gray colour constancy (p = 6) before the network: removes the whole-photo tint of "
                "each dermoscope");
  if (with_out) {
    sub->add_option("--out", t.out,
                    "Checkpoint (safetensors), rewritten atomically after every epoch; the curve goes "
                    "to <out>.curve.json")
        ->check(kOutFile)
        ->capture_default_str();
    sub->add_option("--resume", t.resume, "Continue from this checkpoint (its arch, size and epoch)")
        ->check(CLI::ExistingFile);
    sub->add_option("--init", t.init,
                    "Start from these weights: a glimpse checkpoint of --arch, or torchvision weights "
                    "converted by tools/torch_to_safetensors.py (resnet18-gap, vgg16-gap); a new "
                    "classifier when the class count differs")
        ->check(CLI::ExistingFile);
    sub->add_option("--freeze", t.freeze,
                    "Keep these layers fixed: comma-separated dotted prefixes, e.g. conv1,bn1,layer1");
  }
}

// The map and overlay flags of explain and predict.
void add_overlay_flags(CLI::App* sub, ExplainOptions& x) {
  sub->add_option("--method", x.method, "Attribution method")->check(kMethod)->capture_default_str();
  sub->add_option("--threshold", x.threshold, "Regions: fraction:F (of the max), percentile:P, otsu, value:V")
      ->check(kThreshold)
      ->capture_default_str();
  sub->add_option("--shape", x.shape, "How regions are drawn")
      ->check(CLI::IsMember({"circle", "ellipse", "box", "contour"}))
      ->capture_default_str();
  sub->add_option("--max-regions", x.max_regions, "Keep the k strongest regions (0: all)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  sub->add_option("--min-area", x.min_area, "Drop regions smaller than this fraction of the image")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--colormap", x.colormap, "jet, viridis, inferno, grey")
      ->check(CLI::IsMember({"jet", "viridis", "inferno", "grey", "gray"}))
      ->capture_default_str();
  sub->add_option("--alpha", x.alpha, "Heatmap opacity")->check(CLI::Range(0.f, 1.f))->capture_default_str();
  sub->add_option("--display", x.display, "Longer side of the overlay in pixels (0: the photo's)")
      ->check(CLI::Range(int64_t(0), int64_t(8192)))
      ->capture_default_str();
}

int fail(const std::exception& e) {
  std::fflush(stdout);
  std::fprintf(stderr, "\nmelanoma: error: %s\n", e.what());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "glimpse melanoma: train GAP classifiers on dermoscopy images (ISIC 2017 layout, or synthetic), score "
      "them, and explain them with every attribution method.",
      "melanoma"};
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);
  Common c;

  // synth
  SynthOptions so;
  CLI::App* synth = app.add_subcommand("synth", "Write the synthetic lesion set in the ISIC layout");
  synth->add_option("--out", so.out, "Output directory")->required();
  synth->add_option("--count", so.count, "Images")
      ->check(CLI::Range(int64_t(3), int64_t(1000000)))
      ->capture_default_str();
  synth->add_option("--size", so.size, "Image side in pixels")
      ->check(CLI::Range(int64_t(16), int64_t(2048)))
      ->capture_default_str();
  synth->add_option("--val-fraction", so.val_fraction, "Fraction of rows marked split=val")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  synth->add_flag("!--no-distractors", so.distractors, "No hairs, ruler, sticker or patterned cloth");
  add_common(synth, c, true, /*reads_images=*/false);

  // train
  TrainOptions to;
  CLI::App* train = app.add_subcommand("train", "Train a GAP classifier (checkpoint every epoch, --resume)");
  add_train_flags(train, to, true);
  add_device(train, to.device);
  add_common(train, c);

  // eval
  EvalOptions eo;
  CLI::App* eval =
      app.add_subcommand("eval", "ISIC 2017 scores of a model on a split: AUCs, accuracy, confusion matrix");
  eval->add_option("--model", eo.model, "Checkpoint written by `melanoma train`")->required()->check(CLI::ExistingFile);
  eval->add_option("--data", eo.data, "Data directory")->required()->check(CLI::ExistingDirectory);
  eval->add_option("--split", eo.split, "Split to score (\"\" for every row)")->capture_default_str();
  eval->add_option("--json", eo.json, "Also write the results here")->check(kOutFile);
  eval->add_option("--bootstrap", eo.stats.resamples,
                   "Resamples of the 95% intervals (stratified bootstrap; seeded "
                   "by --seed)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  eval->add_option("--sensitivity", eo.stats.sensitivity_target,
                   "Also report melanoma at the largest threshold whose "
                   "sensitivity reaches this (chosen on the scored images, so its specificity is optimistic)")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  eval->add_option("--calibration-bins", eo.stats.calibration_bins,
                   "Equal-width bins of the ECE and reliability diagram")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  eval->add_option("--reliability", eo.reliability,
                   "Reliability diagram PNG of P(melanoma); the top label's goes "
                   "beside it as <stem>.top-label.png")
      ->check(kOutFile);
  eval->add_flag("--tta", eo.tta,
                 "Test-time augmentation: average each image's probabilities over its 8 flips and "
                 "90-degree rotations (8x the compute)");
  add_device(eval, eo.device);
  add_common(eval, c);

  // explain
  ExplainOptions xo;
  CLI::App* explain = app.add_subcommand("explain",
                                         "Explain one photo: heatmap overlay PNG with the regions circled, "
                                         "and a JSON of prediction and regions");
  explain->add_option("--model", xo.model, "Checkpoint")->required()->check(CLI::ExistingFile);
  explain->add_option("--image", xo.image, "Photo (JPEG, PNG, BMP)")->required()->check(CLI::ExistingFile);
  add_overlay_flags(explain, xo);
  explain->add_option("--layer", xo.layer,
                      "Layer for the CAM family / SAM (dotted name; default: the model's CAM layer)");
  explain->add_option("--out", xo.out, "Overlay PNG")->check(kOutFile);
  explain->add_option("--json", xo.json, "Prediction and regions as JSON")->check(kOutFile);
  explain
      ->add_option("--target", xo.target,
                   "Class to explain, by name (e.g. melanoma), or 'predicted'. A number is "
                   "read as a class index, as before (-1: predicted); names are safer, since a class-per-folder "
                   "data set numbers its classes alphabetically")
      ->capture_default_str();
  add_device(explain, xo.device);
  add_common(explain, c);

  // predict
  PredictOptions pro;
  CLI::App* predict = app.add_subcommand("predict",
                                         "Run a model on a folder of unlabelled photos: predictions.csv "
                                         "(class probabilities per photo) and an overlay PNG per photo with "
                                         "the predicted class's regions circled");
  predict->add_option("--model", pro.model, "Checkpoint")->required()->check(CLI::ExistingFile);
  predict->add_option("--images", pro.images, "Folder of photos (JPEG, PNG, BMP; not its subfolders)")
      ->required()
      ->check(CLI::ExistingDirectory);
  predict->add_option("--out", pro.out, "Output folder (predictions.csv, <photo>.overlay.png)")->required();
  add_overlay_flags(predict, pro.explain);
  predict->add_flag("!--no-overlays", pro.overlays, "Write predictions.csv only");
  add_device(predict, pro.device);
  add_common(predict, c);
  // sanity
  SanityOptions sao;
  CLI::App* sanity = app.add_subcommand("sanity",
                                        "Adebayo et al. 2018: re-initialize the layers from the top, one more "
                                        "at a time, and measure how much each method's maps change "
                                        "(Spearman, SSIM); flags methods whose maps do not");
  sanity->add_option("--model", sao.model, "Checkpoint")->required()->check(CLI::ExistingFile);
  sanity->add_option("--data", sao.data, "Data directory")->required()->check(CLI::ExistingDirectory);
  sanity->add_option("--split", sao.split, "Split")->capture_default_str();
  sanity->add_option("--methods", sao.methods, "Comma-separated methods, or all")
      ->check(kMethodList)
      ->capture_default_str();
  sanity->add_option("--limit", sao.limit, "Images (the first of the split)")
      ->check(CLI::Range(int64_t(1), int64_t(256)))
      ->capture_default_str();
  sanity->add_option("--json", sao.json, "Also write the table here")->check(kOutFile);
  sanity
      ->add_option("--figure", sao.figure, "PNG: one row per method, the first image's map trained and after each step")
      ->check(kOutFile);
  sanity->add_flag("--data-randomization", sao.data_randomization,
                   "Also train a copy of the architecture on --train-split with the labels permuted and compare "
                   "its maps with the trained model's (Adebayo et al.'s second test)");
  sanity->add_option("--train-split", sao.train_split, "Split the random-label copy trains on")->capture_default_str();
  sanity
      ->add_option("--data-randomization-epochs", sao.data_epochs,
                   "Epochs of the random-label copy (0: as many as the checkpoint planned)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  sanity->add_option("--data-randomization-batch", sao.data_batch, "Batch size of the random-label copy")
      ->check(CLI::Range(int64_t(1), int64_t(4096)))
      ->capture_default_str();
  add_common(sanity, c);

  // localize
  LocalizeOptions lo;
  CLI::App* localize = app.add_subcommand("localize",
                                          "Score every method's maps against the lesion masks of a split "
                                          "(Dice, IoU, energy, pointing game, deletion/insertion), with a "
                                          "centred-Gaussian baseline");
  localize->add_option("--model", lo.model, "Checkpoint")->required()->check(CLI::ExistingFile);
  localize->add_option("--data", lo.data, "Data directory with masks/")->required()->check(CLI::ExistingDirectory);
  localize->add_option("--split", lo.split, "Split")->capture_default_str();
  localize->add_option("--methods,--method", lo.methods, "all, or a comma-separated list")
      ->check(kMethodList)
      ->capture_default_str();
  localize->add_option("--layer", lo.layer, "Layer for the CAM family / SAM");
  localize->add_option("--json", lo.json, "Also write the table here")->check(kOutFile);
  localize->add_option("--limit", lo.limit, "Use the first N masked images (0: all)")
      ->check(CLI::Range(int64_t(0), int64_t(1000000)))
      ->capture_default_str();
  localize->add_option("--threshold", lo.threshold, "Fixed threshold of the dice/iou columns")
      ->check(kThreshold)
      ->capture_default_str();
  localize->add_option("--tolerance", lo.tolerance, "Pointing-game tolerance, fraction of the side")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  localize->add_option("--gaussian-sigma", lo.gaussian_sigma, "Baseline Gaussian's sigma, fraction of the side")
      ->check(CLI::Range(0.01, 10.0))
      ->capture_default_str();
  localize->add_option("--curve-steps", lo.curve_steps, "Deletion/insertion steps")
      ->check(CLI::Range(2, 1024))
      ->capture_default_str();
  localize->add_flag("!--no-curves", lo.curves, "Skip deletion/insertion AUC (the slowest columns)");
  localize
      ->add_option("--target", lo.target,
                   "Explain the predicted class, the true one, or one class by name "
                   "(e.g. melanoma) in every image")
      ->capture_default_str();
  add_device(localize, lo.device);
  add_common(localize, c);

  // two-stage
  TwoStageOptions ts;
  ts.train.out.clear();
  CLI::App* two = app.add_subcommand("two-stage",
                                     "Jia & Shen: stage 1, crop every image to its CAM region, retrain on "
                                     "the crops, compare AUCs of stage 1 and stages 1+2");
  add_train_flags(two, ts.train, false);
  two->add_option("--model", ts.model, "Stage-1 checkpoint (default: train one)")->check(CLI::ExistingFile);
  two->add_option("--out", ts.out, "Output directory")->capture_default_str();
  two->add_option("--method", ts.method, "Map that chooses the crop")->check(kMethod)->capture_default_str();
  two->add_option("--crop-threshold", ts.crop_threshold, "Region: map >= this fraction of its max")
      ->check(CLI::Range(0.01f, 0.99f))
      ->capture_default_str();
  two->add_option("--margin", ts.margin, "Box grown by this fraction of its side on each side")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  two->add_option("--json", ts.json, "Also write the results here")->check(kOutFile);
  add_common(two, c);

  // roar
  RoarOptions ro;
  std::string percents = "10,30,50,70,90";
  CLI::App* roar = app.add_subcommand("roar",
                                      "Remove the top t% pixels by each method's map, retrain, and compare "
                                      "accuracy and AUC against a random-map control");
  add_train_flags(roar, ro.train, false);
  roar->add_option("--model", ro.model, "Model whose maps rank the pixels (default: train one)")
      ->check(CLI::ExistingFile);
  roar->add_option("--out", ro.out, "Output directory")->capture_default_str();
  roar->add_option("--methods,--method", ro.methods, "Comma-separated methods")
      ->check(kMethodList)
      ->capture_default_str();
  roar->add_option("--percents", percents, "Percentages of pixels removed")->check(kPercents)->capture_default_str();
  roar->add_flag("!--no-random", ro.random_control, "Skip the random-map control");
  roar->add_flag("--keep", ro.keep, "Keep the top t% and remove the rest instead");
  roar->add_option("--json", ro.json, "Also write the results here")->check(kOutFile);
  add_common(roar, c);

  // report
  ReportOptions po;
  CLI::App* report = app.add_subcommand("report",
                                        "One self-contained HTML page: metrics, training curves, "
                                        "localization table, gallery of every method's overlays");
  report
      ->add_option("--model", po.model,
                   "Checkpoint (its curve, eval.json, localize.json, two-stage.json and "
                   "roar.json beside it are included when present)")
      ->required()
      ->check(CLI::ExistingFile);
  report->add_option("--data", po.data, "Data directory (default: the one the model was trained on)")
      ->check(CLI::ExistingDirectory);
  report->add_option("--split", po.split, "Split for the gallery")->capture_default_str();
  report->add_option("--out", po.out, "HTML file")->check(kOutFile)->capture_default_str();
  report->add_option("--methods", po.methods, "Methods in the gallery")->check(kMethodList)->capture_default_str();
  report->add_option("--count", po.count, "Gallery images")
      ->check(CLI::Range(int64_t(0), int64_t(1000)))
      ->capture_default_str();
  report->add_option("--thumb", po.thumb, "Gallery image side in pixels")
      ->check(CLI::Range(int64_t(32), int64_t(1024)))
      ->capture_default_str();
  report->add_option("--curve", po.curve, "Training curve JSON (default: <model>.curve.json)")
      ->check(CLI::ExistingFile);
  report->add_option("--eval-json", po.eval_json, "eval --json output")->check(CLI::ExistingFile);
  report->add_option("--localize-json", po.localize_json, "localize --json output")->check(CLI::ExistingFile);
  report->add_option("--two-stage-json", po.two_stage_json, "two-stage --json output")->check(CLI::ExistingFile);
  report->add_option("--roar-json", po.roar_json, "roar --json output")->check(CLI::ExistingFile);
  report->add_option("--title", po.title, "Page title")->capture_default_str();
  add_common(report, c);

  // demo
  DemoOptions dmo;
  CLI::App* demo = app.add_subcommand("demo",
                                      "The whole story in one command: data, train, eval, localize, explain, "
                                      "report");
  demo->add_option("--out", dmo.out, "Output directory")->capture_default_str();
  demo->add_option("--data", dmo.data, "ISIC folder instead of synthetic data")->check(CLI::ExistingDirectory);
  demo->add_option("--train-split", dmo.train_split, "Split to train on")->capture_default_str();
  demo->add_option("--split", dmo.split, "Split to evaluate, localize and show")->capture_default_str();
  demo->add_option("--count", dmo.count, "Synthetic images")
      ->check(CLI::Range(int64_t(12), int64_t(100000)))
      ->capture_default_str();
  demo->add_option("--synth-size", dmo.synth_size, "Synthetic image side")
      ->check(CLI::Range(int64_t(16), int64_t(1024)))
      ->capture_default_str();
  demo->add_option("--arch", dmo.arch, "Architecture")->check(kArch)->capture_default_str();
  demo->add_option("--size", dmo.size, "Input side")
      ->check(CLI::Range(int64_t(8), int64_t(1024)))
      ->capture_default_str();
  demo->add_option("--epochs", dmo.epochs, "Epochs")->check(CLI::Range(1, 10000))->capture_default_str();
  demo->add_option("--batch", dmo.batch, "Batch")->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
  demo->add_flag("--color-constancy", dmo.preprocess.color_constancy, "As train --color-constancy");
  demo->add_flag("--hair-removal", dmo.preprocess.hair_removal, "As train --hair-removal");
  demo->add_option("--vignette", dmo.vignette, "As train --vignette")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  demo->add_option("--stickers", dmo.stickers, "As train --stickers")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  demo->add_option("--mask-guidance", dmo.mask_guidance, "As train --mask-guidance")
      ->check(CLI::Range(0.f, 100.f))
      ->capture_default_str();
  demo->add_option("--methods", dmo.methods, "all, fast (all but sliding-window), or a comma-separated list")
      ->check(kMethodList)
      ->capture_default_str();
  demo->add_option("--localize-limit", dmo.localize_limit, "Masked images scored by localize (0: all)")
      ->check(CLI::Range(int64_t(0), int64_t(1000000)))
      ->capture_default_str();
  demo->add_option("--explain", dmo.explain_count, "Photos explained")
      ->check(CLI::Range(int64_t(0), int64_t(100)))
      ->capture_default_str();
  demo->add_option("--gallery", dmo.gallery, "Report gallery images")
      ->check(CLI::Range(int64_t(0), int64_t(1000)))
      ->capture_default_str();
  add_common(demo, c);

  // serve
  ServeOptions sv;
  double max_upload_mb = 32;
  CLI::App* serve = app.add_subcommand("serve",
                                       "The explorer: a page in the browser to browse photos, classify them "
                                       "and compare every method's map (docs/explorer.md)");
  serve->add_option("--model", sv.model, "Checkpoint")->required()->check(CLI::ExistingFile);
  serve->add_option("--data", sv.data, "Data directory to browse (ISIC layout; masks shown when present)")
      ->check(CLI::ExistingDirectory);
  serve->add_option("--host", sv.host, "Address to listen on (0.0.0.0: every interface -- the explorer has no login)")
      ->capture_default_str();
  serve->add_option("--port", sv.port, "Port (0: a free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  serve->add_option("--workers", sv.workers, "Threads answering requests (model work runs one request at a time)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  serve->add_option("--queue", sv.queue, "Connections waiting for a worker; beyond them a request gets 503")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  serve->add_option("--max-upload-mb", max_upload_mb, "Largest request body (an uploaded photo), in MB")
      ->check(CLI::Range(0.01, 1024.0))
      ->capture_default_str();
  add_device(serve, sv.device);
  add_common(serve, c);

  ExportOptions exo;
  CLI::App* exp = add_export_command(app, exo);

  CLI11_PARSE(app, argc, argv);

  try {
    set_progress(c.progress);
    setup_runtime(c.threads, c.seed);
    glimpse::io::set_max_image_pixels(std::max<int64_t>(1, std::llround(c.max_megapixels * 1e6)));
    if (*synth) {
      so.seed = c.seed;
      run_synth(so);
    } else if (*train) {
      to.seed = c.seed;
      if (to.data.empty() && to.synthetic == 0 && to.resume.empty())
        throw CLI::ValidationError("--data", "give --data DIR or --synthetic N");
      if (to.data.empty() && !to.resume.empty()) to.data = load_model(to.resume).meta.data;
      train_model(to);
    } else if (*eval) {
      eo.stats.seed = c.seed;
      run_eval(eo);
    } else if (*explain) {
      xo.seed = c.seed;
      if (xo.out.empty() && xo.json.empty())
        std::fprintf(stderr, "melanoma explain: neither --out nor --json given; printing only\n");
      run_explain(xo);
    } else if (*predict) {
      pro.explain.seed = c.seed;
      run_predict(pro);
    } else if (*sanity) {
      sao.seed = c.seed;
      run_sanity(sao);
    } else if (*localize) {
      lo.seed = c.seed;
      run_localize(lo);
    } else if (*two) {
      ts.train.seed = c.seed;
      if (ts.train.data.empty() && ts.train.synthetic == 0 && ts.model.empty())
        throw CLI::ValidationError("--data", "give --data DIR, --synthetic N or --model FILE");
      if (ts.json.empty()) ts.json = ts.out + "/two-stage.json";
      run_two_stage(ts);
    } else if (*roar) {
      ro.train.seed = c.seed;
      ro.percents.clear();
      std::stringstream ss(percents);
      for (std::string p; std::getline(ss, p, ',');) ro.percents.push_back(std::stoi(p));
      if (ro.train.data.empty() && ro.train.synthetic == 0 && ro.model.empty())
        throw CLI::ValidationError("--data", "give --data DIR, --synthetic N or --model FILE");
      if (ro.json.empty()) ro.json = ro.out + "/roar.json";
      run_roar(ro);
    } else if (*report) {
      run_report(po);
    } else if (*serve) {
      sv.seed = c.seed;
      sv.max_body_bytes = std::llround(max_upload_mb * 1e6);
      run_serve(sv);
    } else if (*demo) {
      dmo.seed = c.seed;
      run_demo(dmo);
    } else if (*exp) {
      run_export(exo);
    }
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const Interrupted& e) {
    // Stopped cleanly by Ctrl-C / SIGTERM (interrupt.h); the job printed where things stand.
    return e.exit_code();
  } catch (const std::exception& e) {
    return fail(e);
  }
  return 0;
}
