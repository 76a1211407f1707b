// melanoma eval: the ISIC 2017 scores of a model on a split, with bootstrap intervals.
#include <memory>

#include "cli.h"

namespace mel {

Command eval_command() {
  auto o = std::make_shared<EvalOptions>();
  Command cmd{"eval", "ISIC 2017 scores of a model on a split: AUCs, accuracy, confusion matrix"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint written by `melanoma train`")->required()->check(CLI::ExistingFile);
    sub.add_option("--data", o->data, "Data directory")->required()->check(CLI::ExistingDirectory);
    sub.add_option("--split", o->split, "Split to score (\"\" for every row)")->capture_default_str();
    sub.add_option("--json", o->json, "Also write the results here")->check(kOutFile);
    sub.add_option("--bootstrap", o->stats.resamples,
                   "Resamples of the 95% intervals (stratified bootstrap; seeded by --seed)")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    sub.add_option("--sensitivity", o->stats.sensitivity_target,
                   "Also report melanoma at the largest threshold whose sensitivity reaches this (chosen on the "
                   "scored images, so its specificity is optimistic)")
        ->check(CLI::Range(0.01, 1.0))
        ->capture_default_str();
    sub.add_option("--calibration-bins", o->stats.calibration_bins,
                   "Equal-width bins of the ECE and reliability diagram")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    sub.add_option("--reliability", o->reliability,
                   "Reliability diagram PNG of P(melanoma); the top label's goes beside it as <stem>.top-label.png")
        ->check(kOutFile);
    sub.add_flag("--tta", o->tta,
                 "Test-time augmentation: average each image's probabilities over its 8 flips and 90-degree "
                 "rotations (8x the compute)");
    add_device(sub, o->device);
  };
  cmd.run = [o](const Common& c) {
    o->stats.seed = c.seed;
    o->comm = c.world;
    run_eval(*o);
  };
  return cmd;
}

}  // namespace mel
