// melanoma sanity: the model- and data-randomization tests of Adebayo et al. 2018.
#include <memory>

#include "cli.h"

namespace mel {

Command sanity_command() {
  auto o = std::make_shared<SanityOptions>();
  Command cmd{"sanity",
              "Adebayo et al. 2018: re-initialize the layers from the top, one more at a time, and measure how "
              "much each method's maps change (Spearman, SSIM); flags methods whose maps do not"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint")->required()->check(CLI::ExistingFile);
    sub.add_option("--data", o->data, "Data directory")->required()->check(CLI::ExistingDirectory);
    sub.add_option("--split", o->split, "Split")->capture_default_str();
    sub.add_option("--methods", o->methods, "Comma-separated methods, or all")
        ->check(kMethodList)
        ->capture_default_str();
    sub.add_option("--limit", o->limit, "Images (the first of the split)")
        ->check(CLI::Range(int64_t(1), int64_t(256)))
        ->capture_default_str();
    sub.add_option("--json", o->json, "Also write the table here")->check(kOutFile);
    sub.add_option("--figure", o->figure, "PNG: one row per method, the first image's map trained and after each step")
        ->check(kOutFile);
    sub.add_flag("--data-randomization", o->data_randomization,
                 "Also train a copy of the architecture on --train-split with the labels permuted and compare its "
                 "maps with the trained model's (Adebayo et al.'s second test)");
    sub.add_option("--train-split", o->train_split, "Split the random-label copy trains on")->capture_default_str();
    sub.add_option("--data-randomization-epochs", o->data_epochs,
                   "Epochs of the random-label copy (0: as many as the checkpoint planned)")
        ->check(CLI::Range(0, 10000))
        ->capture_default_str();
    sub.add_option("--data-randomization-batch", o->data_batch, "Batch size of the random-label copy")
        ->check(CLI::Range(int64_t(1), int64_t(4096)))
        ->capture_default_str();
  };
  cmd.run = [o](const Common& c) {
    o->seed = c.seed;
    run_sanity(*o);
  };
  return cmd;
}

}  // namespace mel
