// The table of melanoma commands and the flags and validators that several of them share (cli.h);
// each command's own flags live in its cli_<name>.cpp.
#include <filesystem>
#include <sstream>

#include "attribution/regions.h"
#include "cli.h"
#include "layers/models.h"

namespace fs = std::filesystem;

namespace mel {

std::vector<Command> melanoma_commands() {
  return {synth_command(),  train_command(),    eval_command(),      explain_command(), predict_command(),
          sanity_command(), localize_command(), two_stage_command(), roar_command(),    report_command(),
          demo_command(),   serve_command(),    export_command()};
}

std::vector<CLI::App*> add_commands(CLI::App& app, const std::vector<Command>& commands, Common& common) {
  std::vector<CLI::App*> subs;
  for (const Command& cmd : commands) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.summary);
    cmd.flags(*sub);
    add_common(*sub, common, cmd.seeded, cmd.reads_images);
    subs.push_back(sub);
  }
  return subs;
}

void run_parsed(const std::vector<Command>& commands, const std::vector<CLI::App*>& subs, const Common& common) {
  for (size_t i = 0; i < commands.size(); ++i)
    if (subs[i]->parsed()) commands[i].run(common);
}

const CLI::Validator kMethod([](std::string& v) -> std::string { return check_method(v); }, "METHOD",
                             "attribution method");
const CLI::Validator kMethodList(
    [](std::string& v) -> std::string {
      if (v == "all" || v == "fast" || v == "none") return "";
      std::stringstream ss(v);
      for (std::string m; std::getline(ss, m, ',');)
        if (std::string e = check_method(m); !e.empty()) return e;
      return "";
    },
    "a,b,c|all", "method list");
std::string arch_help() {
  std::string s = "Architecture:";
  for (const auto& spec : glimpse::model_specs())
    s += "\n  " + spec.name + " (default " + std::to_string(spec.default_input_size) + " px): " + spec.description;
  return s;
}
const CLI::Validator kArch(
    [](std::string& v) -> std::string {
      for (const auto& n : glimpse::model_names())
        if (n == v) return "";
      std::string known;
      for (const auto& n : glimpse::model_names()) known += (known.empty() ? "" : ", ") + n;
      return "unknown architecture '" + v + "'; known: " + known;
    },
    "ARCH", "architecture");
const CLI::Validator kThreshold(
    [](std::string& v) -> std::string {
      try {
        glimpse::attr::parse_threshold(v);
        return "";
      } catch (const std::exception& e) {
        return e.what();
      }
    },
    "SPEC", "threshold");
const CLI::Validator kOutFile(
    [](std::string& path) -> std::string {
      if (path.empty()) return "the path is empty";
      if (fs::is_directory(path)) return path + " is a directory; give a file name";
      return "";
    },
    "FILE", "output file");
const CLI::Validator kPercents(
    [](std::string& v) -> std::string {
      std::stringstream ss(v);
      int n = 0;
      for (std::string p; std::getline(ss, p, ',');) {
        try {
          size_t used = 0;
          const int x = std::stoi(p, &used);
          if (used != p.size() || x <= 0 || x >= 100)
            return "each percentage must be an integer in (0, 100), got '" + p + "'";
        } catch (const std::exception&) {
          return "not an integer: '" + p + "'";
        }
        ++n;
      }
      return n ? "" : "no percentage given";
    },
    "10,30,...", "percentages");

void add_common(CLI::App& sub, Common& c, bool seed, bool reads_images) {
  if (reads_images)
    sub.add_option("--max-megapixels", c.max_megapixels,
                   "Largest image read, in megapixels (width x height from "
                   "its header, checked before decoding)")
        ->check(CLI::Range(0.000001, 4000.0))
        ->capture_default_str();
  sub.add_option("--threads", c.threads, "CPU threads for the kernels (0: all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  if (seed)
    sub.add_option("--seed", c.seed, "Seed of everything random (init, shuffling, augmentation, noise)")
        ->capture_default_str();
  sub.add_option("--progress", c.progress,
                 "Progress bars on stderr: auto (redraw on a terminal, one line per job "
                 "otherwise), tty, plain, none")
      ->check(CLI::IsMember({"auto", "tty", "plain", "none"}))
      ->capture_default_str();
}

void add_device(CLI::App& sub, std::string& device) {
  sub.add_option("--device", device,
                 "Where the model runs: cpu, cuda (= cuda:0) or cuda:N, e.g. --device cuda:1. "
                 "Images are decoded on the CPU; checkpoints and maps are written from the CPU. "
                 "An unusable device fails at once, saying why")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return parse_device(v) ? "" : "'" + v + "' is not a device; use cpu, cuda or cuda:N";
          },
          "cpu|cuda[:N]", "device"))
      ->capture_default_str();
}

void add_train_flags(CLI::App& sub, TrainOptions& t, bool with_out) {
  sub.add_option("--data", t.data, "Data directory (ISIC layout: labels.csv, images/, masks/)")
      ->check(CLI::ExistingDirectory);
  sub.add_option("--synthetic", t.synthetic, "Train on N generated images instead of --data (written beside --out)")
      ->check(CLI::Range(int64_t(3), int64_t(1000000)));
  sub.add_option("--train-split", t.train_split, "Split to train on")->capture_default_str();
  sub.add_option("--val-split", t.val_split, "Split to validate on after each epoch (\"\" for none)")
      ->capture_default_str();
  sub.add_option("--arch", t.arch, arch_help())->check(kArch)->capture_default_str();
  sub.add_option("--size", t.size, "Input side in pixels")
      ->check(CLI::Range(int64_t(8), int64_t(1024)))
      ->capture_default_str();
  sub.add_option("--epochs", t.epochs, "Passes over the training split")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  sub.add_option("--batch", t.batch, "Images per step")
      ->check(CLI::Range(int64_t(1), int64_t(4096)))
      ->capture_default_str();
  sub.add_option("--optimizer", t.optimizer, "sgd (Nesterov momentum), adam or adamw")
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
  sub.add_option("--lr", t.lr,
                 "Peak learning rate (default: 0.02 for sgd; for adam/adamw 3e-3 for small-gap, 1e-3 otherwise)")
      ->check(CLI::Range(1e-7f, 10.f));
  sub.add_option("--weight-decay", t.weight_decay, "Weight decay (default: 5e-4; 1e-2 for adamw)")
      ->check(CLI::Range(0.f, 1.f));
  sub.add_option("--schedule", t.schedule, "cosine (with warm-up) or step (x0.1 every third of the run)")
      ->check(CLI::IsMember({"cosine", "step"}))
      ->capture_default_str();
  sub.add_option("--class-weights", t.class_weights, "auto: inverse class frequency in the loss; none")
      ->check(CLI::IsMember({"auto", "none"}))
      ->capture_default_str();
  sub.add_flag("!--no-augment", t.augment,
               "Turn off flips, 90-degree rotations, random resized crops and colour jitter");
  sub.add_option("--vignette", t.vignette,
                 "Probability of drawing a dermoscope's round field (black outside a random "
                 "circle) onto a training photo, so that the lens rim stops being evidence")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  sub.add_option("--stickers", t.stickers,
                 "Probability of pasting a coloured dot cut by the border onto a training "
                 "photo (ISIC 2017's nevus photos carry such dots), so that a dot stops being evidence")
      ->check(CLI::Range(0.f, 1.f))
      ->capture_default_str();
  sub.add_option(
         "--mask-guidance", t.mask_guidance,
         "Weight of a second loss: the share of the true class's CAM (min-max normalised) that falls "
         "outside the expert mask of the training photo (needs masks; 0: off). The CAM is then trained to lie in "
         "the lesion, so it no longer shows where an unguided network would look")
      ->check(CLI::Range(0.f, 100.f))
      ->capture_default_str();
  sub.add_flag("--hair-removal", t.preprocess.hair_removal, "DullRazor-style hair removal before the network");
  sub.add_flag("--color-constancy", t.preprocess.color_constancy,
               "Shades of Gray colour constancy (p = 6) before the network: removes the whole-photo tint of "
               "each dermoscope");
  if (with_out) {
    sub.add_option("--out", t.out,
                   "Checkpoint (safetensors), rewritten atomically after every epoch; the curve goes "
                   "to <out>.curve.json")
        ->check(kOutFile)
        ->capture_default_str();
    sub.add_option("--resume", t.resume, "Continue from this checkpoint (its arch, size and epoch)")
        ->check(CLI::ExistingFile);
    sub.add_option("--init", t.init,
                   "Start from these weights: a glimpse checkpoint of --arch, or torchvision weights "
                   "converted by tools/torch_to_safetensors.py (resnet18-gap, vgg16-gap); a new "
                   "classifier when the class count differs")
        ->check(CLI::ExistingFile);
    sub.add_option("--freeze", t.freeze,
                   "Keep these layers fixed: comma-separated dotted prefixes, e.g. conv1,bn1,layer1");
  }
}

void add_overlay_flags(CLI::App& sub, ExplainOptions& x) {
  sub.add_option("--method", x.method, "Attribution method")->check(kMethod)->capture_default_str();
  sub.add_option("--threshold", x.threshold, "Regions: fraction:F (of the max), percentile:P, otsu, value:V")
      ->check(kThreshold)
      ->capture_default_str();
  sub.add_option("--shape", x.shape, "How regions are drawn")
      ->check(CLI::IsMember({"circle", "ellipse", "box", "contour"}))
      ->capture_default_str();
  sub.add_option("--max-regions", x.max_regions, "Keep the k strongest regions (0: all)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  sub.add_option("--min-area", x.min_area, "Drop regions smaller than this fraction of the image")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub.add_option("--colormap", x.colormap, "jet, viridis, inferno, grey")
      ->check(CLI::IsMember({"jet", "viridis", "inferno", "grey", "gray"}))
      ->capture_default_str();
  sub.add_option("--alpha", x.alpha, "Heatmap opacity")->check(CLI::Range(0.f, 1.f))->capture_default_str();
  sub.add_option("--display", x.display, "Longer side of the overlay in pixels (0: the photo's)")
      ->check(CLI::Range(int64_t(0), int64_t(8192)))
      ->capture_default_str();
}

void require_data(const TrainOptions& t, const std::string& alternative_value, const char* alternative_flag) {
  if (!t.data.empty() || t.synthetic > 0 || !alternative_value.empty()) return;
  throw CLI::ValidationError("--data", alternative_flag
                                           ? std::string("give --data DIR, --synthetic N or ") + alternative_flag
                                           : std::string("give --data DIR or --synthetic N"));
}

}  // namespace mel
