// The melanoma command line as a table. Each subcommand is one entry -- its name, a one-line
// summary, the function that declares its flags and the function that runs it -- written in its
// own file, cli_<command>.cpp. main.cpp only walks the table: it adds every entry as a CLI11
// subcommand with the flags every command shares (Common), parses, and runs the one chosen.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "layers/dist/comm.h"

namespace mel {

// Flags every command takes (add_common); run() receives them after parsing.
struct Common {
  int threads = 0;
  uint64_t seed = 1;
  std::string progress = "auto";
  double max_megapixels = 40;  // pixel budget of every image read (io::set_max_image_pixels)
  // Every process of the job (layers/dist/comm.h): the MPI world under mpirun, else this process alone.
  // Set by main; train, eval, localize, predict, two-stage and roar split their work over it.
  glimpse::dist::Communicator* world = nullptr;
};

struct Command {
  Command(std::string name_, std::string summary_) : name(std::move(name_)), summary(std::move(summary_)) {}
  std::string name;
  std::string summary;
  bool seeded = true;        // takes --seed
  bool reads_images = true;  // takes --max-megapixels
  // Declares the command's own flags on its subcommand, bound to options the entry owns.
  std::function<void(CLI::App&)> flags;
  // Runs the command with the parsed flags. A flag combination that CLI11 cannot check alone is
  // refused here with CLI::ValidationError, which main prints with the command's usage.
  std::function<void(const Common&)> run;
};

// The table, in the order `melanoma --help` lists it.
std::vector<Command> melanoma_commands();
// Adds each command as a subcommand of `app` with its own flags and the common ones bound to
// `common`; returns the subcommands in table order. CLI11 throws here if two flags clash.
std::vector<CLI::App*> add_commands(CLI::App& app, const std::vector<Command>& commands, Common& common);
// After parsing: runs the command whose subcommand was given.
void run_parsed(const std::vector<Command>& commands, const std::vector<CLI::App*>& subs, const Common& common);

// One entry per file (cli_<name>.cpp).
Command synth_command();
Command train_command();
Command eval_command();
Command explain_command();
Command predict_command();
Command sanity_command();
Command localize_command();
Command two_stage_command();
Command roar_command();
Command report_command();
Command demo_command();
Command serve_command();
Command export_command();

// ---- flags shared by several commands (cli.cpp) ----
void add_common(CLI::App& sub, Common& c, bool seed, bool reads_images);
// --device: the syntax is checked at parse time; whether the device is usable when the command
// starts (resolve_device), so that the error says why.
void add_device(CLI::App& sub, std::string& device);
// The training flags of train, two-stage and roar; --out/--resume/--init/--freeze with `with_out`.
void add_train_flags(CLI::App& sub, TrainOptions& t, bool with_out);
// The map and overlay flags of explain and predict.
void add_overlay_flags(CLI::App& sub, ExplainOptions& x);
// Refuses a run with no data source: none of --data, --synthetic, and (when `alternative` names
// one) that flag's value.
void require_data(const TrainOptions& t, const std::string& alternative_value, const char* alternative_flag);

extern const CLI::Validator kMethod;      // one attribution method
extern const CLI::Validator kMethodList;  // a,b,c | all | fast | none
extern const CLI::Validator kArch;        // a known architecture
extern const CLI::Validator kThreshold;   // a region threshold spec (attr::parse_threshold)
extern const CLI::Validator kOutFile;     // a file path that is not a directory
extern const CLI::Validator kPercents;    // 10,30,... each in (0, 100)
std::string arch_help();

}  // namespace mel
