// The explorer's answers; see serve_api.h.
#include "serve_api.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "attribution/metrics.h"
#include "attribution/regions.h"
#include "attribution/render.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/io/image.h"
#include "data/data.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {
namespace {

constexpr int64_t kMaxListed = 500;      // images per /api/images page
constexpr int64_t kMaxPhotoSide = 2048;  // /api/photo?size=

std::string param(const Params& p, const std::string& name, const std::string& fallback = "") {
  auto it = p.find(name);
  return it == p.end() ? fallback : it->second;
}

// A whole-string integer in [lo, hi]; errors name the parameter and the value.
int64_t int_param(const Params& p, const std::string& name, int64_t fallback, int64_t lo, int64_t hi) {
  auto it = p.find(name);
  if (it == p.end() || it->second.empty()) return fallback;
  const std::string& v = it->second;
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size())
    throw ApiError(400, "parameter '" + name + "' = '" + v.substr(0, 40) + "' is not an integer");
  if (x < lo || x > hi)
    throw ApiError(
        400, "parameter '" + name + "' = " + v + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
  return x;
}

double real_param(const Params& p, const std::string& name, double fallback, double lo, double hi) {
  auto it = p.find(name);
  if (it == p.end() || it->second.empty()) return fallback;
  const std::string& v = it->second;
  double x = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(x))
    throw ApiError(400, "parameter '" + name + "' = '" + v.substr(0, 40) + "' is not a number");
  if (x < lo || x > hi)
    throw ApiError(400, "parameter '" + name + "' = " + v + " is out of range " + strf("%g..%g", lo, hi));
  return x;
}

// A photo to work on: decoded pixels, its name, and the expert mask when the data set has one.
struct Photo {
  std::string name;
  io::Image image;
  bool has_mask = false;
  io::Mask mask;
};

}  // namespace

struct ExplorerApi::Impl {
  ServeOptions opt;
  LoadedModel lm;
  std::mutex model_mutex;
  nlohmann::json layers = nlohmann::json::array();  // the spatial layers: CAM family / SAM choices
  std::string default_layer;

  // Data set splits, opened at start: read-only afterwards, so shared by every thread.
  struct Split {
    data::Dataset ds;
    std::map<std::string, size_t> by_id;
  };
  std::map<std::string, Split> splits;
  std::vector<std::string> split_names;  // in the order of labels.csv

  const data::Sample& sample(const Params& p) {
    const std::string split = param(p, "split"), id = param(p, "id");
    auto s = splits.find(split);
    if (s == splits.end()) {
      std::string known;
      for (const auto& n : split_names) known += (known.empty() ? "" : ", ") + n;
      throw ApiError(
          404, "no split '" + split.substr(0, 40) + "'" +
                   (splits.empty() ? std::string(" (the server was started without --data)") : "; known: " + known));
    }
    auto i = s->second.by_id.find(id);
    if (i == s->second.by_id.end()) throw ApiError(404, "no image '" + id.substr(0, 80) + "' in split '" + split + "'");
    return s->second.ds.samples[i->second];
  }

  // The photo of a request: the body when there is one (an upload), else split + id.
  Photo photo(const Params& p, const std::string& body, bool want_mask) {
    Photo ph;
    if (!body.empty()) {
      ph.name = param(p, "name", "upload");
      ph.image = io::decode_image(reinterpret_cast<const uint8_t*>(body.data()), body.size(), ph.name, 3);
      return ph;
    }
    if (!p.count("id")) throw ApiError(400, "no photo: send the image as the request body, or give split and id");
    const data::Sample& s = sample(p);
    ph.name = s.image_path;
    ph.image = io::load_image(s.image_path);
    if (want_mask && !s.mask_path.empty()) {
      ph.mask = io::load_mask(s.mask_path);
      ph.has_mask = true;
    }
    return ph;
  }

  // explain's options from the query: the CLI's defaults, the CLI's checks.
  ExplainOptions explain_options(const Params& p, const std::string& image_name) {
    ExplainOptions o;
    o.model = opt.model;
    o.image = image_name;
    o.method = param(p, "method", o.method);
    o.layer = param(p, "layer");
    o.threshold = param(p, "threshold", o.threshold);
    o.shape = param(p, "shape", o.shape);
    o.colormap = param(p, "colormap", o.colormap);
    o.target = param(p, "target", "predicted");
    target(o.target);  // refused here (400, naming the classes) rather than mid-explanation
    o.max_regions = static_cast<int>(int_param(p, "max_regions", o.max_regions, 0, 1000));
    o.min_area = real_param(p, "min_area", o.min_area, 0, 1);
    o.alpha = static_cast<float>(real_param(p, "alpha", o.alpha, 0, 1));
    o.display = int_param(p, "display", o.display, 16, kMaxPhotoSide);
    o.seed = opt.seed;
    o.device = opt.device;
    check_explain_options(o, "explain");
    return o;
  }

  // "" or "predicted" -> -1; a class index or a class name -> that class.
  int64_t target(const std::string& v) {
    if (v.empty() || v == "predicted") return -1;
    const auto& names = lm.meta.class_names;
    for (size_t c = 0; c < names.size(); ++c)
      if (names[c] == v) return static_cast<int64_t>(c);
    int64_t x = -2;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec == std::errc() && end == v.data() + v.size() && x >= -1 && x < lm.meta.classes) return x;
    std::string known = "predicted";
    for (const auto& n : names) known += ", " + n;
    throw ApiError(400, "target '" + v.substr(0, 40) + "' is not a class of the model (" + known + ", or 0.." +
                            std::to_string(lm.meta.classes - 1) + ")");
  }

  // One method on one photo: explain's JSON, the overlay, and the scores against the mask.
  nlohmann::json explain_one(const Photo& ph, const ExplainOptions& o, bool with_overlay) {
    const double t0 = now_s();
    PhotoExplanation pe;
    {
      std::lock_guard<std::mutex> lock(model_mutex);
      pe = explain_photo(lm, ph.image, o, target(o.target));
    }
    nlohmann::json j = pe.result.json;
    if (ph.has_mask) {
      const attr::LocalizationScores s = score_against_mask(
          pe.attribution.map, ph.mask, attr::parse_threshold(o.threshold), LocalizeOptions{}.tolerance);
      j["localization"] = {
          {"dice", s.dice},
          {"iou", s.iou},
          {"energy", s.energy},
          {"pointing", s.hit},
          {"peak_distance", std::isfinite(s.peak_distance) ? nlohmann::json(s.peak_distance) : nlohmann::json()},
          {"resolution", lm.meta.size},
          {"tolerance_px", LocalizeOptions{}.tolerance * static_cast<double>(lm.meta.size)}};
    }
    if (with_overlay) j["overlay_png"] = png_base64(pe.overlay);
    j["seconds"] = seconds_since(t0);
    return j;
  }

  std::vector<std::string> methods(const Params& p) {
    const std::string list = param(p, "methods");
    if (list.empty()) throw ApiError(400, "no methods given (methods=a,b,c or all)");
    std::vector<std::string> ms = parse_methods(list);
    if (const size_t most = attr::method_names().size(); ms.size() > most)
      throw ApiError(400, "at most " + std::to_string(most) + " methods per request");
    return ms;
  }
};

ExplorerApi::ExplorerApi(const ServeOptions& o) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.opt = o;
  const Device device = resolve_device(o.device);
  m.lm = load_model(o.model);
  m.lm.model->to(device);
  {
    const Tensor x = Tensor::zeros({1, 3, m.lm.meta.size, m.lm.meta.size}).to(device);
    for (const auto& [name, shape] : attr::spatial_layers(*m.lm.model, x))
      m.layers.push_back({{"name", name}, {"channels", shape[1]}, {"height", shape[2]}, {"width", shape[3]}});
    m.default_layer = attr::default_layer(*m.lm.model, x);
  }
  if (!o.data.empty()) {
    GLIMPSE_CHECK(fs::is_directory(o.data), "serve: the data directory '", o.data, "' does not exist");
    // The splits of labels.csv's `split` column, in order of appearance; without one, one split "all".
    std::vector<std::string> names;
    const fs::path csv = fs::path(o.data) / "labels.csv";
    if (fs::is_regular_file(csv)) {
      const data::CsvTable t = data::read_csv(csv.string());
      const int64_t col = t.column("split");
      std::set<std::string> seen;
      if (col >= 0)
        for (const auto& row : t.rows)
          if (seen.insert(row[static_cast<size_t>(col)]).second) names.push_back(row[static_cast<size_t>(col)]);
    }
    if (names.empty()) names.push_back("all");
    for (const std::string& n : names) {
      Impl::Split s;
      s.ds = open_dataset(o.data, n == "all" ? "" : n);
      align_dataset_to_model(m.lm.meta, s.ds, o.model);  // labels in the model's class order, by name
      for (size_t i = 0; i < s.ds.samples.size(); ++i) s.by_id.emplace(s.ds.samples[i].id, i);
      m.splits.emplace(n, std::move(s));
      m.split_names.push_back(n);
    }
  }
}

ExplorerApi::~ExplorerApi() = default;

std::mutex& ExplorerApi::model_mutex() { return impl_->model_mutex; }

nlohmann::json ExplorerApi::info() {
  const Impl& m = *impl_;
  nlohmann::json splits = nlohmann::json::array();
  for (const auto& n : m.split_names) {
    const auto& ds = m.splits.at(n).ds;
    int64_t masks = 0;
    for (const auto& s : ds.samples) masks += s.mask_path.empty() ? 0 : 1;
    splits.push_back({{"name", n}, {"images", ds.size()}, {"masks", masks}});
  }
  const ExplainOptions d;
  return {{"model", m.opt.model},
          {"arch", m.lm.meta.arch},
          {"input_size", m.lm.meta.size},
          {"classes", m.lm.meta.class_names},
          {"mask_guidance", m.lm.meta.mask_guidance},
          {"methods", attr::method_names()},
          {"layers", m.layers},
          {"default_layer", m.default_layer},
          {"data", m.opt.data},
          {"splits", splits},
          {"defaults",
           {{"method", d.method},
            {"threshold", d.threshold},
            {"shape", d.shape},
            {"max_regions", d.max_regions},
            {"min_area", d.min_area},
            {"colormap", d.colormap},
            {"alpha", d.alpha},
            {"display", d.display}}},
          {"max_body_bytes", m.opt.max_body_bytes},
          {"max_megapixels", static_cast<double>(io::max_image_pixels()) / 1e6}};
}

nlohmann::json ExplorerApi::images(const Params& p) {
  Impl& m = *impl_;
  const std::string split = param(p, "split");
  auto s = m.splits.find(split);
  if (s == m.splits.end()) m.sample({{"split", split}});  // throws the 404 naming the known splits
  const data::Dataset& ds = s->second.ds;
  const int64_t total = static_cast<int64_t>(ds.size());
  const int64_t offset = int_param(p, "offset", 0, 0, std::max<int64_t>(0, total));
  const int64_t limit = int_param(p, "limit", 60, 1, kMaxListed);
  nlohmann::json list = nlohmann::json::array();
  for (int64_t i = offset; i < std::min(total, offset + limit); ++i) {
    const data::Sample& smp = ds.samples[static_cast<size_t>(i)];
    list.push_back({{"id", smp.id},
                    {"label", smp.label},
                    {"label_class", ds.class_names[static_cast<size_t>(smp.label)]},
                    {"has_mask", !smp.mask_path.empty()}});
  }
  return {{"split", split}, {"total", total}, {"offset", offset}, {"images", list}};
}

namespace {
// Longer side `size` (0: as it is).
io::Image fit(const io::Image& im, int64_t size) {
  if (size <= 0 || std::max(im.width, im.height) == size) return im;
  const double s = static_cast<double>(size) / static_cast<double>(std::max(im.width, im.height));
  return io::resize_image(im, std::max<int64_t>(1, std::llround(im.width * s)),
                          std::max<int64_t>(1, std::llround(im.height * s)));
}
}  // namespace

std::string ExplorerApi::photo_png(const Params& p) {
  const data::Sample& s = impl_->sample(p);
  return png_bytes(fit(io::load_image(s.image_path), int_param(p, "size", 0, 0, kMaxPhotoSide)));
}

std::string ExplorerApi::mask_png(const Params& p) {
  const data::Sample& s = impl_->sample(p);
  if (s.mask_path.empty()) throw ApiError(404, "image '" + s.id + "' has no mask");
  const io::Mask mask = io::load_mask(s.mask_path);
  const int64_t size = int_param(p, "size", 0, 0, kMaxPhotoSide);
  io::Image im(mask.width, mask.height, 1);
  for (size_t i = 0; i < mask.data.size(); ++i) im.pixels[i] = mask.data[i] ? 255 : 0;
  if (size > 0 && size != std::max(mask.width, mask.height)) {
    const double k = static_cast<double>(size) / static_cast<double>(std::max(mask.width, mask.height));
    const io::Mask r = io::resize_mask(mask, std::max<int64_t>(1, std::llround(mask.width * k)),
                                       std::max<int64_t>(1, std::llround(mask.height * k)));
    im = io::Image(r.width, r.height, 1);
    for (size_t i = 0; i < r.data.size(); ++i) im.pixels[i] = r.data[i] ? 255 : 0;
  }
  return png_bytes(im);
}

nlohmann::json ExplorerApi::classify(const Params& p, const std::string& body) {
  Impl& m = *impl_;
  const Photo ph = m.photo(p, body, false);
  const Tensor x = data::image_for_model(ph.image, m.lm.meta.size, m.lm.meta.preprocess);
  std::vector<float> probs;
  {
    std::lock_guard<std::mutex> lock(m.model_mutex);
    NoGradGuard no_grad;
    probs = softmax_rows((*m.lm.model)(x.to(model_device(*m.lm.model))))[0];
  }
  const int64_t predicted = std::max_element(probs.begin(), probs.end()) - probs.begin();
  nlohmann::json by_class = nlohmann::json::object();
  for (size_t c = 0; c < probs.size(); ++c) by_class[m.lm.meta.class_names[c]] = probs[c];
  return {{"image", ph.name},
          {"width", ph.image.width},
          {"height", ph.image.height},
          {"predicted", predicted},
          {"predicted_class", m.lm.meta.class_names[static_cast<size_t>(predicted)]},
          {"probabilities", by_class}};
}

nlohmann::json ExplorerApi::explain(const Params& p, const std::string& body) {
  Impl& m = *impl_;
  const Photo ph = m.photo(p, body, true);
  return m.explain_one(ph, m.explain_options(p, ph.name), true);
}

nlohmann::json ExplorerApi::compare(const Params& p, const std::string& body) {
  Impl& m = *impl_;
  const std::vector<std::string> methods = m.methods(p);
  const Photo ph = m.photo(p, body, true);
  ExplainOptions o = m.explain_options(p, ph.name);
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& method : methods) {
    o.method = method;
    try {
      results.push_back(m.explain_one(ph, o, true));
    } catch (const glimpse::Error& e) {  // a method this model cannot do (CAM without a GAP head, say)
      results.push_back({{"method", method}, {"error", e.what()}});
    }
  }
  return {{"image", ph.name}, {"results", results}};
}

nlohmann::json ExplorerApi::localize(const Params& p, const std::string& body) {
  Impl& m = *impl_;
  const std::vector<std::string> methods = m.methods(p);
  const Photo ph = m.photo(p, body, true);
  if (!ph.has_mask) throw ApiError(400, "localize needs an image of the data set with a mask (split and id)");
  ExplainOptions o = m.explain_options(p, ph.name);
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& method : methods) {
    o.method = method;
    try {
      const nlohmann::json j = m.explain_one(ph, o, false);
      rows.push_back({{"method", method},
                      {"threshold", j["threshold"]},
                      {"target_class", j["target_class"]},
                      {"localization", j["localization"]}});
    } catch (const glimpse::Error& e) {
      rows.push_back({{"method", method}, {"error", e.what()}});
    }
  }
  return {{"image", ph.name}, {"rows", rows}};
}

namespace {
// A map [h, w] min-max normalized (a constant map gives zeros) and coloured, as PNG base64.
std::string map_png(const Tensor& map, attr::Colormap cmap) {
  const Tensor m = map.contiguous().view({1, map.size(0), map.size(1)});
  return png_base64(attr::colorize(attr::normalize_maps(m), cmap));
}
}  // namespace

nlohmann::json ExplorerApi::glassbox(const Params& p, const std::string& body) {
  Impl& m = *impl_;
  const std::string method = param(p, "method", "cam");
  if (method != "cam" && method != "gradcam")
    throw ApiError(400, "the glass box takes method cam or gradcam (weighted sums of feature maps), got '" +
                            method.substr(0, 40) + "'");
  const int64_t top = int_param(p, "top", 6, 1, 32);
  const Photo ph = m.photo(p, body, false);
  const attr::Colormap cmap = attr::colormap_from_name(param(p, "colormap", "jet"));
  attr::Options opt = method_options(m.lm.meta.size);
  const int64_t target = m.target(param(p, "target"));
  if (target >= 0) opt.targets = {target};
  opt.layer = param(p, "layer");
  const Tensor x = data::image_for_model(ph.image, m.lm.meta.size, m.lm.meta.preprocess);
  attr::ChannelWeights cw;
  {
    std::lock_guard<std::mutex> lock(m.model_mutex);
    cw = attr::channel_weights(method, *m.lm.model, x.to(model_device(*m.lm.model)), opt);
  }
  // Channels ranked by their share of the class score: weight x mean activation (for CAM on a GAP
  // net, y_c = sum_k w_k mean(A_k) + b_c exactly).
  const int64_t K = cw.A.size(0), h = cw.A.size(1), w = cw.A.size(2), hw = h * w;
  std::vector<double> mean(static_cast<size_t>(K), 0.0), contribution(static_cast<size_t>(K));
  const float* a = cw.A.data();
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t q = 0; q < hw; ++q) mean[static_cast<size_t>(k)] += a[k * hw + q];
    mean[static_cast<size_t>(k)] /= static_cast<double>(hw);
    contribution[static_cast<size_t>(k)] = cw.weights[static_cast<size_t>(k)] * mean[static_cast<size_t>(k)];
  }
  std::vector<int64_t> order(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) order[static_cast<size_t>(k)] = k;
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return contribution[i] > contribution[j]; });
  const int64_t n = std::min(top, K);
  nlohmann::json channels = nlohmann::json::array(), steps = nlohmann::json::array();
  Tensor partial = Tensor::zeros({h, w});
  double total = 0;
  for (double c : contribution) total += c;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t k = order[static_cast<size_t>(r)];
    const float wk = cw.weights[static_cast<size_t>(k)];
    for (int64_t q = 0; q < hw; ++q) partial.data()[q] += wk * a[k * hw + q];
    Tensor ak = Tensor::empty({h, w});
    std::copy(a + k * hw, a + (k + 1) * hw, ak.data());
    channels.push_back({{"k", k},
                        {"weight", wk},
                        {"mean_activation", mean[static_cast<size_t>(k)]},
                        {"contribution", contribution[static_cast<size_t>(k)]},
                        {"png", map_png(ak, cmap)}});
    Tensor shown = partial.clone();
    if (method == "gradcam")
      for (int64_t q = 0; q < hw; ++q) shown.data()[q] = std::max(shown.data()[q], 0.f);
    steps.push_back({{"terms", r + 1}, {"png", map_png(shown, cmap)}});
  }
  const auto& names = m.lm.meta.class_names;
  const bool cam = method == "cam";
  return {
      {"method", method},
      {"layer", cw.layer},
      {"target", cw.target},
      {"target_class", names[static_cast<size_t>(cw.target)]},
      {"channels_total", K},
      {"height", h},
      {"width", w},
      {"weight_symbol", cam ? "w_k^c" : "alpha_k^c"},
      {"formula", cam ? "M_c(x,y) = sum_k w_k^c A_k(x,y); w_k^c = the classifier's weight of channel k for class c; "
                        "y_c = mean_xy M_c + b_c"
                      : "L_c(x,y) = ReLU(sum_k alpha_k^c A_k(x,y)); alpha_k^c = mean_xy dy_c/dA_k(x,y)"},
      {"score_total", total},
      {"channels", channels},
      {"steps", steps},
      {"map_png", map_png(cw.raw, cmap)}};
}

}  // namespace mel
