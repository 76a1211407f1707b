// melanoma: the flagship app of glimpse -- train GAP classifiers on ISIC-2017-style dermoscopy
// (or on synthetic lesions, no data needed), score them as the ISIC 2017 challenge did, and ask
// every attribution method what the network took for melanoma.
//
//   build/bin/melanoma demo --out demo            # the whole story in a few minutes
//   build/bin/melanoma <subcommand> --help        # synth train eval explain predict sanity localize
//                                                 # two-stage roar report demo serve export
//
// The subcommands are a table (cli.h): each entry's flags and run live in its cli_<name>.cpp, the
// work itself in <name>.cpp. This file adds the table to CLI11, parses and runs the chosen entry. A
// bad flag prints the error and the subcommand's usage; an error at run time prints one line naming
// the value at fault.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "cli.h"
#include "core/io/image.h"
#include "interrupt.h"
#include "layers/dist/sync.h"

using namespace mel;

namespace {

int fail(const std::exception& e) {
  std::fflush(stdout);
  std::fprintf(stderr, "\nmelanoma: error: %s\n", e.what());
  return 1;
}

// Under mpirun: an error that one rank alone saw ends the whole job (the others may be waiting in a
// collective for it), naming the rank; an error every rank agreed on (dist::CollectiveError) is
// printed once, by rank 0, and every rank exits normally.
int end_rank(glimpse::dist::Communicator& world, int code) {
  if (code == 0 || world.size() == 1) return code;
  std::fflush(stdout);
  std::fprintf(stderr, "melanoma: rank %d of %d stopped with the error above; stopping every rank\n", world.rank(),
               world.size());
  world.abort(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // MPI when an MPI launcher started us (docs/distributed.md), else one process.
  std::unique_ptr<glimpse::dist::Session> session;
  try {
    session = std::make_unique<glimpse::dist::Session>(&argc, &argv);
  } catch (const std::exception& e) {
    return fail(e);
  }
  glimpse::dist::Communicator& world = session->world();
  CLI::App app{
      "glimpse melanoma: train GAP classifiers on dermoscopy images (ISIC 2017 layout, or synthetic), score "
      "them, and explain them with every attribution method.",
      "melanoma"};
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);

  Common common;
  common.world = &world;
  const std::vector<Command> commands = melanoma_commands();
  const std::vector<CLI::App*> subs = add_commands(app, commands, common);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return end_rank(world, app.exit(e));
  }

  try {
    // One progress bar for the job: the other ranks' bars would overwrite rank 0's on the terminal.
    set_progress(world.rank() == 0 ? common.progress : "none");
    setup_runtime(common.threads, common.seed);
    glimpse::io::set_max_image_pixels(std::max<int64_t>(1, std::llround(common.max_megapixels * 1e6)));
    run_parsed(commands, subs, common);
  } catch (const CLI::Error& e) {
    return end_rank(world, app.exit(e));
  } catch (const Interrupted& e) {
    // Stopped cleanly by Ctrl-C / SIGTERM (interrupt.h); the job printed where things stand.
    return end_rank(world, e.exit_code());
  } catch (const glimpse::dist::CollectiveError& e) {
    return world.rank() == 0 ? fail(e) : 1;
  } catch (const std::exception& e) {
    return end_rank(world, fail(e));
  }
  return 0;
}
