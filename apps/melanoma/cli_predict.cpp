// melanoma predict: a model over a folder of unlabelled photos.
#include <memory>

#include "cli.h"

namespace mel {

Command predict_command() {
  auto o = std::make_shared<PredictOptions>();
  Command cmd{"predict",
              "Run a model on a folder of unlabelled photos: predictions.csv (class probabilities per photo) and an "
              "overlay PNG per photo with the predicted class's regions circled"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint")->required()->check(CLI::ExistingFile);
    sub.add_option("--images", o->images, "Folder of photos (JPEG, PNG, BMP; not its subfolders)")
        ->required()
        ->check(CLI::ExistingDirectory);
    sub.add_option("--out", o->out, "Output folder (predictions.csv, <photo>.overlay.png)")->required();
    add_overlay_flags(sub, o->explain);
    sub.add_flag("!--no-overlays", o->overlays, "Write predictions.csv only");
    add_device(sub, o->device);
  };
  cmd.run = [o](const Common& c) {
    o->explain.seed = c.seed;
    o->comm = c.world;
    run_predict(*o);
  };
  return cmd;
}

}  // namespace mel
