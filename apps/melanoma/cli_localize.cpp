// melanoma localize: every method's maps scored against the expert's lesion masks.
#include <memory>

#include "cli.h"

namespace mel {

Command localize_command() {
  auto o = std::make_shared<LocalizeOptions>();
  Command cmd{"localize",
              "Score every method's maps against the lesion masks of a split (Dice, IoU, energy, pointing game, "
              "deletion/insertion), with a centred-Gaussian baseline"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint")->required()->check(CLI::ExistingFile);
    sub.add_option("--data", o->data, "Data directory with masks/")->required()->check(CLI::ExistingDirectory);
    sub.add_option("--split", o->split, "Split")->capture_default_str();
    sub.add_option("--methods,--method", o->methods, "all, or a comma-separated list")
        ->check(kMethodList)
        ->capture_default_str();
    sub.add_option("--layer", o->layer, "Layer for the CAM family / SAM");
    sub.add_option("--json", o->json, "Also write the table here")->check(kOutFile);
    sub.add_option("--limit", o->limit, "Use the first N masked images (0: all)")
        ->check(CLI::Range(int64_t(0), int64_t(1000000)))
        ->capture_default_str();
    sub.add_option("--threshold", o->threshold, "Fixed threshold of the dice/iou columns")
        ->check(kThreshold)
        ->capture_default_str();
    sub.add_option("--tolerance", o->tolerance, "Pointing-game tolerance, fraction of the side")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    sub.add_option("--gaussian-sigma", o->gaussian_sigma, "Baseline Gaussian's sigma, fraction of the side")
        ->check(CLI::Range(0.01, 10.0))
        ->capture_default_str();
    sub.add_option("--curve-steps", o->curve_steps, "Deletion/insertion steps")
        ->check(CLI::Range(2, 1024))
        ->capture_default_str();
    sub.add_flag("!--no-curves", o->curves, "Skip deletion/insertion AUC (the slowest columns)");
    sub.add_option("--target", o->target,
                   "Explain the predicted class, the true one, or one class by name (e.g. melanoma) in every image")
        ->capture_default_str();
    add_device(sub, o->device);
  };
  cmd.run = [o](const Common& c) {
    o->seed = c.seed;
    o->comm = c.world;
    run_localize(*o);
  };
  return cmd;
}

}  // namespace mel
