#include "export.h"

#include <cstdio>

#include "common.h"
#include "core/error.h"
#include "core/io/safetensors.h"
#include "data/data.h"

namespace mel {

using namespace glimpse;

interop::OnnxExportInfo run_export(const ExportOptions& o) {
  GLIMPSE_CHECK(interop::onnx_export_available(),
                "melanoma export: ONNX export is unavailable: ", interop::onnx_unavailable_reason());
  {
    // The architecture by name first: an unexportable one is refused before anything is built.
    const SafetensorsFile file = load_safetensors(o.model);
    const auto arch = file.metadata.find("arch");
    GLIMPSE_CHECK(arch != file.metadata.end(), o.model, ": no 'arch' in its metadata; `melanoma export` takes ",
                  "checkpoints written by `melanoma train`");
    interop::check_onnx_exportable(arch->second);
  }
  LoadedModel lm = load_model(o.model);
  interop::OnnxExportOptions opt;
  opt.opset = o.opset;
  for (const auto& [k, v] : meta_to_map(lm.meta)) opt.metadata["glimpse." + k] = v;
  // What a runtime needs to feed the model and read its CAM as glimpse does (docs/interop.md).
  opt.metadata["input"] = strf("RGB [N, 3, %lld, %lld], (pixel / 255 - mean) / std per channel",
                               (long long)lm.meta.size, (long long)lm.meta.size);
  opt.metadata["normalize_mean"] = strf("%g,%g,%g", data::kNormMean[0], data::kNormMean[1], data::kNormMean[2]);
  opt.metadata["normalize_std"] = strf("%g,%g,%g", data::kNormStd[0], data::kNormStd[1], data::kNormStd[2]);
  opt.metadata["cam_layer"] = lm.model->info.cam_layer;
  opt.metadata["cam_postprocess"] =
      "bilinear upsampling to the input (half-pixel centres), then per image min-max "
      "to [0, 1]; regions: threshold at 0.5 of the maximum";
  const interop::OnnxExportInfo info = interop::export_onnx(*lm.model, o.onnx, opt);
  std::printf("wrote %s: %s, opset %d (IR %lld), %lld nodes, %.1f MB\n", o.onnx.c_str(), lm.meta.arch.c_str(),
              info.opset, (long long)info.ir_version, (long long)info.nodes, info.bytes / 1e6);
  std::printf("  input  image         [N, 3, %lld, %lld]\n", (long long)info.input_size, (long long)info.input_size);
  std::printf("  output probabilities [N, %lld]\n", (long long)lm.meta.classes);
  std::printf("  output cam           [N, %lld, %lld, %lld]  (layer %s)\n", (long long)lm.meta.classes,
              (long long)info.cam_height, (long long)info.cam_width, info.cam_layer.c_str());
  return info;
}

}  // namespace mel
