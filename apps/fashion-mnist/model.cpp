#include "model.h"

#include "core/error.h"

namespace fmnist {
namespace {

using namespace glimpse;

class FashionGapNet : public Model {
 public:
  // blocks: channels of each conv, 0 = MaxPool2d(2).
  FashionGapNet(const std::string& name, const std::vector<int64_t>& blocks, Rng& rng)
      : Model("FashionGapNet", ModelInfo{name, 10, 28, 1, 4, ""}) {
    auto features = register_module("features", std::make_shared<Sequential>());
    int64_t c = 1;
    for (int64_t v : blocks) {
      if (v == 0) {
        features->add(std::make_shared<MaxPool2d>(2));
        continue;
      }
      // No conv bias: the BatchNorm right after would cancel it.
      features->add(std::make_shared<Conv2d>(c, v, 3, Conv2dOptions().padding(1), false, rng));
      features->add(std::make_shared<BatchNorm2d>(v));
      features->add(std::make_shared<ReLU>());
      c = v;
    }
    info.cam_layer = "features." + std::to_string(features->size() - 1);
    register_module("gap", std::make_shared<GlobalAvgPool>());
    register_module("classifier", std::make_shared<Linear>(c, 10, true, rng));
  }

  Tensor forward(const Tensor& x) override {
    GLIMPSE_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) >= 4 && x.size(3) >= 4, info.name,
                  ": expects grayscale images [N, 1, H, W] with H, W >= 4, got ", shape_str(x.shape()));
    Tensor y = x;
    for (const auto& [child_name, child] : children()) y = (*child)(y);
    return y;
  }
};

}  // namespace

const std::vector<std::string>& net_names() {
  static const std::vector<std::string> names = {"small-gap", "wide-gap"};
  return names;
}

std::shared_ptr<Model> make_net(const std::string& name, Rng& rng) {
  if (name == "small-gap") return std::make_shared<FashionGapNet>(name, std::vector<int64_t>{32, 0, 64, 0, 128}, rng);
  if (name == "wide-gap")
    return std::make_shared<FashionGapNet>(name, std::vector<int64_t>{32, 32, 0, 64, 64, 0, 128, 128}, rng);
  std::string known;
  for (const auto& n : net_names()) known += (known.empty() ? "" : ", ") + n;
  GLIMPSE_FAIL("unknown model '", name, "'; known models: ", known);
}

}  // namespace fmnist
