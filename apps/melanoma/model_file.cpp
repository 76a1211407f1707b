#include "model_file.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/io/safetensors.h"
#include "files.h"
#include "json_in.h"
#include "layers/checkpoint.h"
#include "roc.h"
#include "runtime.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> names = {"nevus", "melanoma", "seborrheic_keratosis"};
  return names;
}

std::map<std::string, std::string> meta_to_map(const ModelMeta& m) {
  std::string names;
  for (const auto& n : m.class_names) names += (names.empty() ? "" : ",") + n;
  return {{"app", "melanoma"},
          {"arch", m.arch},
          {"input_size", std::to_string(m.size)},
          {"classes", std::to_string(m.classes)},
          {"class_names", names},
          {"epoch", std::to_string(m.epoch)},
          {"epochs", std::to_string(m.epochs)},
          {"optimizer_step", std::to_string(m.step)},
          {"optimizer", m.optimizer},
          {"schedule", m.schedule},
          {"lr", strf("%g", m.lr)},
          {"seed", std::to_string(m.seed)},
          {"data", m.data},
          {"hair_removal", m.preprocess.hair_removal ? "1" : "0"},
          {"color_constancy", m.preprocess.color_constancy ? "1" : "0"},
          {"val_auc_mean", strf("%.6f", m.val_auc_mean)},
          {"mask_guidance", strf("%g", m.mask_guidance)},
          {"init", m.init},
          {"freeze", m.freeze}};
}

namespace {
// Checkpoint metadata comes from a file: every value is parsed strictly (the whole string, no
// spaces, no sign where none belongs, no overflow) and bounded before anything is sized by it.
// Errors name the file, the key and the value (cut short: a hostile value may be megabytes).
std::string shown(const std::string& v) {
  return v.size() <= 40 ? v : v.substr(0, 40) + "... (" + std::to_string(v.size()) + " chars)";
}

[[noreturn]] void bad_meta(const std::string& path, const std::string& key, const std::string& v,
                           const std::string& why) {
  GLIMPSE_FAIL(path, ": metadata '", key, "' = '", shown(v), "' ", why,
               " (a damaged or hand-edited checkpoint? re-train, or restore the file written by `melanoma train`)");
}

const std::string& need(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  GLIMPSE_CHECK(it != m.end(), path, " has no '", key,
                "' in its metadata: it is not a checkpoint written by `melanoma train` (which records arch, "
                "input_size, classes, epoch and optimizer_step)");
  return it->second;
}
const std::string* find(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}
int64_t parse_int(const std::string& v, const std::string& key, const std::string& path, int64_t lo, int64_t hi,
                  const std::string& range_why = "") {
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
    bad_meta(path, key, v,
             ec == std::errc::result_out_of_range ? "is out of the range of a 64-bit integer" : "is not an integer");
  }
  if (x < lo || x > hi) {
    bad_meta(path, key, v,
             "is out of range: it must be in " + std::to_string(lo) + ".." + std::to_string(hi) + range_why);
  }
  return x;
}
int64_t need_int(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path,
                 int64_t lo, int64_t hi, const std::string& range_why = "") {
  return parse_int(need(m, key, path), key, path, lo, hi, range_why);
}
// Absent -> `absent`; present -> a finite number in [lo, hi] (NaN too when nan_ok).
double opt_double(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path,
                  double absent, double lo, double hi, bool nan_ok = false) {
  const std::string* v = find(m, key);
  if (!v) return absent;
  double x = 0;
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
  if (v->empty() || ec != std::errc() || end != v->data() + v->size()) bad_meta(path, key, *v, "is not a number");
  if (std::isnan(x) && nan_ok) return x;
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_meta(path, key, *v, "is out of range: it must be finite, in " + strf("%g..%g", lo, hi));
  return x;
}
bool opt_flag(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  const std::string* v = find(m, key);
  if (!v) return false;  // absent in older checkpoints: off
  if (*v != "0" && *v != "1") bad_meta(path, key, *v, "must be 0 or 1");
  return *v == "1";
}
std::string get(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : it->second;
}
}  // namespace

ModelMeta meta_from_map(const std::map<std::string, std::string>& m, const std::string& path) {
  ModelMeta meta;
  meta.arch = need(m, "arch", path);
  const ModelSpec* spec = nullptr;
  try {
    spec = &model_spec(meta.arch);
  } catch (const glimpse::Error& e) {
    bad_meta(path, "arch", meta.arch, std::string("is not an architecture of this build: ") + e.what());
  }
  // Bounds: an input side the architecture survives, up to 4096 (train takes 8..1024; beyond 4096
  // one image's activations alone would take gigabytes); a class count up to 10000 (the classifier's
  // rows are checked against it in load_model). Nothing below is sized by a number not checked here.
  meta.size = need_int(m, "input_size", path, spec->min_input_size, kMaxInputSize,
                       " for " + meta.arch + " (" + std::to_string(spec->min_input_size) +
                           " is the smallest side its downsampling survives)");
  meta.classes = need_int(m, "classes", path, 2, kMaxClasses);
  const std::string* epochs = find(m, "epochs");
  meta.epochs = epochs ? parse_int(*epochs, "epochs", path, 0, kMaxEpochs) : -1;
  meta.epoch = need_int(m, "epoch", path, 0, meta.epochs >= 0 ? meta.epochs : kMaxEpochs,
                        epochs ? " (the epochs planned, metadata 'epochs')" : "");
  if (meta.epochs < 0) meta.epochs = meta.epoch;  // absent in older checkpoints
  meta.step = need_int(m, "optimizer_step", path, 0, std::numeric_limits<int64_t>::max());
  const std::string names = get(m, "class_names");
  if (!names.empty()) {
    std::stringstream ss(names);
    for (std::string n; std::getline(ss, n, ',');) {
      meta.class_names.push_back(n);
      if (static_cast<int64_t>(meta.class_names.size()) > meta.classes) break;  // bounded by classes
    }
    if (static_cast<int64_t>(meta.class_names.size()) != meta.classes) {
      bad_meta(path, "class_names", names,
               "does not hold " + std::to_string(meta.classes) + " comma-separated names, as metadata 'classes' says");
    }
  } else {
    for (int64_t c = 0; c < meta.classes; ++c)
      meta.class_names.push_back(c < 3 ? class_names()[static_cast<size_t>(c)] : "class" + std::to_string(c));
  }
  meta.optimizer = get(m, "optimizer");
  meta.schedule = get(m, "schedule");
  meta.init = get(m, "init");
  meta.freeze = get(m, "freeze");
  meta.lr = opt_double(m, "lr", path, 0, 0, 1e6);
  if (const std::string* seed = find(m, "seed")) {
    const auto [end, ec] = std::from_chars(seed->data(), seed->data() + seed->size(), meta.seed);
    if (seed->empty() || ec != std::errc() || end != seed->data() + seed->size())
      bad_meta(path, "seed", *seed, "is not an unsigned 64-bit integer");
  }
  meta.data = get(m, "data");
  meta.preprocess.hair_removal = opt_flag(m, "hair_removal", path);
  meta.preprocess.color_constancy = opt_flag(m, "color_constancy", path);
  meta.mask_guidance = opt_double(m, "mask_guidance", path, 0, 0, 1e6);  // absent: 0
  // -1: no validation yet; nan: an AUC that was undefined (a class absent from the split).
  meta.val_auc_mean = opt_double(m, "val_auc_mean", path, -1, -1, 1, /*nan_ok=*/true);
  return meta;
}

namespace {
// The classifier of each architecture (layers/models.h): a Linear whose weight is [classes, features].
std::string head_of(const std::string& arch) { return arch == "resnet18-gap" ? "fc" : "classifier"; }

// The metadata against the weights' own shapes: the class count must be the classifier's row count,
// so that the model built from the metadata is the one the weights describe.
void check_meta_against_weights(const ModelMeta& meta, const SafetensorsFile& file, const std::string& path) {
  const std::string w = head_of(meta.arch) + ".weight", b = head_of(meta.arch) + ".bias";
  GLIMPSE_CHECK(file.contains(w), path, ": metadata says arch '", meta.arch, "', but the file has no tensor '", w,
                "' (the ", meta.arch, " classifier): not a ", meta.arch, " checkpoint, or a damaged one");
  const Shape& ws = file.at(w).shape();
  GLIMPSE_CHECK(ws.size() == 2 && ws[0] == meta.classes, path, ": metadata 'classes' = ", meta.classes,
                " but the classifier weight '", w, "' has shape ", shape_str(ws), " (", meta.classes,
                " rows expected): the metadata and the weights disagree");
  if (file.contains(b)) {
    const Shape& bs = file.at(b).shape();
    GLIMPSE_CHECK(bs.size() == 1 && bs[0] == meta.classes, path, ": metadata 'classes' = ", meta.classes,
                  " but the classifier bias '", b, "' has shape ", shape_str(bs));
  }
}
}  // namespace

LoadedModel load_model(const std::string& path) {
  GLIMPSE_CHECK(!path.empty(), "no model given: pass --model FILE (a checkpoint written by `melanoma train`)");
  GLIMPSE_CHECK(fs::is_regular_file(path), "the model file '", path, "' does not exist");
  // The metadata first (reading the file once more is cheap next to training), then the model.
  const SafetensorsFile file = load_safetensors(path);  // verifies the checksum, when there is one
  if (!file.has_checksum) {
    std::fprintf(stderr,
                 "note: %s has no checksum (written by PyTorch or a glimpse before checksums): loaded unverified\n",
                 path.c_str());
  }
  LoadedModel lm;
  lm.meta = meta_from_map(file.metadata, path);
  check_meta_against_weights(lm.meta, file, path);  // before anything is built from the metadata
  Rng rng(lm.meta.seed);
  lm.model = make_model(lm.meta.arch, lm.meta.classes, lm.meta.size, rng);
  load_checkpoint(*lm.model, path, /*strict=*/true);
  lm.model->eval();
  return lm;
}

void align_dataset_to_model(const ModelMeta& meta, data::Dataset& ds, const std::string& model_path) {
  auto list = [](const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  GLIMPSE_CHECK(static_cast<int64_t>(ds.class_names.size()) == meta.classes, "the model ", model_path, " has ",
                meta.classes, " classes (", list(meta.class_names), ") but the data set ", ds.root, " has ",
                ds.class_names.size(), " (", list(ds.class_names), "): a model trained on another kind of data?");
  std::vector<int64_t> to_model(ds.class_names.size());
  bool reordered = false;
  for (size_t c = 0; c < ds.class_names.size(); ++c) {
    to_model[c] = find_class(meta.class_names, ds.class_names[c]);
    GLIMPSE_CHECK(to_model[c] >= 0, "the data set ", ds.root, " has a class '", ds.class_names[c], "' that the model ",
                  model_path, " does not know (its classes: ", list(meta.class_names), ")");
    reordered |= to_model[c] != static_cast<int64_t>(c);
  }
  if (!reordered) return;
  std::fprintf(stderr,
               "note: the classes of %s (%s) are in another order than the model's (%s); labels matched by name\n",
               ds.root.c_str(), list(ds.class_names).c_str(), list(meta.class_names).c_str());
  for (auto& s : ds.samples) s.label = to_model[static_cast<size_t>(s.label)];
  ds.class_names = meta.class_names;
}

std::string isic_label_columns(const std::vector<std::string>& class_names, int64_t label) {
  return std::string(label == find_class(class_names, kMelanoma) ? "1" : "0") + "," +
         (label == find_class(class_names, kKeratosis) ? "1" : "0");
}

int64_t parse_target_class(const std::string& spec, const std::vector<std::string>& class_names,
                           const std::string& who) {
  if (spec == "predicted" || spec == "-1") return -1;
  if (const int64_t c = find_class(class_names, spec); c >= 0) return c;
  std::string known;
  for (size_t c = 0; c < class_names.size(); ++c) known += strf("%s%s (%zu)", c ? ", " : "", class_names[c].c_str(), c);
  if (!spec.empty() && spec.find_first_not_of("0123456789") == std::string::npos && spec.size() < 10) {
    const int64_t c = std::stoll(spec);
    GLIMPSE_CHECK(c < static_cast<int64_t>(class_names.size()), who, ": --target ", spec, " but the model has ",
                  class_names.size(), " classes: ", known);
    return c;
  }
  throw glimpse::Error(who + ": --target '" + spec + "' is neither 'predicted' nor a class of the model: " + known);
}

}  // namespace mel
