// Shared pieces of the melanoma app's subcommands: runtime setup, loading a model from its
// checkpoint alone, predictions over a data set, method lists, JSON and PNG helpers.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attribution/attribution.h"
#include "core/io/image.h"
#include "core/progress.h"
#include "core/tensor.h"
#include "data/data.h"
#include "dist/comm.h"
#include "layers/models.h"

namespace mel {

using glimpse::Tensor;

// The ISIC 2017 classes, in the order of data.h.
const std::vector<std::string>& class_names();

// Threads for the CPU kernels (glimpse::set_num_threads; 0 = all cores), the global seed,
// and malloc settings that keep the large, short-lived activation buffers in the heap.
void setup_runtime(int threads, uint64_t seed);
int runtime_threads();
// Decoding workers of a data loader beside `threads` compute threads.
int loader_threads();

// "auto", "tty", "plain", "none".
glimpse::ProgressBar::Mode progress_mode(const std::string& name);
void set_progress(const std::string& name);  // the mode of every bar of this process
// The mode of a bar; an `inner` bar (evaluation inside training, say) is drawn on a terminal only,
// so that a log keeps one line per epoch.
glimpse::ProgressBar::Mode progress(bool inner = false);

// ---- devices ----
// "cpu", "cuda" (= cuda:0) or "cuda:N" -> that device, not yet checked to be usable; nullopt else.
std::optional<glimpse::Device> parse_device(const std::string& spec);
// --device: "cpu", "cuda" (= cuda:0) or "cuda:N" -> that device, ready for tensors (cuda::init()).
// A device that cannot be used is an error at once, naming why: cuda::unavailable_reason() (no
// driver, no GPU), an index past the device count, or a build without the CUDA backend.
glimpse::Device resolve_device(const std::string& spec);
// Where a model's parameters live (the CPU for a model without parameters).
glimpse::Device model_device(glimpse::Module& model);

// ---- models and checkpoints ----
// What a checkpoint's metadata records beside the weights, so that `--model FILE` alone rebuilds
// the network: architecture, input size, class count and names, and where training stopped.
struct ModelMeta {
  std::string arch = "small-gap";
  int64_t size = 64;
  int64_t classes = 3;
  std::vector<std::string> class_names;
  int64_t epoch = 0;   // epochs completed
  int64_t epochs = 0;  // epochs planned
  int64_t step = 0;    // optimizer steps taken
  std::string optimizer, schedule;
  double lr = 0;
  uint64_t seed = 0;
  std::string data;                      // training data directory
  glimpse::data::Preprocess preprocess;  // what the model was trained with
  double val_auc_mean = -1;              // last validation score, if any
  double mask_guidance = 0;              // weight of train's --mask-guidance (0: CAM never saw a mask)
  std::string init, freeze;              // train --init (where the weights came from) and --freeze
};
// Bounds of checkpoint metadata (a checkpoint is untrusted input).
inline constexpr int64_t kMaxInputSize = 4096;
inline constexpr int64_t kMaxClasses = 10000;
inline constexpr int64_t kMaxEpochs = 1000000;
std::map<std::string, std::string> meta_to_map(const ModelMeta& meta);
// Reads the metadata back, every value parsed strictly and bounded (input_size from the arch's
// minimum to kMaxInputSize, classes 2..kMaxClasses, 0 <= epoch <= epochs, optimizer_step >= 0, seed a
// u64, lr and mask_guidance finite >= 0, class_names as many as classes, flags 0/1); errors name the
// path, the key and the value.
ModelMeta meta_from_map(const std::map<std::string, std::string>& m, const std::string& path);

struct LoadedModel {
  std::shared_ptr<glimpse::Model> model;
  ModelMeta meta;
};
// Builds the model the checkpoint describes and loads its weights (strict). A file that is not a
// melanoma checkpoint is refused naming what is missing. The checksum is verified (a file without
// one loads with a one-line note on stderr), and the metadata is checked against the weights' own
// shapes (classes = the classifier's rows) before the model is built.
LoadedModel load_model(const std::string& path);
// Puts a data set's labels in the model's class order, matching classes by name (roc.h find_class):
// a class-per-folder set sorts its folders by name (melanoma = 0, nevus = 1) while an ISIC-layout
// model has nevus = 0, melanoma = 1, so equal indices need not be the same class. Same names in
// another order: the labels are renumbered (a note on stderr); a count or a name that differs is an
// error naming both lists.
void align_dataset_to_model(const ModelMeta& meta, glimpse::data::Dataset& ds, const std::string& model_path);
// --target as every command reads it: "predicted" (or "-1", kept for old scripts) -> -1; a class
// name (matched as find_class does) -> its index; a non-negative integer -> that index (backwards
// compatible). Anything else is an error naming the value and the model's classes.
int64_t parse_target_class(const std::string& spec, const std::vector<std::string>& class_names,
                           const std::string& who);

// The melanoma and seborrheic_keratosis columns of an ISIC labels.csv row ("1,0", "0,1", "0,0") for
// a label of a data set with these class names (found by name).
std::string isic_label_columns(const std::vector<std::string>& class_names, int64_t label);

// ---- data ----
// Opens an ISIC-layout (or class-folder) data set, one split ("" = every row). A missing directory
// or an empty split is an error naming the value at fault.
glimpse::data::Dataset open_dataset(const std::string& dir, const std::string& split);
// Loader options for inference: no shuffling, no augmentation.
glimpse::data::LoaderOptions inference_loader(int64_t size, int64_t batch = 32, bool with_masks = false,
                                              const glimpse::data::Preprocess& pre = {});

struct Predictions {
  std::vector<std::string> ids;
  std::vector<int64_t> labels;
  std::vector<std::vector<float>> probs;  // softmax, one row per image
  double loss = 0;                        // mean cross-entropy
};
// ---- data parallelism (dist/comm.h) ----
// The part of n items one rank handles: contiguous, in rank order, cut only at multiples of
// `granule` (the batch of the command), so that every rank sees the batches a single process
// would and the gathered numbers are identical to one process's.
struct Shard {
  size_t begin = 0, end = 0;
};
Shard shard_of(size_t n, int rank, int ranks, size_t granule);
// The dataset's samples cut to this rank's shard.
void keep_shard(glimpse::data::Dataset& ds, const glimpse::dist::Communicator& c, size_t granule);
// Every rank's predictions, concatenated in rank order on rank 0 (the others get theirs back
// unchanged); the loss is recomputed there over all of them.
Predictions gather_predictions(glimpse::dist::Communicator& c, const Predictions& mine);
// The mean cross-entropy of probability rows, summed in row order (what predict() reports).
double mean_nll(const std::vector<std::vector<float>>& probs, const std::vector<int64_t>& labels);
// Runs the model (eval mode, no tape) over the whole data set, kPredictBatch images at a time.
// With tta, each image's probabilities are the mean over its 8 flips and 90-degree rotations (the dihedral group the
// training augmentation draws from), and the loss is the cross-entropy of that mean.
inline constexpr int64_t kPredictBatch = 64;
Predictions predict(glimpse::Model& model, const glimpse::data::Dataset& ds, int64_t size,
                    const glimpse::data::Preprocess& pre, const std::string& label = "  eval", bool tta = false);
// Element k (0..7) of the dihedral group applied to square NCHW images: a horizontal flip when
// k & 1, then k >> 1 quarter turns counter-clockwise.
Tensor dihedral(const Tensor& images, int k);
// Softmax of logits [N, K] -> rows.
std::vector<std::vector<float>> softmax_rows(const Tensor& logits);

// ---- attribution ----
// "all" -> every method; "a,b,c" -> those, each checked (an unknown name lists the known ones).
std::vector<std::string> parse_methods(const std::string& list);
// "" if `name` is a known method, else the error message listing the known ones.
std::string check_method(const std::string& name);
std::string known_methods();
// Attribution options scaled to the input side: occlusion window S/8 (stride S/16) and the
// sliding-window classifier's window S/2 (stride S/16) -- the library's defaults are for 224 px.
glimpse::attr::Options method_options(int64_t size);
// Methods fast enough to run over a data set in the demo (all but the slowest perturbation ones
// when `fast`).
std::vector<std::string> default_methods(bool fast);

// ---- files ----
void write_json(const std::string& path, const nlohmann::json& j);
nlohmann::json read_json(const std::string& path);
void write_text(const std::string& path, const std::string& text);
// One CSV field as data/dataset.cpp reads it back: quoted (with "" for ") when it holds a comma,
// a quote, a line break or edge spaces.
std::string csv_field(const std::string& s);
void ensure_dir(const std::string& dir);
// Path with its extension replaced: ("a/b.safetensors", ".curve.json") -> "a/b.curve.json".
std::string sibling(const std::string& path, const std::string& suffix);
// PNG bytes of an image (encoded in memory), and the same in base64 (for inline
// <img src="data:image/png;base64,...">).
std::string png_bytes(const glimpse::io::Image& image);
std::string png_base64(const glimpse::io::Image& image);

// A model input [1, 3, S, S] (normalized as the loader does) -> a displayable RGB image.
glimpse::io::Image display_image(const Tensor& input);
// The printf of std::string.
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Seconds since `start` (steady clock).
double seconds_since(double start);
double now_s();

}  // namespace mel
