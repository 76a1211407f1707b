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
#include <vector>

#include "cli.h"
#include "core/io/image.h"
#include "interrupt.h"

using namespace mel;

int main(int argc, char** argv) {
  CLI::App app{
      "glimpse melanoma: train GAP classifiers on dermoscopy images (ISIC 2017 layout, or synthetic), score "
      "them, and explain them with every attribution method.",
      "melanoma"};
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);

  Common common;
  const std::vector<Command> commands = melanoma_commands();
  const std::vector<CLI::App*> subs = add_commands(app, commands, common);

  CLI11_PARSE(app, argc, argv);

  try {
    set_progress(common.progress);
    setup_runtime(common.threads, common.seed);
    glimpse::io::set_max_image_pixels(std::max<int64_t>(1, std::llround(common.max_megapixels * 1e6)));
    run_parsed(commands, subs, common);
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const Interrupted& e) {
    // Stopped cleanly by Ctrl-C / SIGTERM (interrupt.h); the job printed where things stand.
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nmelanoma: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
