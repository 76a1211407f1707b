// Shared pieces of the melanoma app; see common.h.
#include "common.h"
#include "interrupt.h"
#include "json_in.h"
#include "roc.h"

#include <malloc.h>
#include <stb_image_write.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "attribution/attribution.h"
#include "autograd/functions.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/atomic_file.h"
#include "core/io/safetensors.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "layers/checkpoint.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> names = {"nevus", "melanoma", "seborrheic_keratosis"};
  return names;
}

namespace {
int g_threads = 1;
ProgressBar::Mode g_progress = ProgressBar::Mode::Auto;
}  // namespace

void setup_runtime(int threads, uint64_t seed) {
  // Every step allocates and frees the same large activation buffers; keep them in the heap
  // instead of a fresh mmap (and page faults) per allocation.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // core/parallel.h: every CPU kernel on glimpse's thread pool (Eigen's own threading off).
  set_num_threads(threads);
  g_threads = num_threads();
  manual_seed(seed);
}

int runtime_threads() { return g_threads; }
int loader_threads() { return g_threads <= 2 ? 1 : 2; }

ProgressBar::Mode progress_mode(const std::string& name) {
  if (name == "tty") return ProgressBar::Mode::Tty;
  if (name == "plain") return ProgressBar::Mode::Plain;
  if (name == "none") return ProgressBar::Mode::Silent;
  GLIMPSE_CHECK(name == "auto", "unknown progress mode '", name, "'; known: auto, tty, plain, none");
  return ProgressBar::Mode::Auto;
}
void set_progress(const std::string& name) { g_progress = progress_mode(name); }
ProgressBar::Mode progress(bool inner) {
  if (!inner) return g_progress;
  const bool tty =
      g_progress == ProgressBar::Mode::Tty || (g_progress == ProgressBar::Mode::Auto && ProgressBar::stderr_is_tty());
  return tty ? ProgressBar::Mode::Tty : ProgressBar::Mode::Silent;
}

// ---- models ----

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

std::optional<Device> parse_device(const std::string& spec) {
  if (spec == "cpu") return Device::cpu();
  if (spec == "cuda") return Device::cuda(0);
  if (spec.rfind("cuda:", 0) != 0 || spec.size() <= 5 || spec.size() > 8 ||
      spec.find_first_not_of("0123456789", 5) != std::string::npos)
    return std::nullopt;
  return Device::cuda(std::stoi(spec.substr(5)));
}

Device resolve_device(const std::string& spec) {
  const std::optional<Device> parsed = parse_device(spec);
  GLIMPSE_CHECK(parsed, "--device: '", spec, "' is not a device; use cpu, cuda or cuda:N");
  if (parsed->is_cpu()) return *parsed;
#ifdef GLIMPSE_WITH_CUDA
  GLIMPSE_CHECK(glimpse::cuda::init(), "--device ", spec,
                ": CUDA is unavailable: ", glimpse::cuda::unavailable_reason());
  const int count = glimpse::cuda::device_count();
  GLIMPSE_CHECK(parsed->index < count, "--device ", spec, ": this machine has ", count,
                " CUDA device(s), cuda:0..cuda:", count - 1);
  return *parsed;
#else
  GLIMPSE_FAIL("--device ", spec, ": CUDA is unavailable: this build has no CUDA backend (configured with ",
               "GLIMPSE_CUDA=OFF, or without nvcc and cuDNN)");
#endif
}

Device model_device(Module& model) {
  const std::vector<Tensor> params = model.parameters();
  return params.empty() ? Device::cpu() : params.front().device();
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

// ---- data ----

data::Dataset open_dataset(const std::string& dir, const std::string& split) {
  GLIMPSE_CHECK(!dir.empty(), "no data directory given: pass --data DIR (ISIC layout, or `melanoma synth --out DIR`)");
  GLIMPSE_CHECK(fs::is_directory(dir), "the data directory '", dir, "' does not exist");
  data::Dataset ds = data::Dataset::open(dir, split);
  GLIMPSE_CHECK(ds.size() > 0, "the data set ", dir, split.empty() ? std::string() : " (split '" + split + "')",
                " holds no images", split.empty() ? "" : "; is the split name right (train, val, test)?");
  return ds;
}

data::LoaderOptions inference_loader(int64_t size, int64_t batch, bool with_masks, const data::Preprocess& pre) {
  data::LoaderOptions o;
  o.batch_size = batch;
  o.image_size = size;
  o.shuffle = false;
  o.augment = false;
  o.with_masks = with_masks;
  o.preprocess = pre;
  o.threads = loader_threads();
  o.prefetch = 4;
  return o;
}

std::vector<std::vector<float>> softmax_rows(const Tensor& logits) {
  const Tensor p = softmax(logits.detach(), 1).contiguous().to(Device::cpu());
  const int64_t n = p.size(0), k = p.size(1);
  std::vector<std::vector<float>> rows(static_cast<size_t>(n));
  const float* d = p.data();
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)].assign(d + i * k, d + (i + 1) * k);
  return rows;
}

Tensor dihedral(const Tensor& images, int k) {
  GLIMPSE_CHECK(images.dim() == 4 && images.size(2) == images.size(3),
                "dihedral: expects square images [N, C, S, S], got ", shape_str(images.shape()));
  GLIMPSE_CHECK(k >= 0 && k < 8, "dihedral: k must be in 0..7, got ", k);
  const Tensor x = images.contiguous();
  const int64_t planes = x.size(0) * x.size(1), S = x.size(2);
  Tensor y = Tensor::empty(x.shape());
  const float* src = x.data();
  float* dst = y.data();
  const bool flip = k & 1;
  const int turns = k >> 1;
  for (int64_t p = 0; p < planes; ++p) {
    const float* a = src + p * S * S;
    float* b = dst + p * S * S;
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < S; ++j) {
        // Output (i, j) reads the source pixel that the rotation, then the flip, brings here.
        int64_t r = i, c = flip ? S - 1 - j : j;
        for (int t = 0; t < turns; ++t) {  // undo one counter-clockwise quarter turn
          const int64_t r0 = r;
          r = c;
          c = S - 1 - r0;
        }
        b[i * S + j] = a[r * S + c];
      }
  }
  return y;
}

Predictions predict(Model& model, const data::Dataset& ds, int64_t size, const data::Preprocess& pre,
                    const std::string& label, bool tta) {
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  data::DataLoader loader(ds, inference_loader(size, 64, false, pre));
  loader.start_epoch(0);
  Predictions p;
  ProgressBar bar(label, std::max<int64_t>(1, loader.batches_per_epoch()), "img", progress(/*inner=*/true));
  data::Batch b;
  double loss_sum = 0;
  const Device dev = model_device(model);  // batches are decoded on the CPU, then moved to the model
  while (loader.next(b)) {
    if (interrupt_requested()) break;  // train's validation: a Ctrl-C stops here too (interrupt.h)
    std::vector<std::vector<float>> rows = softmax_rows(model(b.images.to(dev)));
    for (int k = 1; tta && k < 8; ++k) {
      const std::vector<std::vector<float>> more = softmax_rows(model(dihedral(b.images, k).to(dev)));
      for (size_t i = 0; i < rows.size(); ++i)
        for (size_t c = 0; c < rows[i].size(); ++c) rows[i][c] += more[i][c];
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      if (tta)
        for (float& v : rows[i]) v /= 8.f;
      loss_sum -= std::log(std::max(rows[i][static_cast<size_t>(b.labels[i])], 1e-12f));
      p.probs.push_back(std::move(rows[i]));
    }
    p.labels.insert(p.labels.end(), b.labels.begin(), b.labels.end());
    p.ids.insert(p.ids.end(), b.ids.begin(), b.ids.end());
    bar.step(static_cast<int64_t>(b.labels.size()));
  }
  bar.finish();
  p.loss = p.labels.empty() ? 0 : loss_sum / static_cast<double>(p.labels.size());
  model.train(was_training);
  return p;
}

// ---- attribution ----

std::string known_methods() {
  std::string s;
  for (const auto& m : attr::method_names()) s += (s.empty() ? "" : ", ") + m;
  return s;
}

std::string check_method(const std::string& name) {
  const auto& names = attr::method_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return "";
  return "unknown attribution method '" + name + "'; known methods: " + known_methods();
}

std::vector<std::string> parse_methods(const std::string& list) {
  if (list.empty() || list == "all") return attr::method_names();
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string m; std::getline(ss, m, ',');) {
    m.erase(0, m.find_first_not_of(' '));
    m.erase(m.find_last_not_of(' ') + 1);
    if (m.empty()) continue;
    const std::string err = check_method(m);
    GLIMPSE_CHECK(err.empty(), err);
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  GLIMPSE_CHECK(!out.empty(), "the method list '", list, "' names no method; known methods: ", known_methods());
  return out;
}

attr::Options method_options(int64_t size) {
  attr::Options o;
  o.occlusion_window = std::max<int64_t>(2, size / 8);
  o.occlusion_stride = std::max<int64_t>(1, size / 16);
  o.sliding_window = std::max<int64_t>(4, size / 2);
  o.sliding_stride = std::max<int64_t>(1, size / 16);
  // lrp-composite's z^B bounds: black and white after the loader's normalization.
  for (int c = 0; c < 3; ++c) {
    o.lrp_low.push_back((0.f - glimpse::data::kNormMean[c]) / glimpse::data::kNormStd[c]);
    o.lrp_high.push_back((1.f - glimpse::data::kNormMean[c]) / glimpse::data::kNormStd[c]);
  }
  return o;
}

std::vector<std::string> default_methods(bool fast) {
  if (!fast) return attr::method_names();
  std::vector<std::string> out;
  for (const auto& m : attr::method_names())
    if (m != "sliding-window") out.push_back(m);
  return out;
}

// ---- files ----

void ensure_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  GLIMPSE_CHECK(fs::is_directory(dir), "cannot create the directory '", dir, "'", ec ? ": " + ec.message() : "");
}

// Atomic and checked to the last byte (core/io/atomic_file.h): a unique temporary per process and
// write, so two processes writing the same path never share one, and a full disk is an error, never
// a truncated file in place.
void write_text(const std::string& path, const std::string& text) {
  const fs::path p(path);
  if (p.has_parent_path()) ensure_dir(p.parent_path().string());
  io::write_file_atomic(path, text);
}

// Invalid UTF-8 in a string (an image id from someone's CSV) is written as U+FFFD instead of
// throwing nlohmann's type_error.316 after the work is done.
void write_json(const std::string& path, const nlohmann::json& j) {
  write_text(path, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

nlohmann::json read_json(const std::string& path) {
  // Bounded: the largest file the app writes (eval.json with one prediction per image) is a few MiB
  // for tens of thousands of images; anything past this limit is not ours.
  constexpr uint64_t kMaxJsonBytes = uint64_t(64) << 20;
  const std::string text = io::read_file(path, kMaxJsonBytes);
  check_json_depth(text, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // Every nlohmann fault, not only parse_error: a number outside the double range is out_of_range.406.
    GLIMPSE_FAIL("'", path, "' is not valid JSON: ", e.what());
  } catch (const std::bad_alloc&) {
    GLIMPSE_FAIL("'", path, "': out of memory parsing ", text.size(), " bytes of JSON");
  }
}

std::string csv_field(const std::string& s) {
  const bool edge = !s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t');
  if (!edge && s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string sibling(const std::string& path, const std::string& suffix) {
  fs::path p(path);
  p.replace_extension("");
  return p.string() + suffix;
}

namespace {
void append_bytes(void* ctx, void* data, int size) {
  auto* out = static_cast<std::string*>(ctx);
  out->append(static_cast<const char*>(data), static_cast<size_t>(size));
}
std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}
}  // namespace

std::string png_bytes(const io::Image& image) {
  GLIMPSE_CHECK(!image.empty(), "png_bytes: empty image");
  std::string bytes;
  const int ok = stbi_write_png_to_func(append_bytes, &bytes, static_cast<int>(image.width),
                                        static_cast<int>(image.height), static_cast<int>(image.channels),
                                        image.pixels.data(), static_cast<int>(image.width * image.channels));
  GLIMPSE_CHECK(ok, "png_bytes: PNG encoding of a ", image.width, "x", image.height, " image failed");
  return bytes;
}

std::string png_base64(const io::Image& image) { return base64(png_bytes(image)); }

io::Image display_image(const Tensor& input) { return io::tensor_to_image(data::denormalize(input)); }

std::string strf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < static_cast<int>(sizeof buf)) return std::string(buf, static_cast<size_t>(std::max(n, 0)));
  std::string s(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(s.data(), s.size(), fmt, ap);
  va_end(ap);
  s.resize(static_cast<size_t>(n));
  return s;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double seconds_since(double start) { return now_s() - start; }

}  // namespace mel
