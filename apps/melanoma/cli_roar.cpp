// melanoma roar: RemOve And Retrain (Hooker et al. 2019) for each method's maps.
#include <memory>
#include <sstream>

#include "cli.h"

namespace mel {

Command roar_command() {
  auto o = std::make_shared<RoarOptions>();
  auto percents = std::make_shared<std::string>("10,30,50,70,90");
  Command cmd{"roar",
              "Remove the top t% pixels by each method's map, retrain, and compare accuracy and AUC against a "
              "random-map control"};
  cmd.flags = [o, percents](CLI::App& sub) {
    add_train_flags(sub, o->train, /*with_out=*/false);
    sub.add_option("--model", o->model, "Model whose maps rank the pixels (default: train one)")
        ->check(CLI::ExistingFile);
    sub.add_option("--out", o->out, "Output directory")->capture_default_str();
    sub.add_option("--methods,--method", o->methods, "Comma-separated methods")
        ->check(kMethodList)
        ->capture_default_str();
    sub.add_option("--percents", *percents, "Percentages of pixels removed")->check(kPercents)->capture_default_str();
    sub.add_flag("!--no-random", o->random_control, "Skip the random-map control");
    sub.add_flag("--keep", o->keep, "Keep the top t% and remove the rest instead");
    sub.add_option("--json", o->json, "Also write the results here")->check(kOutFile);
  };
  cmd.run = [o, percents](const Common& c) {
    o->train.seed = c.seed;
    o->comm = c.world;
    o->percents.clear();  // kPercents has checked each one
    std::stringstream ss(*percents);
    for (std::string p; std::getline(ss, p, ',');) o->percents.push_back(std::stoi(p));
    require_data(o->train, o->model, "--model FILE");
    if (o->json.empty()) o->json = o->out + "/roar.json";
    run_roar(*o);
  };
  return cmd;
}

}  // namespace mel
