// ONNX export in a build without libonnx-dev / libprotobuf-dev (GLIMPSE_ONNX=AUTO found neither, or
// OFF): every call says why and how to get it, so that the rest of glimpse builds and runs.
#include "core/error.h"
#include "layers/interop/onnx_export.h"

namespace glimpse::interop {

bool onnx_export_available() { return false; }
std::string onnx_unavailable_reason() { return GLIMPSE_ONNX_MISSING; }

std::string onnx_model_bytes(Model& model, const OnnxExportOptions&, OnnxExportInfo*) {
  check_onnx_exportable(model.info.name);
  GLIMPSE_FAIL("ONNX export is unavailable: ", onnx_unavailable_reason());
}

OnnxExportInfo export_onnx(Model& model, const std::string&, const OnnxExportOptions& options) {
  onnx_model_bytes(model, options, nullptr);
  return {};
}

}  // namespace glimpse::interop
