// ONNX export (interop/onnx_export.h) with the ONNX project's generated protobuf classes and checker.
//
// The graph is read off the module tree, one ONNX node per layer, in the order forward() runs them:
// GapClassifier's forward is its children in order (layers/models.cpp), Sequential's too, and
// BasicBlock's is spelled out below as in layers.cpp. Spatial sizes are tracked along the way with
// the floor rule of every glimpse window op, so the cam output is declared with its exact h x w.
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cstring>

#include "core/device.h"
#include "core/error.h"
#include "core/io/atomic_file.h"
#include "layers/interop/onnx_export.h"
#include "layers/layers.h"

namespace glimpse::interop {
namespace {

// ONNX IR version of each opset's release (onnx/docs/Versioning.md): 13, 14 -> IR 7; 15..17 -> IR 8.
int64_t ir_version_for(int opset) { return opset <= 14 ? 7 : 8; }

// floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1, PyTorch's and glimpse's ceil_mode=False.
int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

struct Value {
  std::string name;
  int64_t h = 0, w = 0;  // spatial size (batch 1 view)
};

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : g_(graph) {}

  // An initializer holding `t` (copied from wherever it lives), under the glimpse state name so a
  // reader can match ONNX weights to the checkpoint's.
  std::string weight(const std::string& name, const Tensor& t, std::vector<int64_t> dims = {}) {
    Tensor c = t.detach().to(Device::cpu()).contiguous();
    if (dims.empty()) dims.assign(c.shape().begin(), c.shape().end());
    onnx::TensorProto* p = g_->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) p->add_dims(d);
    // raw_data is little-endian IEEE floats (onnx.proto); x86-64 and aarch64 store floats so.
    p->set_raw_data(std::string(reinterpret_cast<const char*>(c.data()), sizeof(float) * c.numel()));
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::string& scope, std::vector<std::string> inputs,
                        std::string output = {}) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(scope.empty() ? op : scope);
    for (const auto& i : inputs) n->add_input(i);
    if (output.empty()) output = (scope.empty() ? op : scope) + ":" + op + std::to_string(++counter_);
    n->add_output(output);
    return n;
  }

  static void ints(onnx::NodeProto* n, const char* name, std::vector<int64_t> v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const char* name, float v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  // The nodes of one module applied to x; returns its output.
  Value emit(Module& m, const std::string& scope, const Value& x) {
    const std::string prefix = scope.empty() ? "" : scope + ".";
    if (auto* seq = dynamic_cast<Sequential*>(&m)) {
      Value y = x;
      for (const auto& [name, child] : seq->children()) y = emit(*child, prefix + name, y);
      return y;
    }
    if (auto* conv = dynamic_cast<Conv2d*>(&m)) return emit_conv(*conv, scope, x);
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) {
      onnx::NodeProto* n =
          node("BatchNormalization", scope,
               {x.name, weight(prefix + "weight", bn->weight), weight(prefix + "bias", bn->bias),
                weight(prefix + "running_mean", bn->running_mean), weight(prefix + "running_var", bn->running_var)});
      real(n, "epsilon", bn->eps);
      return {n->output(0), x.h, x.w};
    }
    if (dynamic_cast<ReLU*>(&m)) return {node("Relu", scope, {x.name})->output(0), x.h, x.w};
    if (auto* lr = dynamic_cast<LeakyReLU*>(&m)) {
      onnx::NodeProto* n = node("LeakyRelu", scope, {x.name});
      real(n, "alpha", lr->negative_slope);
      return {n->output(0), x.h, x.w};
    }
    if (auto* mp = dynamic_cast<MaxPool2d*>(&m)) return emit_pool("MaxPool", mp->options, scope, x);
    if (auto* ap = dynamic_cast<AvgPool2d*>(&m)) {
      Value y = emit_pool("AveragePool", ap->options, scope, x);
      integer(g_->mutable_node(g_->node_size() - 1), "count_include_pad", 1);  // AvgPool2d's divisor
      return y;
    }
    if (dynamic_cast<Dropout*>(&m)) return x;  // identity in eval mode
    if (auto* block = dynamic_cast<BasicBlock*>(&m)) {
      // out = relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x)), as BasicBlock::forward.
      Value out = emit(*block->relu1, prefix + "relu1",
                       emit(*block->bn1, prefix + "bn1", emit(*block->conv1, prefix + "conv1", x)));
      out = emit(*block->bn2, prefix + "bn2", emit(*block->conv2, prefix + "conv2", out));
      const Value shortcut = block->downsample ? emit(*block->downsample, prefix + "downsample", x) : x;
      GLIMPSE_CHECK(shortcut.h == out.h && shortcut.w == out.w, "ONNX export: ", scope, ": the shortcut (", shortcut.h,
                    "x", shortcut.w, ") and the residual (", out.h, "x", out.w, ") differ in size");
      Value sum{node("Add", scope + ".add", {out.name, shortcut.name})->output(0), out.h, out.w};
      return emit(*block->relu2, prefix + "relu2", sum);
    }
    GLIMPSE_FAIL("ONNX export: module '", scope, "' (", m.describe(), ") has no ONNX translation; exportable layers: ",
                 "Sequential, Conv2d, BatchNorm2d, ReLU, LeakyReLU, MaxPool2d, AvgPool2d, Dropout, BasicBlock");
  }

 private:
  Value emit_conv(Conv2d& conv, const std::string& scope, const Value& x) {
    const std::string prefix = scope + ".";
    const Conv2dOptions& o = conv.options;
    std::vector<std::string> in = {x.name, weight(prefix + "weight", conv.weight)};
    if (conv.bias.defined()) in.push_back(weight(prefix + "bias", conv.bias));
    onnx::NodeProto* n = node("Conv", scope, in);
    ints(n, "kernel_shape", {conv.kernel, conv.kernel});
    ints(n, "strides", {o.stride_h, o.stride_w});
    ints(n, "pads", {o.pad_h, o.pad_w, o.pad_h, o.pad_w});  // begin h, w, end h, w
    ints(n, "dilations", {o.dilation_h, o.dilation_w});
    integer(n, "group", o.groups);
    return {n->output(0), window_out(x.h, conv.kernel, o.stride_h, o.pad_h, o.dilation_h),
            window_out(x.w, conv.kernel, o.stride_w, o.pad_w, o.dilation_w)};
  }

  Value emit_pool(const char* op, const Pool2dOptions& o, const std::string& scope, const Value& x) {
    onnx::NodeProto* n = node(op, scope, {x.name});
    ints(n, "kernel_shape", {o.kernel_h, o.kernel_w});
    ints(n, "strides", {o.stride_h, o.stride_w});
    ints(n, "pads", {o.pad_h, o.pad_w, o.pad_h, o.pad_w});
    return {n->output(0), window_out(x.h, o.kernel_h, o.stride_h, o.pad_h, 1),
            window_out(x.w, o.kernel_w, o.stride_w, o.pad_w, 1)};
  }

  onnx::GraphProto* g_;
  int counter_ = 0;
};

// A float tensor type [dims...]; a dimension given as a string is symbolic (dynamic).
void set_tensor_type(onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::string>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  for (const auto& d : dims) {
    onnx::TensorShapeProto_Dimension* dim = t->mutable_shape()->add_dim();
    if (!d.empty() && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; }))
      dim->set_dim_value(std::stoll(d));
    else
      dim->set_dim_param(d);
  }
}

// The ONNX checker, then shape inference in strict mode (a node whose inferred output contradicts
// the declared shapes fails): what onnx.checker.check_model(full_check=True) does.
void check_with_onnx(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto copy = model;
    onnx::ShapeInferenceOptions strict(/*check_type=*/true, /*strict_mode=*/1, /*data_prop=*/false);
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    GLIMPSE_FAIL("ONNX export produced a model the ONNX checker refuses (a glimpse bug; please report it): ", e.what());
  }
}

}  // namespace

bool onnx_export_available() { return true; }
std::string onnx_unavailable_reason() { return ""; }

std::string onnx_model_bytes(Model& model, const OnnxExportOptions& options, OnnxExportInfo* info_out) {
  const ModelInfo& mi = model.info;
  check_onnx_exportable(mi.name);
  GLIMPSE_CHECK(options.opset >= kOnnxMinOpset && options.opset <= kOnnxMaxOpset, "ONNX export: opset ", options.opset,
                " is not supported; give one from ", kOnnxMinOpset, " to ", kOnnxMaxOpset);
  GLIMPSE_CHECK(mi.input_size > 0 && mi.in_channels > 0 && mi.num_classes > 0, "ONNX export: ", mi.name,
                " records no input size / channels / classes (", mi.input_size, ", ", mi.in_channels, ", ",
                mi.num_classes, ")");

  onnx::ModelProto proto;
  proto.set_ir_version(ir_version_for(options.opset));
  proto.set_producer_name("glimpse");
  proto.set_producer_version(GLIMPSE_VERSION);
  proto.set_domain("org.glimpse");
  proto.set_model_version(1);
  proto.set_doc_string(mi.name +
                       ": outputs the class probabilities and the class activation maps (CAM) of every "
                       "class at the resolution of layer " +
                       mi.cam_layer);
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  for (const auto& [k, v] : options.metadata) {
    onnx::StringStringEntryProto* e = proto.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  }

  onnx::GraphProto* graph = proto.mutable_graph();
  graph->set_name(mi.name);
  GraphBuilder b(graph);
  const std::string S = std::to_string(mi.input_size);
  set_tensor_type(graph->add_input(), kOnnxInput, {"N", std::to_string(mi.in_channels), S, S});

  // Children in order up to the GlobalAvgPool: the features. Every module whose output is the
  // current value is remembered, so the CAM layer can be checked to be the GAP's input.
  Value x{kOnnxInput, mi.input_size, mi.input_size};
  std::vector<std::string> gap_input_names;
  auto collect = [&](const std::string& name, Module& m) {
    gap_input_names.push_back(name);
    for (Module* c = &m; !c->children().empty();) {
      const auto& [child_name, child] = c->children().back();
      gap_input_names.push_back(gap_input_names.back() + "." + child_name);
      c = child.get();
    }
  };
  const auto& children = model.children();
  size_t i = 0;
  for (; i < children.size() && !dynamic_cast<GlobalAvgPool*>(children[i].second.get()); ++i) {
    gap_input_names.clear();
    x = b.emit(*children[i].second, children[i].first, x);
    collect(children[i].first, *children[i].second);
  }
  GLIMPSE_CHECK(i < children.size(), "ONNX export: ", mi.name, " has no GlobalAvgPool child");
  GLIMPSE_CHECK(x.h > 0 && x.w > 0, "ONNX export: ", mi.name, " at ", S, "x", S, " leaves a ", x.h, "x", x.w,
                " feature map");
  GLIMPSE_CHECK(std::find(gap_input_names.begin(), gap_input_names.end(), mi.cam_layer) != gap_input_names.end(),
                "ONNX export: ", mi.name, "'s CAM layer '", mi.cam_layer, "' is not the input of its GlobalAvgPool '",
                children[i].first, "'");
  const Value features = x;
  const std::string& gap_name = children[i].first;

  // GAP -> Flatten -> [Dropout] -> Linear (Gemm, y = x W^T + b), then Softmax over the classes.
  std::string y = b.node("GlobalAveragePool", gap_name, {features.name})->output(0);
  onnx::NodeProto* flat = b.node("Flatten", gap_name + ".flatten", {y});
  GraphBuilder::integer(flat, "axis", 1);
  y = flat->output(0);
  Linear* head = nullptr;
  std::string head_name;
  for (++i; i < children.size(); ++i) {
    Module* m = children[i].second.get();
    if (dynamic_cast<Flatten*>(m) || dynamic_cast<Dropout*>(m)) continue;  // [N, K] already; identity in eval
    auto* lin = dynamic_cast<Linear*>(m);
    GLIMPSE_CHECK(lin && !head, "ONNX export: after the GlobalAvgPool of ", mi.name, " comes '", children[i].first,
                  "' (", m->describe(), "); only one Linear may follow it");
    head = lin;
    head_name = children[i].first;
  }
  GLIMPSE_CHECK(head, "ONNX export: ", mi.name, " has no Linear after its GlobalAvgPool");
  const int64_t classes = head->out_features, K = head->in_features;
  GLIMPSE_CHECK(classes == mi.num_classes, "ONNX export: ", mi.name, " records ", mi.num_classes, " classes but its '",
                head_name, "' has ", classes, " outputs");
  std::vector<std::string> gemm_in = {y, b.weight(head_name + ".weight", head->weight)};
  if (head->bias.defined()) gemm_in.push_back(b.weight(head_name + ".bias", head->bias));
  onnx::NodeProto* gemm = b.node("Gemm", head_name, gemm_in, "logits");
  GraphBuilder::integer(gemm, "transB", 1);
  onnx::NodeProto* softmax = b.node("Softmax", "softmax", {"logits"}, kOnnxProbabilities);
  GraphBuilder::integer(softmax, "axis", 1);

  // CAM: the classifier as a 1x1 convolution without bias over the feature map, M_c = sum_k W[c,k] A_k.
  // Its own initializer (the same numbers as the Gemm's, viewed [classes, K, 1, 1]).
  onnx::NodeProto* cam =
      b.node("Conv", "cam", {features.name, b.weight("cam.weight", head->weight, {classes, K, 1, 1})}, kOnnxCam);
  GraphBuilder::ints(cam, "kernel_shape", {1, 1});

  set_tensor_type(graph->add_output(), kOnnxProbabilities, {"N", std::to_string(classes)});
  set_tensor_type(graph->add_output(), kOnnxCam,
                  {"N", std::to_string(classes), std::to_string(features.h), std::to_string(features.w)});

  check_with_onnx(proto);
  std::string bytes;
  GLIMPSE_CHECK(proto.SerializeToString(&bytes), "ONNX export: protobuf could not serialise ", mi.name,
                " (a model over 2 GB?)");
  if (info_out) {
    info_out->opset = options.opset;
    info_out->ir_version = proto.ir_version();
    info_out->nodes = graph->node_size();
    info_out->input_size = mi.input_size;
    info_out->cam_height = features.h;
    info_out->cam_width = features.w;
    info_out->cam_layer = mi.cam_layer;
    info_out->bytes = bytes.size();
  }
  return bytes;
}

OnnxExportInfo export_onnx(Model& model, const std::string& path, const OnnxExportOptions& options) {
  OnnxExportInfo info;
  const std::string bytes = onnx_model_bytes(model, options, &info);
  io::write_file_atomic(path, bytes);
  return info;
}

}  // namespace glimpse::interop
