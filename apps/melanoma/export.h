// melanoma export: a checkpoint out as an ONNX model that outputs its class probabilities and the
// class activation maps of every class (interop/onnx_export.h), so that any ONNX runtime can
// classify and circle the lesion without glimpse. Its flags are in cli_export.cpp.
#pragma once
#include <string>

#include "layers/interop/onnx_export.h"

namespace mel {

struct ExportOptions {
  std::string model;  // checkpoint written by `melanoma train`
  std::string onnx;   // output file
  int opset = glimpse::interop::kOnnxDefaultOpset;
};
// Refuses, before reading the weights, a build without ONNX (saying how to get it) and a
// checkpoint whose architecture cannot be exported (naming it). The file records the checkpoint's
// metadata and the input normalisation as metadata_props.
glimpse::interop::OnnxExportInfo run_export(const ExportOptions& o);

}  // namespace mel
