// melanoma demo: the whole story in one command.
#include <memory>

#include "cli.h"

namespace mel {

Command demo_command() {
  auto o = std::make_shared<DemoOptions>();
  Command cmd{"demo", "The whole story in one command: data, train, eval, localize, explain, report"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--out", o->out, "Output directory")->capture_default_str();
    sub.add_option("--data", o->data, "ISIC folder instead of synthetic data")->check(CLI::ExistingDirectory);
    sub.add_option("--train-split", o->train_split, "Split to train on")->capture_default_str();
    sub.add_option("--split", o->split, "Split to evaluate, localize and show")->capture_default_str();
    sub.add_option("--count", o->count, "Synthetic images")
        ->check(CLI::Range(int64_t(12), int64_t(100000)))
        ->capture_default_str();
    sub.add_option("--synth-size", o->synth_size, "Synthetic image side")
        ->check(CLI::Range(int64_t(16), int64_t(1024)))
        ->capture_default_str();
    sub.add_option("--arch", o->arch, "Architecture")->check(kArch)->capture_default_str();
    sub.add_option("--size", o->size, "Input side")
        ->check(CLI::Range(int64_t(8), int64_t(1024)))
        ->capture_default_str();
    sub.add_option("--epochs", o->epochs, "Epochs")->check(CLI::Range(1, 10000))->capture_default_str();
    sub.add_option("--batch", o->batch, "Batch")->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
    sub.add_flag("--color-constancy", o->preprocess.color_constancy, "As train --color-constancy");
    sub.add_flag("--hair-removal", o->preprocess.hair_removal, "As train --hair-removal");
    sub.add_option("--vignette", o->vignette, "As train --vignette")
        ->check(CLI::Range(0.f, 1.f))
        ->capture_default_str();
    sub.add_option("--stickers", o->stickers, "As train --stickers")
        ->check(CLI::Range(0.f, 1.f))
        ->capture_default_str();
    sub.add_option("--mask-guidance", o->mask_guidance, "As train --mask-guidance")
        ->check(CLI::Range(0.f, 100.f))
        ->capture_default_str();
    sub.add_option("--methods", o->methods, "all, fast (all but sliding-window), or a comma-separated list")
        ->check(kMethodList)
        ->capture_default_str();
    sub.add_option("--localize-limit", o->localize_limit, "Masked images scored by localize (0: all)")
        ->check(CLI::Range(int64_t(0), int64_t(1000000)))
        ->capture_default_str();
    sub.add_option("--explain", o->explain_count, "Photos explained")
        ->check(CLI::Range(int64_t(0), int64_t(100)))
        ->capture_default_str();
    sub.add_option("--gallery", o->gallery, "Report gallery images")
        ->check(CLI::Range(int64_t(0), int64_t(1000)))
        ->capture_default_str();
  };
  cmd.run = [o](const Common& c) {
    o->seed = c.seed;
    run_demo(*o);
  };
  return cmd;
}

}  // namespace mel
