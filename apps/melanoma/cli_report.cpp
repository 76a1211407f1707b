// melanoma report: one self-contained HTML page of everything known about a model.
#include <memory>

#include "cli.h"

namespace mel {

Command report_command() {
  auto o = std::make_shared<ReportOptions>();
  Command cmd{"report",
              "One self-contained HTML page: metrics, training curves, localization table, gallery of every "
              "method's overlays"};
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model,
                   "Checkpoint (its curve, eval.json, localize.json, two-stage.json and roar.json beside it are "
                   "included when present)")
        ->required()
        ->check(CLI::ExistingFile);
    sub.add_option("--data", o->data, "Data directory (default: the one the model was trained on)")
        ->check(CLI::ExistingDirectory);
    sub.add_option("--split", o->split, "Split for the gallery")->capture_default_str();
    sub.add_option("--out", o->out, "HTML file")->check(kOutFile)->capture_default_str();
    sub.add_option("--methods", o->methods, "Methods in the gallery")->check(kMethodList)->capture_default_str();
    sub.add_option("--count", o->count, "Gallery images")
        ->check(CLI::Range(int64_t(0), int64_t(1000)))
        ->capture_default_str();
    sub.add_option("--thumb", o->thumb, "Gallery image side in pixels")
        ->check(CLI::Range(int64_t(32), int64_t(1024)))
        ->capture_default_str();
    sub.add_option("--curve", o->curve, "Training curve JSON (default: <model>.curve.json)")->check(CLI::ExistingFile);
    sub.add_option("--eval-json", o->eval_json, "eval --json output")->check(CLI::ExistingFile);
    sub.add_option("--localize-json", o->localize_json, "localize --json output")->check(CLI::ExistingFile);
    sub.add_option("--two-stage-json", o->two_stage_json, "two-stage --json output")->check(CLI::ExistingFile);
    sub.add_option("--roar-json", o->roar_json, "roar --json output")->check(CLI::ExistingFile);
    sub.add_option("--title", o->title, "Page title")->capture_default_str();
  };
  cmd.run = [o](const Common&) { run_report(*o); };
  return cmd;
}

}  // namespace mel
