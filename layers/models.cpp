#include "layers/models.h"

#include <sstream>

#include "core/error.h"
#include "layers/init.h"

namespace glimpse {
namespace {

void check_model_args(const char* model, int64_t num_classes, int64_t input_size, int64_t min_size) {
  GLIMPSE_CHECK(num_classes > 0, model, ": num_classes must be positive, got ", num_classes);
  GLIMPSE_CHECK(input_size >= min_size, model, ": input_size ", input_size, " does not survive the network's ",
                "downsampling; it needs images of at least ", min_size, "x", min_size);
}

// The input check every model shares: NCHW with the right channels, and big enough.
void check_model_input(const Model& m, const Tensor& x) {
  GLIMPSE_CHECK(x.defined() && x.dim() == 4 && x.size(1) == m.info.in_channels, m.info.name, ": expects images [N, ",
                m.info.in_channels, ", H, W], got ", x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  GLIMPSE_CHECK(x.size(2) >= m.info.total_stride && x.size(3) >= m.info.total_stride, m.info.name, ": images of ",
                x.size(2), "x", x.size(3), " are too small; the network downsamples by ", m.info.total_stride);
}

// features -> gap -> head, the shape of every CAM network here.
class GapClassifier : public Model {
 public:
  GapClassifier(std::string type, ModelInfo info) : Model(std::move(type), std::move(info)) {}
  bool is_chain() const override { return true; }
  Tensor forward(const Tensor& x) override {
    check_model_input(*this, x);
    Tensor y = x;
    for (const auto& [name, child] : children()) y = (*child)(y);
    return y;
  }
};

class SmallGapNet : public GapClassifier {
 public:
  SmallGapNet(int64_t num_classes, int64_t input_size, Rng& rng)
      : GapClassifier("SmallGapNet", {"small-gap", num_classes, input_size, 3, 4, "features.7"}) {
    auto features = register_module("features", std::make_shared<Sequential>());
    const auto pad1 = Conv2dOptions().padding(1);
    features->add(std::make_shared<Conv2d>(3, 32, 3, pad1, true, rng));
    features->add(std::make_shared<ReLU>());
    features->add(std::make_shared<MaxPool2d>(2));
    features->add(std::make_shared<Conv2d>(32, 64, 3, pad1, true, rng));
    features->add(std::make_shared<ReLU>());
    features->add(std::make_shared<MaxPool2d>(2));
    features->add(std::make_shared<Conv2d>(64, 128, 3, pad1, true, rng));
    features->add(std::make_shared<ReLU>());
    register_module("gap", std::make_shared<GlobalAvgPool>());
    register_module("classifier", std::make_shared<Linear>(128, num_classes, true, rng));
  }
};

// A VGG-style stack with batch norm, between W1 and VGG16 in cost: 0.23 GFLOP per 96x96 image,
// 297k parameters. BN lets it train from scratch at a high learning rate, and the deeper stack sees
// a lesion's texture at several scales while the CAM stays at 1/8 of the input.
//
// The "fine" variant drops the third max-pool and dilates the last two convolutions by 2 instead:
// the receptive field stays about the same (62 px against 66), but the CAM layer keeps 1/4 of the
// input (24x24 at 96 px), for maps that can follow a small lesion's outline; it costs ~1.8x the
// multiply-adds (the last block runs on 4x the pixels).
class BnGapNet : public GapClassifier {
 public:
  BnGapNet(int64_t num_classes, int64_t input_size, Rng& rng, bool fine)
      : GapClassifier("BnGapNet", {fine ? "bn-gap-fine" : "bn-gap", num_classes, input_size, 3, fine ? 4 : 8,
                                   fine ? "features.22" : "features.23"}) {
    const int64_t cfg[] = {32, 0, 32, 32, 0, 64, 64, 0, 128, 128};  // 0 = MaxPool2d(2)
    auto features = register_module("features", std::make_shared<Sequential>());
    int64_t c = 3, pools = 0;
    for (int64_t v : cfg) {
      if (v == 0) {
        if (!fine || ++pools < 3) features->add(std::make_shared<MaxPool2d>(2));
        continue;
      }
      const int64_t dilation = fine && pools == 3 ? 2 : 1;
      auto conv = features->add(
          std::make_shared<Conv2d>(c, v, 3, Conv2dOptions().padding(dilation).dilation(dilation), false, rng));
      init::kaiming_normal_(conv->weight, rng, 0.f, init::FanMode::FanOut, init::Nonlinearity::ReLU);
      features->add(std::make_shared<BatchNorm2d>(v));
      features->add(std::make_shared<ReLU>());
      c = v;
    }
    register_module("gap", std::make_shared<GlobalAvgPool>());
    register_module("classifier", std::make_shared<Linear>(c, num_classes, true, rng));
  }
};

class Vgg16Gap : public GapClassifier {
 public:
  Vgg16Gap(int64_t num_classes, int64_t input_size, Rng& rng, bool extra_conv)
      : GapClassifier("Vgg16Gap",
                      {"vgg16-gap", num_classes, input_size, 3, 16, extra_conv ? "features.31" : "features.29"}) {
    // torchvision's cfg "D"; 0 = MaxPool2d(2). The final pool is replaced by the GAP.
    const int64_t cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512};
    auto features = register_module("features", std::make_shared<Sequential>());
    int64_t c = 3;
    auto conv_relu = [&](int64_t out) {
      auto conv = features->add(std::make_shared<Conv2d>(c, out, 3, Conv2dOptions().padding(1), true, rng));
      init::kaiming_normal_(conv->weight, rng, 0.f, init::FanMode::FanOut, init::Nonlinearity::ReLU);
      init::zeros_(conv->bias);
      features->add(std::make_shared<ReLU>());
      c = out;
    };
    for (int64_t v : cfg) {
      if (v == 0)
        features->add(std::make_shared<MaxPool2d>(2));
      else
        conv_relu(v);
    }
    if (extra_conv) conv_relu(512);
    register_module("gap", std::make_shared<GlobalAvgPool>());
    auto fc = register_module("classifier", std::make_shared<Linear>(512, num_classes, true, rng));
    init::normal_(fc->weight, rng, 0.f, 0.01f);
    init::zeros_(fc->bias);
  }
};

class ResNet18Gap : public GapClassifier {
 public:
  ResNet18Gap(int64_t num_classes, int64_t input_size, Rng& rng)
      : GapClassifier("ResNet18Gap", {"resnet18-gap", num_classes, input_size, 3, 32, "layer4"}) {
    register_module("conv1", std::make_shared<Conv2d>(3, 64, 7, Conv2dOptions().stride(2).padding(3), false, rng));
    register_module("bn1", std::make_shared<BatchNorm2d>(64));
    register_module("relu", std::make_shared<ReLU>());
    register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
    int64_t c = 64;
    const int64_t widths[] = {64, 128, 256, 512};
    for (int i = 0; i < 4; ++i) {
      auto layer = register_module("layer" + std::to_string(i + 1), std::make_shared<Sequential>());
      layer->add(std::make_shared<BasicBlock>(c, widths[i], i == 0 ? 1 : 2, rng));
      layer->add(std::make_shared<BasicBlock>(widths[i], widths[i], 1, rng));
      c = widths[i];
    }
    register_module("gap", std::make_shared<GlobalAvgPool>());
    register_module("fc", std::make_shared<Linear>(512, num_classes, true, rng));
    for (auto& [name, m] : named_modules())
      if (auto* conv = dynamic_cast<Conv2d*>(m))
        init::kaiming_normal_(conv->weight, rng, 0.f, init::FanMode::FanOut, init::Nonlinearity::ReLU);
  }
};

}  // namespace

std::string Model::describe() const {
  return detail::concat(type_name_, "(", info.name, ", classes=", info.num_classes, ", input=", info.in_channels, "x",
                        info.input_size, "x", info.input_size, ")");
}

std::shared_ptr<Model> small_gap_net(int64_t num_classes, int64_t input_size, Rng& rng) {
  check_model_args("small_gap_net", num_classes, input_size, 4);
  return std::make_shared<SmallGapNet>(num_classes, input_size, rng);
}

std::shared_ptr<Model> bn_gap_net(int64_t num_classes, int64_t input_size, Rng& rng) {
  check_model_args("bn_gap_net", num_classes, input_size, 8);
  return std::make_shared<BnGapNet>(num_classes, input_size, rng, /*fine=*/false);
}

std::shared_ptr<Model> bn_gap_fine_net(int64_t num_classes, int64_t input_size, Rng& rng) {
  check_model_args("bn_gap_fine_net", num_classes, input_size, 4);
  return std::make_shared<BnGapNet>(num_classes, input_size, rng, /*fine=*/true);
}

std::shared_ptr<Model> vgg16_gap(int64_t num_classes, int64_t input_size, Rng& rng, bool extra_conv) {
  check_model_args("vgg16_gap", num_classes, input_size, 16);
  return std::make_shared<Vgg16Gap>(num_classes, input_size, rng, extra_conv);
}

std::shared_ptr<Model> resnet18_gap(int64_t num_classes, int64_t input_size, Rng& rng) {
  check_model_args("resnet18_gap", num_classes, input_size, 32);
  return std::make_shared<ResNet18Gap>(num_classes, input_size, rng);
}

const std::vector<ModelSpec>& model_specs() {
  static const std::vector<ModelSpec> specs = {
      {"small-gap", "W1: 3 convs (32, 64, 128) + ReLU, 2 maxpools, GAP, linear", 64, 4,
       [](int64_t k, int64_t s, Rng& r) { return small_gap_net(k, s, r); }},
      {"bn-gap", "7 convs (32; 32, 32; 64, 64; 128, 128) + BatchNorm + ReLU, 3 maxpools, GAP, linear", 96, 8,
       [](int64_t k, int64_t s, Rng& r) { return bn_gap_net(k, s, r); }},
      {"bn-gap-fine", "bn-gap without its third maxpool (last two convs dilated by 2): CAM at 1/4 of the input", 96, 4,
       [](int64_t k, int64_t s, Rng& r) { return bn_gap_fine_net(k, s, r); }},
      {"vgg16-gap", "W2: VGG16's 13 convs + an extra 3x3 conv 512, GAP, linear (Jia & Shen)", 224, 16,
       [](int64_t k, int64_t s, Rng& r) { return vgg16_gap(k, s, r); }},
      {"resnet18-gap", "ResNet-18 (torchvision layout), GAP, linear", 224, 32,
       [](int64_t k, int64_t s, Rng& r) { return resnet18_gap(k, s, r); }},
  };
  return specs;
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& s : model_specs()) names.push_back(s.name);
  return names;
}

const ModelSpec& model_spec(const std::string& name) {
  for (const auto& s : model_specs())
    if (s.name == name) return s;
  std::ostringstream known;
  for (const auto& s : model_specs()) known << (known.tellp() > 0 ? ", " : "") << s.name;
  GLIMPSE_FAIL("unknown model '", name, "'. Known models: ", known.str());
}

std::shared_ptr<Model> make_model(const std::string& name, int64_t num_classes, int64_t input_size, Rng& rng) {
  const ModelSpec& spec = model_spec(name);
  return spec.make(num_classes, input_size > 0 ? input_size : spec.default_input_size, rng);
}

}  // namespace glimpse
