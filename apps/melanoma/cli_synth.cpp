// melanoma synth: the synthetic lesion set written in the ISIC layout.
#include <memory>

#include "cli.h"

namespace mel {

Command synth_command() {
  auto o = std::make_shared<SynthOptions>();
  Command cmd{"synth", "Write the synthetic lesion set in the ISIC layout"};
  cmd.reads_images = false;
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--out", o->out, "Output directory")->required();
    sub.add_option("--count", o->count, "Images")
        ->check(CLI::Range(int64_t(3), int64_t(1000000)))
        ->capture_default_str();
    sub.add_option("--size", o->size, "Image side in pixels")
        ->check(CLI::Range(int64_t(16), int64_t(2048)))
        ->capture_default_str();
    sub.add_option("--val-fraction", o->val_fraction, "Fraction of rows marked split=val")
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    sub.add_flag("!--no-distractors", o->distractors, "No hairs, ruler, sticker or patterned cloth");
  };
  cmd.run = [o](const Common& c) {
    o->seed = c.seed;
    run_synth(*o);
  };
  return cmd;
}

}  // namespace mel
