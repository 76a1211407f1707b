// melanoma two-stage: Jia & Shen's crop-to-the-CAM-and-retrain.
#include <memory>

#include "cli.h"

namespace mel {

Command two_stage_command() {
  auto o = std::make_shared<TwoStageOptions>();
  o->train.out.clear();  // the stage checkpoints go under --out
  Command cmd{"two-stage",
              "Jia & Shen: stage 1, crop every image to its CAM region, retrain on the crops, compare AUCs of stage "
              "1 and stages 1+2"};
  cmd.flags = [o](CLI::App& sub) {
    add_train_flags(sub, o->train, /*with_out=*/false);
    sub.add_option("--model", o->model, "Stage-1 checkpoint (default: train one)")->check(CLI::ExistingFile);
    sub.add_option("--out", o->out, "Output directory")->capture_default_str();
    sub.add_option("--method", o->method, "Map that chooses the crop")->check(kMethod)->capture_default_str();
    sub.add_option("--crop-threshold", o->crop_threshold, "Region: map >= this fraction of its max")
        ->check(CLI::Range(0.01f, 0.99f))
        ->capture_default_str();
    sub.add_option("--margin", o->margin, "Box grown by this fraction of its side on each side")
        ->check(CLI::Range(0.f, 1.f))
        ->capture_default_str();
    sub.add_option("--json", o->json, "Also write the results here")->check(kOutFile);
  };
  cmd.run = [o](const Common& c) {
    o->train.seed = c.seed;
    o->comm = c.world;
    require_data(o->train, o->model, "--model FILE");
    if (o->json.empty()) o->json = o->out + "/two-stage.json";
    run_two_stage(*o);
  };
  return cmd;
}

}  // namespace mel
