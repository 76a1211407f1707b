// melanoma export: a checkpoint out as an ONNX model with its CAMs (export.h).
#include <memory>

#include "cli.h"
#include "export.h"

namespace mel {

Command export_command() {
  auto o = std::make_shared<ExportOptions>();
  Command cmd{"export",
              "Write a checkpoint as an ONNX model with two outputs: the class probabilities and every class's "
              "activation map (CAM)"};
  cmd.seeded = false;
  cmd.reads_images = false;
  cmd.flags = [o](CLI::App& sub) {
    sub.add_option("--model", o->model, "Checkpoint written by `melanoma train`")->required()->check(CLI::ExistingFile);
    sub.add_option("--onnx", o->onnx, "ONNX file to write (atomically)")->required();
    sub.add_option("--opset", o->opset, "ONNX opset")
        ->check(CLI::Range(glimpse::interop::kOnnxMinOpset, glimpse::interop::kOnnxMaxOpset))
        ->capture_default_str();
  };
  cmd.run = [o](const Common&) { run_export(*o); };
  return cmd;
}

}  // namespace mel
