// `melanoma explain`: one photo in, one attribution method by name; writes the heatmap overlay with
// the regions the map picks out circled (attribution/regions.h: threshold -> connected components ->
// enclosing circles / ellipses / boxes / contours), and a JSON file with the predicted class, the
// class probabilities and the regions.
//
// Regions are found on the map upsampled (bilinearly) to the written overlay's size, so their
// coordinates are pixels of the overlay PNG; "scale_to_image" converts them to the input photo's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "attribution/attribution.h"
#include "attribution/regions.h"
#include "attribution/render.h"
#include "commands.h"
#include "core/error.h"
#include "core/grad_mode.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {

void check_explain_options(const ExplainOptions& o, const char* who) {
  const std::string err = check_method(o.method);
  GLIMPSE_CHECK(err.empty(), who, ": ", err);
  attr::parse_threshold(o.threshold);
  attr::region_shape_from_name(o.shape);
  attr::colormap_from_name(o.colormap);
  GLIMPSE_CHECK(o.alpha >= 0 && o.alpha <= 1, who, ": --alpha must be in [0, 1], got ", o.alpha);
}

PhotoExplanation explain_photo(LoadedModel& lm, const io::Image& image, const ExplainOptions& o, int64_t target) {
  check_explain_options(o);
  const attr::Threshold threshold = attr::parse_threshold(o.threshold);
  Model& model = *lm.model;
  // Decoded on the CPU, run on the model's device; the attribution map comes back on the CPU.
  const Tensor x = data::image_for_model(image, lm.meta.size, lm.meta.preprocess).to(model_device(model));

  PhotoExplanation pe;
  ExplainResult& r = pe.result;
  {
    NoGradGuard no_grad;
    r.probs = softmax_rows(model(x))[0];
  }
  r.predicted = std::max_element(r.probs.begin(), r.probs.end()) - r.probs.begin();
  r.target = target >= 0 ? target : r.predicted;
  GLIMPSE_CHECK(r.target < lm.meta.classes, "explain: target class ", r.target, " but the model has ", lm.meta.classes,
                " classes (0..", lm.meta.classes - 1, ")");

  attr::Options opt = method_options(lm.meta.size);
  opt.targets = {r.target};
  opt.layer = o.layer;
  opt.seed = o.seed;
  pe.attribution = attr::explain(o.method, model, x, opt);
  const attr::AttributionMap& am = pe.attribution;

  // The photo at display size, the map upsampled onto it.
  io::Image photo = image;
  const int64_t pw = photo.width, ph = photo.height;
  if (o.display > 0) {
    const double s = static_cast<double>(o.display) / static_cast<double>(std::max(pw, ph));
    photo =
        io::resize_image(photo, std::max<int64_t>(1, std::llround(pw * s)), std::max<int64_t>(1, std::llround(ph * s)));
  }
  const Tensor map = attr::normalize_maps(attr::upsample_maps(am.map, photo.height, photo.width));
  pe.overlay = attr::overlay_heatmap(photo, map, attr::colormap_from_name(o.colormap), o.alpha);
  attr::RegionOptions ro;
  ro.threshold = threshold;
  ro.max_regions = o.max_regions;
  ro.min_area = std::max<int64_t>(1, std::llround(o.min_area * static_cast<double>(photo.width * photo.height)));
  pe.regions = attr::find_regions(map, ro);
  attr::RegionStyle style;
  style.shape = attr::region_shape_from_name(o.shape);
  style.colour = attr::kWhite;
  style.thickness = std::max<int>(2, static_cast<int>(std::max(photo.width, photo.height) / 170));
  style.margin = style.thickness;
  attr::draw_regions(pe.overlay, pe.regions, photo.width, photo.height, style);

  const auto& names = lm.meta.class_names;
  nlohmann::json probs = nlohmann::json::object();
  for (size_t c = 0; c < r.probs.size(); ++c) probs[c < names.size() ? names[c] : std::to_string(c)] = r.probs[c];
  r.json = {{"image", o.image},
            {"model", o.model},
            {"arch", lm.meta.arch},
            {"model_mask_guidance", lm.meta.mask_guidance},
            {"method", o.method},
            {"layer", am.layer},
            {"predicted", r.predicted},
            {"predicted_class", names[static_cast<size_t>(r.predicted)]},
            {"target", r.target},
            {"target_class", names[static_cast<size_t>(r.target)]},
            {"target_score", am.scores.empty() ? 0.f : am.scores[0]},
            {"probabilities", probs},
            {"width", photo.width},
            {"height", photo.height},
            {"image_width", pw},
            {"image_height", ph},
            {"scale_to_image", {static_cast<double>(pw) / photo.width, static_cast<double>(ph) / photo.height}},
            {"threshold", attr::threshold_str(threshold)},
            {"overlay", o.out},
            {"regions", attr::regions_to_json(pe.regions, true)}};
  // Integrated Gradients: sum of attributions minus (f(x) - f(baseline)) (attribution.h).
  if (!am.completeness_gap.empty()) r.json["completeness_gap"] = am.completeness_gap[0];
  return pe;
}

ExplainResult run_explain(const ExplainOptions& o) {
  const double t0 = now_s();
  const Device device = resolve_device(o.device);  // first: an unusable device fails at once
  GLIMPSE_CHECK(!o.image.empty(), "explain: no image given (--image FILE)");
  GLIMPSE_CHECK(fs::is_regular_file(o.image), "explain: the image '", o.image, "' does not exist");
  check_explain_options(o);

  LoadedModel lm = load_model(o.model);
  lm.model->to(device);
  const int64_t target = parse_target_class(o.target, lm.meta.class_names, "explain");
  const PhotoExplanation pe = explain_photo(lm, io::load_image(o.image), o, target);
  const ExplainResult& r = pe.result;
  const attr::AttributionMap& am = pe.attribution;
  const std::vector<attr::Region>& regions = pe.regions;
  const auto& names = lm.meta.class_names;
  const attr::Threshold threshold = attr::parse_threshold(o.threshold);

  if (!o.out.empty()) {
    const fs::path p(o.out);
    if (p.has_parent_path()) ensure_dir(p.parent_path().string());
    io::save_png(o.out, pe.overlay);
  }
  if (!o.json.empty()) write_json(o.json, r.json);

  std::printf("explain: %s -> %s (p = %.3f; ", o.image.c_str(), names[static_cast<size_t>(r.predicted)].c_str(),
              r.probs[static_cast<size_t>(r.predicted)]);
  for (size_t c = 0; c < r.probs.size(); ++c) std::printf("%s%s %.3f", c ? ", " : "", names[c].c_str(), r.probs[c]);
  std::printf("); %s of '%s' at layer %s: %zu region(s) at %s\n", o.method.c_str(),
              names[static_cast<size_t>(r.target)].c_str(), am.layer.empty() ? "(input)" : am.layer.c_str(),
              regions.size(), attr::threshold_str(threshold).c_str());
  for (const auto& g : regions)
    std::printf("  region %d: centre (%.0f, %.0f) radius %.0f, area %lld px, peak %.2f, score %.1f\n", g.id,
                g.circle.cx, g.circle.cy, g.circle.r, static_cast<long long>(g.area), g.peak, g.score);
  std::printf("  %s%s%s(%.2fs)\n", o.out.empty() ? "" : ("overlay " + o.out + "  ").c_str(),
              o.json.empty() ? "" : ("json " + o.json + "  ").c_str(), "", seconds_since(t0));
  std::fflush(stdout);
  return r;
}

}  // namespace mel
