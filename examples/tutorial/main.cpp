// The library tutorial (docs/tutorial.md walks through it): from a folder of photos sorted into one
// sub-folder per class to a trained classifier, a saved checkpoint, a Grad-CAM explanation of a new
// photo and a PNG with the regions the network looked at circled.
//
//   tutorial DATA_DIR OUT_DIR PHOTO
//
// DATA_DIR/<class>/<images> (any number of classes, .jpg/.png/.bmp); writes into OUT_DIR
//   model.safetensors  the trained weights, with the class names and image size as metadata
//   predictions.csv    one row per validation photo: path, true class, predicted class, probabilities
//   explained.png      PHOTO with the Grad-CAM heatmap blended over it and its regions circled
//   regions.json       those regions (attr::write_regions_json) and the class explained
// The blocks between "// [name]" and "// [/name]" are quoted by docs/tutorial.md; a test
// (tests/test_tutorial.cpp) checks the quotes still match.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "attribution/regions.h"
#include "attribution/render.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/image.h"
#include "core/io/safetensors.h"
#include "data/data.h"
#include "layers/checkpoint.h"
#include "layers/lr_schedule.h"
#include "layers/models.h"
#include "layers/optim.h"

using namespace glimpse;

// Small on purpose: the CI runs this on a few dozen 64 px photos in seconds.
constexpr int64_t kImageSize = 32;  // the network's input side; photos are resized to it
constexpr int kEpochs = 12;
constexpr int64_t kBatch = 16;
constexpr float kLearningRate = 3e-3f;

// Splits a dataset in two: every 5th photo of each class goes to validation.
void split(const data::Dataset& all, data::Dataset& train, data::Dataset& val) {
  train = val = data::Dataset{all.root, all.class_names, {}};
  std::vector<int64_t> seen(all.class_names.size(), 0);
  for (const data::Sample& s : all.samples) (seen[s.label]++ % 5 == 4 ? val : train).samples.push_back(s);
}

// Splits "a,b,c" at the commas.
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out(1);
  for (char c : s)
    if (c == ',')
      out.emplace_back();
    else
      out.back().push_back(c);
  return out;
}

// Trains `model` on `train` and saves it to `path`; returns the last epoch's mean loss.
float train_and_save(Model& model, const data::Dataset& train, const std::string& path) {
  // [loader]
  data::LoaderOptions lo;
  lo.batch_size = kBatch;
  lo.image_size = kImageSize;
  lo.augment = true;  // flips, 90-degree turns, crops, colour jitter: the classes must survive them
  lo.seed = 1;
  data::DataLoader loader(train, lo);
  // [/loader]

  // [train]
  Adam opt(model.parameters(), AdamOptions{.lr = kLearningRate});
  CosineLR schedule(/*total_steps=*/kEpochs * loader.batches_per_epoch());
  int64_t step = 0;
  float epoch_loss = 0;
  model.train();
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    loader.start_epoch(epoch);
    data::Batch batch;
    double sum = 0;
    int64_t batches = 0;
    while (loader.next(batch)) {
      schedule.apply(opt, step++);
      Tensor loss = cross_entropy(model(batch.images), batch.labels);
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += loss.item();
      ++batches;
    }
    epoch_loss = static_cast<float>(sum / std::max<int64_t>(batches, 1));
    std::printf("epoch %2d  loss %.4f\n", epoch + 1, epoch_loss);
  }
  // [/train]

  // [save]
  std::string classes;
  for (const std::string& name : train.class_names) classes += (classes.empty() ? "" : ",") + name;
  save_checkpoint(model, path, {{"classes", classes}, {"image_size", std::to_string(kImageSize)}});
  // [/save]
  return epoch_loss;
}

// The class probabilities of one photo, as the network sees it (resized and normalized like the
// loader's images).
std::vector<float> predict(Model& model, const std::string& photo) {
  // [predict]
  model.eval();  // (no dropout or batch norm here, but a trained model is always run in eval mode)
  NoGradGuard no_grad;
  Tensor x = data::load_for_model(photo, kImageSize);  // [1, 3, S, S]
  Tensor p = softmax(model(x), /*dim=*/1);             // [1, classes]
  return std::vector<float>(p.data(), p.data() + p.numel());
  // [/predict]
}

int64_t argmax(const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

// Writes the validation predictions and returns the accuracy.
double evaluate(Model& model, const data::Dataset& val, const std::string& csv_path) {
  std::ofstream csv(csv_path);
  GLIMPSE_CHECK(csv.good(), "cannot write '", csv_path, "'");
  csv << "path,true_class,predicted_class";
  for (const std::string& name : val.class_names) csv << ",p_" << name;
  csv << "\n";
  int64_t correct = 0;
  for (const data::Sample& s : val.samples) {
    const std::vector<float> p = predict(model, s.image_path);
    const int64_t k = argmax(p);
    correct += k == s.label;
    csv << s.image_path << "," << val.class_names[s.label] << "," << val.class_names[k];
    char buf[32];
    for (float v : p) std::snprintf(buf, sizeof buf, ",%.9g", v), csv << buf;  // round-trips a float
    csv << "\n";
  }
  GLIMPSE_CHECK(csv.good(), "writing '", csv_path, "' failed");
  return val.size() ? double(correct) / double(val.size()) : 0.0;
}

// A program of its own, later: load the checkpoint, explain `photo`, circle what the network used.
void explain_photo(const std::string& checkpoint, const std::string& photo, const std::string& out_dir) {
  // [reload]
  // The class names first (the metadata saved with the weights), to build a network of that size.
  const std::map<std::string, std::string> meta = load_safetensors(checkpoint).metadata;
  GLIMPSE_CHECK(meta.count("classes"), checkpoint, ": no 'classes' in its metadata (not written by this tutorial)");
  const std::vector<std::string> classes = split_commas(meta.at("classes"));
  Rng rng(0);  // the initial weights are overwritten by the checkpoint's
  std::shared_ptr<Model> model = small_gap_net(static_cast<int64_t>(classes.size()), kImageSize, rng);
  load_checkpoint(*model, checkpoint);  // strict: every tensor by name and shape, or an Error
  model->eval();
  // [/reload]

  // [explain]
  Tensor x = data::load_for_model(photo, kImageSize);
  attr::Options opt;  // no targets: explain the class the network predicts
  attr::AttributionMap m = attr::gradcam(*model, x, opt);
  const int64_t cls = m.targets[0];
  // m.map: [1, S, S], Grad-CAM upsampled to the input and normalized to [0, 1]
  // [/explain]

  // [regions]
  attr::RegionOptions ro;
  ro.threshold = attr::parse_threshold("fraction:0.5");  // pixels at >= half the map's peak
  ro.min_area = 4;
  ro.max_regions = 3;
  std::vector<attr::Region> regions = attr::find_regions(m.map, ro);

  io::Image picture = io::load_image(photo);  // the photo at its own size
  picture = attr::overlay_heatmap(picture, m.map, attr::Colormap::Jet, /*alpha=*/0.45f);
  attr::draw_regions(picture, regions, kImageSize, kImageSize);  // map coordinates scaled to the photo's
  io::save_png(out_dir + "/explained.png", picture);
  attr::write_regions_json(out_dir + "/regions.json", regions, kImageSize, kImageSize, ro,
                           {{"class", classes[cls]}, {"photo", photo}});
  // [/regions]
  std::printf("%s: explained class '%s' (logit %.3f), %zu region(s); wrote %s/explained.png\n", photo.c_str(),
              classes[cls].c_str(), m.scores[0], regions.size(), out_dir.c_str());
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DATA_DIR OUT_DIR PHOTO\n", argv[0]);
    return 2;
  }
  const std::string data_dir = argv[1], out_dir = argv[2], photo = argv[3];
  try {
    // [open]
    data::Dataset all = data::Dataset::open_class_folders(data_dir);  // classes sorted by folder name
    data::Dataset train, val;
    split(all, train, val);
    // [/open]
    std::printf("%zu photos of %zu classes: %zu to train, %zu to validate\n", all.size(), all.class_names.size(),
                train.size(), val.size());
    std::filesystem::create_directories(out_dir);

    // [model]
    Rng rng(42);
    std::shared_ptr<Model> model = small_gap_net(static_cast<int64_t>(all.class_names.size()), kImageSize, rng);
    // [/model]
    train_and_save(*model, train, out_dir + "/model.safetensors");
    const double accuracy = evaluate(*model, val, out_dir + "/predictions.csv");
    std::printf("validation accuracy %.1f%% (%zu photos)\n", 100 * accuracy, val.size());

    explain_photo(out_dir + "/model.safetensors", photo, out_dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tutorial: %s\n", e.what());
    return 1;
  }
  return 0;
}
