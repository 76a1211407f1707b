// A melanoma model as a file: the metadata a checkpoint records beside the weights, loading a model
// from its checkpoint alone, and matching a data set's classes and a --target to the model's by name.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/data.h"
#include "layers/models.h"

namespace mel {

using glimpse::Tensor;

// The ISIC 2017 classes, in the order of data.h.
const std::vector<std::string>& class_names();

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

}  // namespace mel
