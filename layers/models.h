// The model zoo: GAP classifiers for class activation mapping (Zhou et al. 2016: conv features ->
// global average pooling -> one linear layer, so CAM = sum_k W[c,k] A_k). Layouts and dotted
// names follow PyTorch/torchvision, so a PyTorch module with the same attribute names has the same
// state_dict keys and weights move both ways.
//
// Each factory validates the image side it is built for (it must survive the downsampling, i.e.
// be at least the network's total stride) and records it, with the class count and the layer CAM
// reads, in Model::info.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "layers/layers.h"

namespace glimpse {

struct ModelInfo {
  std::string name;  // "small-gap", "bn-gap", "vgg16-gap", "resnet18-gap"
  int64_t num_classes = 0;
  int64_t input_size = 0;  // image side the model was built for (H = W)
  int64_t in_channels = 3;
  int64_t total_stride = 1;  // input side / last feature map side
  std::string cam_layer;     // dotted name of the last spatial activation (conv+ReLU output)
  // Side of the last spatial feature map for an input of `input_size`: exact for the max-pool nets
  // (small-gap, vgg16-gap) and for ResNet when input_size is a multiple of 32 (its padded strided
  // convs round up: 33 -> 2, not 1).
  int64_t feature_size() const { return input_size / total_stride; }
};

// A classifier with a recorded ModelInfo. Subclasses define the children and forward().
class Model : public Module {
 public:
  Model(std::string type_name, ModelInfo info) : Module(std::move(type_name)), info(std::move(info)) {}
  std::string describe() const override;
  // True when forward() runs the children in registration order and nothing else (besides checking
  // the input): features -> gap -> head. Attribution uses it to recompute layer by layer
  // (attribution/local_forward.h); a model with residual blocks says so through its children.
  virtual bool is_chain() const { return false; }
  ModelInfo info;
};

// W1 of BENCHMARKS.md:
//   features = Sequential[0 Conv2d(3,32,3,pad 1), 1 ReLU, 2 MaxPool2d(2), 3 Conv2d(32,64,3,pad 1),
//              4 ReLU, 5 MaxPool2d(2), 6 Conv2d(64,128,3,pad 1), 7 ReLU]
//   gap = GlobalAvgPool, classifier = Linear(128, num_classes).  CAM layer "features.7".
// PyTorch's default initialisation. input_size >= 4.
std::shared_ptr<Model> small_gap_net(int64_t num_classes = 3, int64_t input_size = 64, Rng& rng = global_rng());

// bn-gap: features = Sequential of [Conv2d(3x3, pad 1, no bias), BatchNorm2d, ReLU] with widths
//   32 | 32, 32 | 64, 64 | 128, 128 and a MaxPool2d(2) at each "|" (indices 0..23; CAM layer
//   "features.23", 1/8 of the input), gap, classifier = Linear(128, num_classes). Kaiming-normal
//   (fan-out) convolutions. Default input 96; input_size >= 8.
std::shared_ptr<Model> bn_gap_net(int64_t num_classes = 3, int64_t input_size = 96, Rng& rng = global_rng());
// bn-gap-fine: the same without the third MaxPool2d and with dilation 2 (pad 2) in the last two
//   convolutions (indices 0..22; CAM layer "features.22", 1/4 of the input); input_size >= 4.
std::shared_ptr<Model> bn_gap_fine_net(int64_t num_classes = 3, int64_t input_size = 96, Rng& rng = global_rng());

// W2 (VGG16-GAP, the seed paper's network): features = torchvision's vgg16 features 0..29 (13 convs
// each + ReLU, MaxPool after blocks 1-4; the 5th MaxPool dropped), then, with extra_conv, one more
// Conv2d(512,512,3,pad 1) + ReLU at features.30/31 (Jia & Shen's extra conv before the GAP);
// gap = GlobalAvgPool; classifier = Linear(512, num_classes). CAM layer "features.31" (or
// "features.29", the conv5_3 ReLU, without the extra conv). torchvision's VGG init: conv weights
// kaiming_normal_(fan_out, relu), biases 0; classifier N(0, 0.01), bias 0. input_size >= 16.
std::shared_ptr<Model> vgg16_gap(int64_t num_classes = 3, int64_t input_size = 224, Rng& rng = global_rng(),
                                 bool extra_conv = true);

// ResNet-18 (He et al. 2016) in torchvision's layout: conv1 (7x7/2, no bias), bn1, relu,
// maxpool (3x3/2, pad 1), layer1..layer4 = Sequential of two BasicBlocks (64, 128/2, 256/2,
// 512/2), gap = GlobalAvgPool, fc = Linear(512, num_classes). CAM layer "layer4" (the output of
// layer4.1.relu2). torchvision's init: convs kaiming_normal_(fan_out, relu), BN 1/0, fc default.
// input_size >= 32.
std::shared_ptr<Model> resnet18_gap(int64_t num_classes = 3, int64_t input_size = 224, Rng& rng = global_rng());

// The registry, by name.
struct ModelSpec {
  std::string name;
  std::string description;
  int64_t default_input_size;
  int64_t min_input_size;
  std::function<std::shared_ptr<Model>(int64_t num_classes, int64_t input_size, Rng& rng)> make;
};
const std::vector<ModelSpec>& model_specs();
std::vector<std::string> model_names();
// Unknown names throw an Error listing the known ones. input_size <= 0 takes the model's default.
const ModelSpec& model_spec(const std::string& name);
std::shared_ptr<Model> make_model(const std::string& name, int64_t num_classes, int64_t input_size = 0,
                                  Rng& rng = global_rng());

}  // namespace glimpse
