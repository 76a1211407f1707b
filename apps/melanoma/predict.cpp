// `melanoma predict`: a model on a folder of unlabelled photos (a clinic's own, say). Writes
// <out>/predictions.csv (one row per photo: the predicted class and every class's probability) and,
// per photo, <out>/<stem>.overlay.png: the predicted class's map over the photo with its regions
// circled, as `explain` draws it. Photos are decoded through io::load_image (decode_image under
// the --max-megapixels budget); a photo that cannot be read gets a row naming the error.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "core/io/image.h"

namespace fs = std::filesystem;
using namespace glimpse;

namespace mel {
namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Image files directly in `dir`, sorted by name (a stable row order).
std::vector<fs::path> list_images(const std::string& dir) {
  std::error_code ec;
  GLIMPSE_CHECK(fs::is_directory(dir, ec), "predict: --images '", dir, "' is not a directory");
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec) && is_image_file(it->path())) files.push_back(it->path());
  GLIMPSE_CHECK(!ec, "predict: cannot list '", dir, "': ", ec.message());
  std::sort(files.begin(), files.end());
  GLIMPSE_CHECK(!files.empty(), "predict: no photo (.jpg, .jpeg, .png, .bmp) in '", dir, "'");
  return files;
}

}  // namespace

PredictResult run_predict(const PredictOptions& o) {
  const double t0 = now_s();
  const Device device = resolve_device(o.device);  // first: an unusable device fails at once
  GLIMPSE_CHECK(!o.out.empty(), "predict: no output folder given (--out DIR)");
  check_explain_options(o.explain, "predict");
  const std::vector<fs::path> files = list_images(o.images);
  LoadedModel lm = load_model(o.model);
  lm.model->to(device);
  const auto& names = lm.meta.class_names;
  ensure_dir(o.out);

  PredictResult r;
  r.images = static_cast<int64_t>(files.size());
  r.csv = (fs::path(o.out) / "predictions.csv").string();
  std::string csv = "file,predicted";
  for (const auto& n : names) csv.append(",").append(csv_field(std::string("p_").append(n)));
  csv += ",overlay,error\n";
  ProgressBar bar("  predict", r.images, "img", progress());
  for (const fs::path& f : files) {
    const std::string file = f.filename().string();
    try {
      const PhotoExplanation pe = explain_photo(lm, io::load_image(f.string()), o.explain, -1);
      std::string overlay;
      if (o.overlays) {
        overlay = f.stem().string() + ".overlay.png";
        io::save_png((fs::path(o.out) / overlay).string(), pe.overlay);
      }
      csv += csv_field(file) + "," + csv_field(names[static_cast<size_t>(pe.result.predicted)]);
      for (float p : pe.result.probs) csv += strf(",%.6f", p);
      csv.append(",").append(csv_field(overlay)).append(",\n");
    } catch (const std::exception& e) {
      // One bad photo (truncated, too large, not an image) must not cost the others their rows.
      ++r.failed;
      std::fprintf(stderr, "predict: %s: %s\n", f.string().c_str(), e.what());
      csv += csv_field(file) + ",";                          // no predicted class
      for (size_t c = 0; c < names.size(); ++c) csv += ",";  // no probabilities
      csv += ",," + csv_field(e.what()) + "\n";              // no overlay, the error
    }
    bar.step(1);
  }
  bar.finish();
  write_text(r.csv, csv);  // atomic and checked
  std::printf(
      "predict: %lld photo(s) of %s with %s (%s, %lld px): %s%s%s (%.1fs)\n", static_cast<long long>(r.images),
      o.images.c_str(), o.model.c_str(), lm.meta.arch.c_str(), static_cast<long long>(lm.meta.size), r.csv.c_str(),
      o.overlays ? strf(", overlays of %s in %s", o.explain.method.c_str(), o.out.c_str()).c_str() : "",
      r.failed ? strf("; %lld could not be read (their rows say why)", static_cast<long long>(r.failed)).c_str() : "",
      seconds_since(t0));
  std::fflush(stdout);
  return r;
}

}  // namespace mel
