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
#include "root_writer.h"
#include "shared_model.h"

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

// Rank 0's list of the photos on every rank (so that the shards cut the same list everywhere).
std::vector<fs::path> listed_on_root(dist::Communicator& c, const std::string& dir) {
  std::string names;
  on_root(c, "predict", [&] {
    for (const fs::path& f : list_images(dir)) names += f.string() + "\n";
  });
  dist::broadcast_string(c, names, 0);
  std::vector<fs::path> files;
  for (size_t at = 0, end; (end = names.find('\n', at)) != std::string::npos; at = end + 1)
    files.emplace_back(names.substr(at, end - at));
  return files;
}

}  // namespace

PredictResult run_predict(const PredictOptions& o) {
  const double t0 = now_s();
  const Device device = resolve_device(o.device);  // first: an unusable device fails at once
  GLIMPSE_CHECK(!o.out.empty(), "predict: no output folder given (--out DIR)");
  check_explain_options(o.explain, "predict");
  // Under mpirun each rank explains a contiguous share of the photos; rank 0 writes every file.
  dist::Communicator& comm = o.comm ? *o.comm : dist::local();
  const bool leader = comm.rank() == 0;
  const std::vector<fs::path> files = listed_on_root(comm, o.images);
  LoadedModel lm;
  agreed(comm, "predict", [&] { lm = load_model(o.model); });
  lm.model->to(device);
  const auto& names = lm.meta.class_names;
  if (leader) ensure_dir(o.out);

  PredictResult r;
  r.images = static_cast<int64_t>(files.size());
  r.csv = (fs::path(o.out) / "predictions.csv").string();
  const Shard mine = shard_of(files.size(), comm.rank(), comm.size(), 1);
  RootWriter out(comm, "predict");  // its tally: the photos that could not be read
  ProgressBar bar("  predict", std::max<int64_t>(1, static_cast<int64_t>(mine.end - mine.begin)), "img", progress());
  // One photo per rank a round; a rank whose share is done still joins the rounds left.
  size_t next = mine.begin;
  for (int64_t round = largest_over_ranks(comm, static_cast<int64_t>(mine.end - mine.begin)); round > 0;
       --round, out.flush()) {
    if (next >= mine.end) continue;
    const fs::path& f = files[next++];
    const std::string file = f.filename().string();
    std::string row;
    try {
      const PhotoExplanation pe = explain_photo(lm, io::load_image(f.string()), o.explain, -1);
      std::string overlay;
      if (o.overlays) {
        overlay = f.stem().string() + ".overlay.png";
        out.png((fs::path(o.out) / overlay).string(), pe.overlay);
      }
      row += csv_field(file) + "," + csv_field(names[static_cast<size_t>(pe.result.predicted)]);
      for (float p : pe.result.probs) row += strf(",%.6f", p);
      row.append(",").append(csv_field(overlay)).append(",\n");
    } catch (const std::exception& e) {
      // One bad photo (truncated, too large, not an image) must not cost the others their rows.
      out.count(1);
      std::fprintf(stderr, "predict: %s: %s\n", f.string().c_str(), e.what());
      row = csv_field(file) + ",";                           // no predicted class
      for (size_t c = 0; c < names.size(); ++c) row += ",";  // no probabilities
      row += ",," + csv_field(e.what()) + "\n";              // no overlay, the error
    }
    out.text(row);
    bar.step(1);
  }
  bar.finish();
  if (!leader) return r;
  r.failed = out.tally();
  std::string csv = "file,predicted";
  for (const auto& n : names) csv.append(",").append(csv_field(std::string("p_").append(n)));
  csv += ",overlay,error\n" + out.all_text();
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
