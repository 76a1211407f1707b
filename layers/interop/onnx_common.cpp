// What every build knows about ONNX export, with or without libonnx: which architectures it takes.
#include <algorithm>

#include "core/error.h"
#include "layers/interop/onnx_export.h"

namespace glimpse::interop {

std::vector<std::string> onnx_exportable_architectures() {
  // Every model of layers/models.h is "children in order; features -> GAP -> Linear" (GapClassifier).
  // A new architecture joins this list once its forward is that, and the export test covers it.
  return {"small-gap", "bn-gap", "bn-gap-fine", "vgg16-gap", "resnet18-gap"};
}

void check_onnx_exportable(const std::string& architecture) {
  const auto known = onnx_exportable_architectures();
  if (std::find(known.begin(), known.end(), architecture) != known.end()) return;
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  GLIMPSE_FAIL("architecture '", architecture, "' cannot be exported to ONNX: only networks whose forward is their ",
               "children in order, then GlobalAvgPool and Linear, can be read off the module tree. Exportable: ", list);
}

}  // namespace glimpse::interop
