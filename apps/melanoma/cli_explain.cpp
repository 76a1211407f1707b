// melanoma explain: one photo's heatmap overlay with its regions circled, and a JSON.
#include <cstdio>
#include <memory>

#include "cli.h"

namespace mel {

Command explain_command() {
  auto o = std::make_shared<ExplainOptions>();
  Command cmd{"explain",
              "Explain one photo: heatmap overlay PNG with the regions circled, and a JSON of prediction and regions"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint")->required()->check(CLI::ExistingFile);
    sub.add_option("--image", o->image, "Photo (JPEG, PNG, BMP)")->required()->check(CLI::ExistingFile);
    add_overlay_flags(sub, *o);
    sub.add_option("--layer", o->layer, "Layer for the CAM family / SAM (dotted name; default: the model's CAM layer)");
    sub.add_option("--out", o->out, "Overlay PNG")->check(kOutFile);
    sub.add_option("--json", o->json, "Prediction and regions as JSON")->check(kOutFile);
    sub.add_option("--target", o->target,
                   "Class to explain, by name (e.g. melanoma), or 'predicted'. A number is read as a class index, as "
                   "before (-1: predicted); names are safer, since a class-per-folder data set numbers its classes "
                   "alphabetically")
        ->capture_default_str();
    add_device(sub, o->device);
  };
  cmd.run = [o](const Common& c) {
    o->seed = c.seed;
    if (o->out.empty() && o->json.empty())
      std::fprintf(stderr, "melanoma explain: neither --out nor --json given; printing only\n");
    run_explain(*o);
  };
  return cmd;
}

}  // namespace mel
