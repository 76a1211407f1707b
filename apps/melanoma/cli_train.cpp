// melanoma train: a GAP classifier, checkpointed every epoch.
#include <memory>

#include "cli.h"

namespace mel {

Command train_command() {
  auto o = std::make_shared<TrainOptions>();
  Command cmd{"train", "Train a GAP classifier (checkpoint every epoch, --resume)"};
  cmd.flags = [o](CLI::App& sub) {
    add_train_flags(sub, *o, /*with_out=*/true);
    add_device(sub, o->device);
    sub.add_option("--bucket-mb", o->bucket_mb, "Under mpirun: gradients are averaged in buckets of this many MiB")
        ->check(CLI::Range(0.001, 4096.0))
        ->capture_default_str();
    sub.add_flag("--sync-bn", o->sync_bn,
                 "Under mpirun: batch-norm statistics over the whole global batch (allreduced in every forward and "
                 "backward pass), so N ranks train as one process at --batch; default: each rank's slice alone");
  };
  cmd.run = [o](const Common& c) {
    o->seed = c.seed;
    require_data(*o, o->resume, nullptr);
    // A resumed run without --data trains on the data its checkpoint was trained on.
    if (o->data.empty() && !o->resume.empty()) o->data = load_model(o->resume).meta.data;
    o->comm = c.world;
    train_model(*o);
  };
  return cmd;
}

}  // namespace mel
