// ONNX export of a GAP classifier that carries its own class activation maps.
//
// The exported graph (one input, two outputs; the batch dimension N is dynamic):
//   image         float [N, C, S, S]  normalised as glimpse's loader does (data.h: (v/255 - mean) / std)
//   probabilities float [N, classes]  softmax(GAP(A) W^T + b)
//   cam           float [N, classes, h, w]  M_c = sum_k W[c,k] A_k, the classifier applied to the last
//                 feature map A before the global average pooling (Zhou et al. 2016): exactly
//                 attr::cam()'s `raw` for every class at once (signed, no bias, no upsampling).
// It is built from the module tree (Conv, BatchNormalization, Relu, MaxPool, Add, GlobalAveragePool,
// Flatten, Gemm, Softmax and a 1x1 Conv for the CAM), ops every ONNX runtime has -- OpenCV 4.6's dnn
// among them -- with the same graph for every opset from 13 to 17 (none of these ops changed meaning
// in that range). The file is the ONNX project's own generated protobuf (libonnx-dev), checked by
// the ONNX checker and strict shape inference before it is written, atomically.
//
// Exportable: the architectures of layers/models.h, refused otherwise by name (a network whose
// forward is not "children in order, GAP, Linear" cannot be read off its module tree).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "layers/models.h"

namespace glimpse::interop {

inline constexpr int kOnnxMinOpset = 13;
inline constexpr int kOnnxMaxOpset = 17;
inline constexpr int kOnnxDefaultOpset = 13;

// Names of the graph's input and outputs.
inline constexpr const char* kOnnxInput = "image";
inline constexpr const char* kOnnxProbabilities = "probabilities";
inline constexpr const char* kOnnxCam = "cam";

struct OnnxExportOptions {
  int opset = kOnnxDefaultOpset;  // kOnnxMinOpset..kOnnxMaxOpset
  // Written as the model's metadata_props (class names, normalisation, ...); keys are free.
  std::map<std::string, std::string> metadata;
};

struct OnnxExportInfo {
  int opset = 0;
  int64_t ir_version = 0;
  int64_t nodes = 0;
  int64_t input_size = 0;                 // S
  int64_t cam_height = 0, cam_width = 0;  // h, w of the cam output
  std::string cam_layer;                  // the glimpse layer whose output the CAM reads
  uint64_t bytes = 0;                     // size of the serialised model
};

// Whether this build can export (libonnx-dev and libprotobuf-dev were found; GLIMPSE_ONNX), and if
// not, why and how to get it.
bool onnx_export_available();
std::string onnx_unavailable_reason();

// The architectures export accepts (ModelInfo::name), and the check export makes: an Error naming
// the architecture and listing the exportable ones. Available in every build.
std::vector<std::string> onnx_exportable_architectures();
void check_onnx_exportable(const std::string& architecture);

// The serialised ModelProto of `model` (evaluated in eval mode; its weights are read on the CPU).
// Throws glimpse::Error for an unexportable architecture or module (naming it), an opset outside
// 13..17, or a build without ONNX (onnx_unavailable_reason()).
std::string onnx_model_bytes(Model& model, const OnnxExportOptions& options = {}, OnnxExportInfo* info = nullptr);
// The same, written to `path` atomically.
OnnxExportInfo export_onnx(Model& model, const std::string& path, const OnnxExportOptions& options = {});

}  // namespace glimpse::interop
