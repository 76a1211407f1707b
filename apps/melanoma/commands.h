// The melanoma app's subcommands as functions (main.cpp only parses flags into these structs), so
// that tests and the demo call them directly. Each run_* prints its results to stdout, progress to
// stderr, and returns the numbers it printed.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attribution/metrics.h"
#include "attribution/regions.h"
#include "common.h"
#include "eval_stats.h"
#include "layers/dist/comm.h"
#include "roc.h"

namespace mel {

// ---- synth ----
struct SynthOptions {
  std::string out;
  int64_t count = 300;
  int64_t size = 128;
  uint64_t seed = 1;
  double val_fraction = 0.2;
  bool distractors = true;
};
void run_synth(const SynthOptions& o);

// ---- train ----
struct TrainOptions {
  std::string data;       // ISIC-layout directory (or empty with synthetic > 0)
  int64_t synthetic = 0;  // generate this many synthetic images into <out dir>/synthetic
  std::string train_split = "train", val_split = "val";
  std::string arch = "small-gap";
  int64_t size = 64;
  int epochs = 10;
  int64_t batch = 32;
  std::string optimizer = "adam";  // sgd | adam | adamw
  float lr = 0;                    // 0: 0.02 for sgd; adam/adamw: 3e-3 small-gap, 1e-3 others
  float weight_decay = -1;         // <0: 5e-4 for sgd and adam, 1e-2 for adamw
  float momentum = 0.9f;
  std::string schedule = "cosine";     // cosine | step
  std::string class_weights = "auto";  // auto (inverse frequency) | none
  bool augment = true;
  float vignette = 0.f;                      // augmentation: dermoscope-field circle probability
  float stickers = 0.f;                      // augmentation: coloured-dot (nevus sticker) probability
  float mask_guidance = 0.f;                 // weight of the CAM-outside-the-mask loss (attribution/guidance.h); 0: off
  glimpse::data::Preprocess preprocess;      // hair removal, colour constancy
  std::string out = "melanoma.safetensors";  // checkpoint, rewritten atomically every epoch
  std::string resume;                        // checkpoint to continue from
  std::string init;                          // weights to start from (glimpse checkpoint or converted torchvision file)
  std::string freeze;                        // comma-separated dotted prefixes whose parameters stay fixed
  uint64_t seed = 1;
  bool quiet = false;           // no per-epoch lines (used by roar's many retrainings)
  std::string device = "cpu";   // cpu | cuda | cuda:N (resolve_device); the returned model is on the CPU
  std::string label = "train";  // prefix of the progress bar
  // Data parallelism (docs/distributed.md): the ranks of `comm` share each global batch of `batch`
  // images; gradients are averaged in buckets of bucket_mb MiB. Null: one process.
  glimpse::dist::Communicator* comm = nullptr;
  double bucket_mb = 4;
  // Batch norm under data parallelism: statistics over the global batch (dist::synchronize_batch_norm)
  // instead of each rank's slice. CPU only.
  bool sync_bn = false;
  // The data-randomization sanity check (sanity --data-randomization): the training labels are
  // shuffled among the training images (a permutation seeded from `seed`, so the class counts stay),
  // and no validation split is read. Not a flag of `train`.
  bool permute_labels = false;
  // Called after every optimizer step with (epoch, step within the epoch); tests use it to raise a
  // signal at a known point. Empty: nothing.
  std::function<void(int64_t, int64_t)> on_step;
};
struct EpochRecord {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0, lr = 0, seconds = 0;
  double train_cam_outside = -1;  // mean CAM share outside the masks (with --mask-guidance), else -1
  bool has_val = false;
  double val_loss = 0, val_accuracy = 0, auc_melanoma = 0, auc_keratosis = 0, auc_mean = 0;
};
struct TrainResult {
  std::shared_ptr<glimpse::Model> model;
  ModelMeta meta;
  std::vector<EpochRecord> history;
  bool has_val = false;
  ClassificationMetrics val;  // after the last epoch
  std::string checkpoint, curve;
  double seconds = 0;
  double labels_changed = 0;  // with permute_labels: the fraction of training images whose label changed
};
TrainResult train_model(const TrainOptions& o);
// The 3-class model two-stage and roar start from: --model FILE when given, else one trained now
// with `train` (its checkpoint at train.out). data_dir is train.data, or the model's own data
// directory when none is given; both splits are opened. `who` prefixes the messages. Under mpirun (`c` the world) every
// rank gets the model: loaded by each, or trained by rank 0 alone and copied to the others.
struct StartingModel {
  std::shared_ptr<glimpse::Model> model;
  ModelMeta meta;
  std::string data_dir;
  glimpse::data::Dataset train, val;  // train.train_split and train.val_split of data_dir, in the model's classes
};
StartingModel load_or_train(const std::string& model_path, const TrainOptions& train, const char* who,
                            glimpse::dist::Communicator& c = glimpse::dist::local());
// The retraining of two-stage and roar: `base`'s schedule, the starting model's architecture and
// input size, on `data` (images written already preprocessed), one process, its checkpoint at `out`.
TrainOptions retraining(const TrainOptions& base, const ModelMeta& meta, const std::string& data,
                        const std::string& out);
nlohmann::json curve_to_json(const TrainResult& r);
// A training curve (<checkpoint>.curve.json) read back, by `train --resume` and by `report`: the
// epoch records that could be read, sorted by epoch, and how many could not (each skipped, the
// first few faults kept). Throws glimpse::Error naming the file (and the key) when the file as a
// whole cannot be read: missing, not JSON, not an object, no "epochs" array.
struct CurveRead {
  std::string path;
  std::vector<EpochRecord> epochs;
  int64_t skipped = 0;
  std::vector<std::string> problems;  // the first few
};
CurveRead read_curve(const std::string& path);

// ---- eval ----
struct EvalOptions {
  std::string model, data, split = "val", json;
  bool tta = false;            // average over the 8 flips/rotations of each image
  std::string device = "cpu";  // where the model runs (resolve_device)
  EvalStatsOptions stats;      // bootstrap resamples and seed, sensitivity target, calibration bins
  // Under mpirun: the images are split over the ranks and the predictions gathered on rank 0, which
  // scores and prints them (the others return an empty result). Null: one process.
  glimpse::dist::Communicator* comm = nullptr;
  // Reliability diagrams (PNG): this file for P(melanoma) (the top label's when there is no
  // melanoma class), <stem>.top-label.png beside it for the top label. Empty: none.
  std::string reliability;
};
struct EvalResult {
  ModelMeta meta;
  Predictions predictions;
  ClassificationMetrics metrics;
  EvalStats stats;
  double seconds = 0;
};
EvalResult run_eval(const EvalOptions& o);
nlohmann::json eval_to_json(const EvalOptions& o, const EvalResult& r);

// ---- explain ----
struct ExplainOptions {
  std::string model, image, method = "gradcam", layer, out, json;
  std::string target = "predicted";  // class to explain by name (parse_target_class); "predicted"
  std::string threshold = "fraction:0.5";
  std::string shape = "circle";  // circle | ellipse | box | contour
  int max_regions = 3;
  double min_area = 0.002;  // of the image area
  std::string colormap = "jet";
  float alpha = 0.45f;
  int64_t display = 512;  // longer side of the written overlay (0: the photo's own size)
  uint64_t seed = 0;
  std::string device = "cpu";  // where the model runs (resolve_device)
};
struct ExplainResult {
  int64_t predicted = 0, target = 0;
  std::vector<float> probs;
  nlohmann::json json;
};
ExplainResult run_explain(const ExplainOptions& o);
// The options of explain checked (method, threshold, shape, colormap, alpha), with the errors
// run_explain gives; `who` prefixes them.
void check_explain_options(const ExplainOptions& o, const char* who = "explain");
// The heart of run_explain, shared with `serve` and `predict`, so that all give the same regions for
// the same photo (decoded by the caller, e.g. io::load_image: decode_image under the pixel budget):
// the model's prediction, the map of o.method for class `target` (-1: the predicted class; callers
// turn a name into an index with parse_target_class) at o.layer, the overlay at o.display size with
// the regions drawn, and the JSON run_explain writes ("image", "model" and "overlay" are o.image,
// o.model and o.out, names only: nothing is read or written here). The model runs where its
// parameters are (model_device). Not thread-safe: the attribution methods hook the model's layers
// while they run, so callers sharing a model serialize the calls.
struct PhotoExplanation {
  ExplainResult result;                        // predicted, target, probabilities, explain's JSON
  glimpse::attr::AttributionMap attribution;   // .map: [1, S, S] at the model's input, normalized
  glimpse::io::Image overlay;                  // the photo at display size, heatmap and regions drawn
  std::vector<glimpse::attr::Region> regions;  // in the overlay's pixels
};
PhotoExplanation explain_photo(LoadedModel& lm, const glimpse::io::Image& photo, const ExplainOptions& o,
                               int64_t target);

// ---- predict: a model on unlabelled photos ----
struct PredictOptions {
  std::string model, images, out;  // a folder of photos in, a folder out
  ExplainOptions explain;          // method, threshold, shape... of the overlays (image/out/json unused)
  bool overlays = true;            // also write <out>/<stem>.overlay.png per photo
  std::string device = "cpu";
  // Under mpirun: the photos are split over the ranks; rank 0 writes every overlay and the CSV (the
  // files of one process). Null: one process.
  glimpse::dist::Communicator* comm = nullptr;
};
struct PredictResult {
  int64_t images = 0, failed = 0;  // photos found; photos that could not be read (a row with the error)
  std::string csv;                 // <out>/predictions.csv
};
// Every image file (.jpg .jpeg .png .bmp, any case) directly in `images`, sorted by name: one CSV row
// each (file, predicted class, one probability column per class, error), written atomically, and
// an overlay of the predicted class's map with the regions circled. An unreadable photo gets a row
// with its error and no overlay; the run goes on.
PredictResult run_predict(const PredictOptions& o);

// ---- localize ----
struct LocalizeOptions {
  std::string model, data, split = "val", methods = "all", layer, json;
  int64_t limit = 0;                    // first N images with masks (0: all)
  std::string threshold = "value:0.5";  // the fixed threshold of the Dice/IoU@fixed columns
  double tolerance = 15.0 / 224.0;      // pointing-game tolerance as a fraction of the image side
  // Baseline's sigma as a fraction of the image side. 0.15 reproduces the anchors of the mission
  // (ISIC 2017 val: Dice* 0.487, energy 0.45); 0.25 gives the same Dice* but energy 0.29.
  double gaussian_sigma = 0.15;
  int curve_steps = 16;              // deletion/insertion steps
  bool curves = true;                // compute deletion/insertion AUC (needs the model)
  std::string target = "predicted";  // predicted | true
  int64_t batch = 16;
  uint64_t seed = 0;
  std::string device = "cpu";  // where the model runs (resolve_device)
  // Under mpirun: the images are split over the ranks and every image's scores gathered on rank 0,
  // which sums them in the single-process order and prints the table. Null: one process.
  glimpse::dist::Communicator* comm = nullptr;
};
struct LocalizeRow {
  std::string method;
  std::string error;  // non-empty if the method failed on this model
  int64_t images = 0;
  double dice_best = 0, best_threshold = 0, iou_best = 0;
  double dice_fixed = 0, iou_fixed = 0;
  double energy = 0, pointing = 0;
  double deletion = -1, insertion = -1;  // -1: not computed
  double seconds = 0;
  std::vector<double> dice_by_threshold;
};
struct LocalizeResult {
  std::vector<LocalizeRow> rows;  // the Gaussian baseline first
  std::vector<double> thresholds;
  int64_t images = 0, resolution = 0;
  double seconds = 0;
  double mask_guidance = 0;  // the model's train --mask-guidance weight (0: unguided)
};
LocalizeResult run_localize(const LocalizeOptions& o);
// One image's scores as localize computes them, shared with `serve`: the map [1, S, S] (normalized
// to [0, 1]) against the expert mask resized to S x S by nearest neighbour, Dice and IoU at
// `threshold`, the pointing-game tolerance a fraction of S.
glimpse::attr::LocalizationScores score_against_mask(const Tensor& map, const glimpse::io::Mask& truth,
                                                     const glimpse::attr::Threshold& threshold, double tolerance);
std::string format_localize_table(const LocalizeResult& r);
nlohmann::json localize_to_json(const LocalizeOptions& o, const LocalizeResult& r);

// ---- two-stage (Jia & Shen) ----
struct TwoStageOptions {
  TrainOptions train;             // data, arch, size, epochs... for both stages
  std::string model;              // stage-1 checkpoint; empty: train it
  std::string out = "two-stage";  // directory
  std::string method = "cam";
  float crop_threshold = 0.3f;  // fraction of the map's maximum
  float margin = 0.15f;         // of the box side, on each side
  std::string json;
  // Under mpirun: the cropping and the val predictions are split over the ranks, both trainings run
  // on rank 0 alone (one process's weights), rank 0 writes every file. Null: one process.
  glimpse::dist::Communicator* comm = nullptr;
};
struct TwoStageResult {
  ClassificationMetrics stage1, stage2, combined;
  double seconds = 0;
};
TwoStageResult run_two_stage(const TwoStageOptions& o);

// ---- roar ----
struct RoarOptions {
  TrainOptions train;  // retraining settings
  std::string model;   // the model whose maps rank the pixels; empty: train it
  std::string out = "roar";
  std::string methods = "gradcam,saliency";
  std::vector<int> percents = {10, 30, 50, 70, 90};
  bool random_control = true;
  bool keep = false;  // keep the top pixels and remove the rest instead
  std::string json;
  // Under mpirun: the (method, percentage) retrainings are dealt out over the ranks, each trained as
  // one process; rank 0 gathers the rows, prints and writes the JSON. Null: one process.
  glimpse::dist::Communicator* comm = nullptr;
};
struct RoarRow {
  std::string method;
  int percent = 0;
  ClassificationMetrics metrics;
};
struct RoarResult {
  ClassificationMetrics original;
  std::vector<RoarRow> rows;
  double seconds = 0;
};
RoarResult run_roar(const RoarOptions& o);

// ---- report ----
struct ReportOptions {
  std::string model, data, split = "val", out = "report.html";
  std::string methods = "all";
  int64_t count = 6;                                                       // gallery images
  int64_t thumb = 128;                                                     // gallery thumbnail side
  std::string curve, eval_json, localize_json, two_stage_json, roar_json;  // default: beside the model
  std::string title = "glimpse melanoma report";
};
void run_report(const ReportOptions& o);
// Parses one JSON file the app reads, as the app would, and returns what it renders from it (HTML or a summary); throws
// glimpse::Error naming the file and key on malformed input. kind: "curve", "eval", "localize", "two_stage", "roar".
std::string parse_app_json(const std::string& kind, const std::string& path);

// ---- sanity (Adebayo et al. 2018: cascading model randomization, data randomization) ----
struct SanityOptions {
  std::string model, data, split = "val", json, figure;
  std::string methods = "cam,gradcam,saliency,guided-backprop,integrated-gradients";
  int64_t limit = 8;           // images (the first of the split)
  double flag_spearman = 0.5;  // flagged when Spearman >= this with every layer random / labels permuted
  uint64_t seed = 1;
  // Data randomization: a copy of the architecture trained (with the checkpoint's settings and
  // initial seed) on split `train_split` of `data` with the labels permuted, its maps compared
  // with the trained model's. data_epochs 0: as many epochs as the checkpoint planned.
  bool data_randomization = false;
  int data_epochs = 0;
  int64_t data_batch = 32;
  std::string train_split = "train";
};
struct SanityRow {
  std::string method;
  // One per cascade step (layers re-initialized so far); spearman NaN: every map of the step was
  // constant (nothing left to rank).
  std::vector<double> spearman, ssim;
  bool flagged = false;
};
struct DataRandomizationResult {
  bool run = false;
  int epochs = 0;
  int64_t train_images = 0;
  double labels_changed = 0;    // fraction of the training images whose label the permutation changed
  double train_accuracy = 0;    // on the permuted labels, last epoch (how far memorization got)
  std::vector<SanityRow> rows;  // one comparison each (spearman and ssim of size 1)
};
struct SanityResult {
  std::vector<std::string> layers;  // re-initialized in this order (top first)
  std::vector<SanityRow> rows;
  DataRandomizationResult data;  // when SanityOptions::data_randomization
  int64_t images = 0;
  double seconds = 0;
};
SanityResult run_sanity(const SanityOptions& o);

// ---- demo ----
struct DemoOptions {
  std::string out = "melanoma-demo";
  std::string data;  // ISIC folder; empty: synthetic
  std::string train_split = "train", split = "val";
  int64_t count = 480;  // synthetic images
  int64_t synth_size = 96;
  std::string arch = "small-gap";
  int64_t size = 64;
  int epochs = 12;
  int64_t batch = 32;
  glimpse::data::Preprocess preprocess;  // passed to train (and so recorded in the model)
  float vignette = 0.f;                  // train's dermoscope-vignette augmentation
  float stickers = 0.f;                  // train's coloured-dot augmentation
  float mask_guidance = 0.f;             // train's --mask-guidance
  std::string methods = "all";           // all | fast (all but sliding-window) | a,b,c
  int64_t localize_limit = 0;            // 0: every masked image of the split
  int64_t explain_count = 3;
  int64_t gallery = 6;
  uint64_t seed = 1;
};
void run_demo(const DemoOptions& o);

}  // namespace mel
