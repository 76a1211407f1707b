// torchvision weights into glimpse (interop/torch_import.h), checked against torchvision itself:
// tests/fixtures/torchvision_reference.safetensors (tools/make_torchvision_fixture.py) holds what
// Debian's torchvision 0.14 ResNet-18 and VGG-16 computed with weights that are a pure function of
// (key, index) -- regenerated here bit for bit -- plus torchvision's own state_dict keys and shapes.
// The test writes the file a converter would give from those names, imports it into glimpse's
// resnet18-gap / vgg16-gap, and compares features and logits (relative error <= 1e-4). Then the
// refusals: a wrong shape, a missing key and an unexpected key, each named with both shapes.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/grad_mode.h"
#include "core/io/safetensors.h"
#include "init_weights.h"
#include "layers/interop/torch_import.h"
#include "layers/models.h"
#include "melanoma_support.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace glimpse;
using glimpse::testing::error_of;

namespace {

// Under AddressSanitizer (the CI's Debug build) the VGG-16 runs take ~30 s each; they run in the
// Release ctest, and the sanitizer build checks the same code paths on the smaller networks.
using glimpse::testing::kSanitized;

const std::string kFixture = std::string(GLIMPSE_TEST_FIXTURES) + "/torchvision_reference.safetensors";

uint32_t fnv1a(const std::string& key) {
  uint32_t h = 0x811C9DC5u;
  for (unsigned char b : key) h = (h ^ b) * 0x01000193u;
  return h;
}

// tools/make_torchvision_fixture.py's uniform(): murmur3's finaliser of (fnv1a(key) * golden + i).
std::vector<float> uniform(const std::string& key, int64_t n) {
  std::vector<float> out(n);
  const uint32_t base = fnv1a(key) * 0x9E3779B1u;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t x = base + static_cast<uint32_t>(i);
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    out[i] = static_cast<float>(double(x) / 4294967296.0 * 2.0 - 1.0);
  }
  return out;
}

// ... and its fill(): the same float32 arithmetic.
Tensor fill(const std::string& key, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v = uniform(key, n);
  auto ends = [&](const char* s) {
    return key.size() >= std::strlen(s) && key.compare(key.size() - std::strlen(s), std::strlen(s), s) == 0;
  };
  for (float& x : v) {
    if (ends("running_var"))
      x = 1.f + 0.25f * (x + 1.f);
    else if (ends("running_mean") || ends("bias"))
      x = 0.1f * x;
    else if (shape.size() == 1)
      x = 1.f + 0.2f * x;
    else
      x = x * static_cast<float>(std::sqrt(6.0 / double(n / shape[0])));
  }
  return Tensor::from_vector(shape, v);
}

struct Fixture {
  SafetensorsFile file;
  Tensor get(const std::string& name) const {
    for (const auto& [n, t] : file.tensors)
      if (n == name) return t;
    ADD_FAILURE() << "fixture lacks " << name;
    return Tensor();
  }
  // torchvision's state_dict as a converter writes it: its keys and shapes, formula values.
  std::vector<std::pair<std::string, Tensor>> state(const std::string& net) const {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& e : nlohmann::json::parse(file.metadata.at(net + ".keys"))) {
      const std::string key = e[0];
      const Shape shape = e[1].get<Shape>();
      out.emplace_back(key, key.ends_with("num_batches_tracked") ? Tensor::zeros(shape) : fill(key, shape));
    }
    return out;
  }
};

const Fixture& fixture() {
  static const Fixture f{load_safetensors(kFixture)};
  return f;
}

std::string temp_file(const std::string& name) {
  return (fs::temp_directory_path() / ("glimpse_torch_" + std::to_string(::getpid()) + "_" + name)).string();
}

// The output of `layer` and the logits of `model` on x.
std::pair<Tensor, Tensor> run(Model& model, const std::string& layer, const Tensor& x) {
  Tensor feat;
  HookHandle h = register_forward_hook(model, layer, [&](Module&, const Tensor&, const Tensor& out) {
    feat = out;
    return Tensor();
  });
  NoGradGuard no_grad;
  model.eval();
  Tensor logits = model(x);
  return {feat, logits};
}

}  // namespace

TEST(TorchImport, ResNet18MatchesTorchvision) {
  const std::string path = temp_file("resnet18.safetensors");
  save_safetensors(path, fixture().state("resnet18"), {}, /*checksum=*/false);
  Rng rng(1);
  auto model = resnet18_gap(3, 64, rng);
  const interop::TorchImport r = interop::import_torchvision(*model, path);
  EXPECT_EQ(r.loaded.size(), model->state().size());  // every tensor, the 3-class fc included
  EXPECT_EQ(r.ignored.size(), 20u);                   // the 20 BatchNorms' num_batches_tracked
  EXPECT_TRUE(r.kept.empty());
  auto [feat, logits] = run(*model, "layer4", fixture().get("input"));
  glimpse::testing::expect_close("resnet18 layer4", feat, fixture().get("resnet18.layer4"), 1e-4);
  glimpse::testing::expect_close("resnet18 logits", logits, fixture().get("resnet18.logits"), 1e-4);
  fs::remove(path);
}

TEST(TorchImport, Vgg16FeaturesMatchTorchvision) {
  if (kSanitized) GTEST_SKIP() << "runs in the Release build only (30 s under AddressSanitizer)";
  const std::string path = temp_file("vgg16.safetensors");
  auto state = fixture().state("vgg16");
  // The file is 553 MB with torchvision's fully connected head; the test keeps the features (the
  // head is dropped by the mapping anyway -- checked on a small stand-in below).
  std::erase_if(state, [](const auto& kv) { return kv.first.starts_with("classifier."); });
  state.emplace_back("classifier.6.weight", Tensor::zeros({1000, 4096}));
  state.emplace_back("classifier.6.bias", Tensor::zeros({1000}));
  save_safetensors(path, state, {}, false);
  Rng rng(1);
  auto model = vgg16_gap(3, 64, rng);
  const interop::TorchImport r = interop::import_torchvision(*model, path);
  EXPECT_EQ(r.loaded.size(), 26u);  // 13 convolutions' weight and bias
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"classifier.6.weight", "classifier.6.bias"}));
  EXPECT_EQ(r.kept, (std::vector<std::string>{"classifier.bias", "classifier.weight", "features.30.bias",
                                              "features.30.weight"}));
  auto [feat, logits] = run(*model, "features.29", fixture().get("input"));
  glimpse::testing::expect_close("vgg16 features.29", feat, fixture().get("vgg16.features29"), 1e-4);
  fs::remove(path);
}

TEST(TorchImport, RefusesWrongShapeMissingAndUnexpectedKeys) {
  Rng rng(1);
  auto model = resnet18_gap(3, 64, rng);
  const auto good = fixture().state("resnet18");
  const Tensor before = model->state()[0].second.clone();
  auto try_with = [&](const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit,
                      bool new_head = false) {
    auto s = good;
    edit(s);
    const std::string path = temp_file("bad.safetensors");
    save_safetensors(path, s, {}, false);
    const std::string e = error_of([&] { interop::import_torchvision(*model, path, new_head); });
    fs::remove(path);
    return e;
  };
  auto set = [](std::vector<std::pair<std::string, Tensor>>& s, const std::string& key, Tensor t) {
    for (auto& kv : s)
      if (kv.first == key) kv.second = t;
  };
  std::string e = try_with([&](auto& s) { set(s, "layer1.0.conv1.weight", Tensor::zeros({64, 64, 1, 1})); });
  EXPECT_NE(e.find("key 'layer1.0.conv1.weight': expected shape [64, 64, 3, 3], found [64, 64, 1, 1]"),
            std::string::npos)
      << e;
  e = try_with(
      [](auto& s) { std::erase_if(s, [](const auto& kv) { return kv.first == "layer2.0.bn1.running_var"; }); });
  EXPECT_NE(e.find("missing key 'layer2.0.bn1.running_var' (expected shape [128])"), std::string::npos) << e;
  e = try_with([](auto& s) { s.emplace_back("layer5.0.conv1.weight", Tensor::zeros({8, 8, 3, 3})); });
  EXPECT_NE(e.find("unexpected key 'layer5.0.conv1.weight' (shape [8, 8, 3, 3])"), std::string::npos) << e;
  // ImageNet's 1000-class fc: refused for a 3-class model unless a new head is asked for.
  auto imagenet_fc = [&](auto& s) {
    set(s, "fc.weight", Tensor::zeros({1000, 512}));
    set(s, "fc.bias", Tensor::zeros({1000}));
  };
  e = try_with(imagenet_fc);
  EXPECT_NE(e.find("key 'fc.weight': expected shape [3, 512], found [1000, 512] (a different class count"),
            std::string::npos)
      << e;
  // Nothing was copied by the refused loads.
  EXPECT_EQ(glimpse::testing::relative_error(model->state()[0].second, before), 0.0);
  EXPECT_EQ(try_with(imagenet_fc, /*new_head=*/true), "(no error)");
  EXPECT_NE(error_of([] {
              Rng r(1);
              auto small = small_gap_net(3, 32, r);
              interop::import_torchvision(*small, kFixture);
            }).find("resnet18-gap and vgg16-gap only, not 'small-gap'"),
            std::string::npos);
}

// train --init / --freeze: a run started from another run's checkpoint keeps the frozen layers
// bit for bit, trains the rest, records both in its metadata, and a resume keeps them frozen.
// A checkpoint with another class count starts a new classifier.
TEST(TorchImport, TrainInitAndFreeze) {
  const std::string dir = temp_file("train");
  fs::create_directories(dir);
  mel::TrainOptions t = glimpse::testing::tiny_training(dir);
  t.out = dir + "/first.safetensors";
  mel::train_model(t);
  const mel::LoadedModel first = mel::load_model(t.out);

  mel::TrainOptions u = t;
  u.out = dir + "/second.safetensors";
  u.init = t.out;
  u.freeze = "features.0,features.3";
  u.epochs = 2;
  u.seed = 9;  // another initialisation: everything not loaded would differ
  mel::train_model(u);
  auto second = mel::load_model(u.out);
  EXPECT_EQ(second.meta.init, t.out);
  EXPECT_EQ(second.meta.freeze, "features.0,features.3");
  std::map<std::string, Tensor> a, b;
  for (auto& [n, p] : first.model->named_parameters()) a[n] = p;
  for (auto& [n, p] : second.model->named_parameters()) b[n] = p;
  for (const char* frozen : {"features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"})
    EXPECT_EQ(glimpse::testing::relative_error(b[frozen], a[frozen]), 0.0) << frozen;
  for (const char* trained : {"features.6.weight", "classifier.weight"})
    EXPECT_GT(glimpse::testing::relative_error(b[trained], a[trained]), 0.0) << trained;

  // Resumed for a third epoch: still frozen.
  mel::TrainOptions v = u;
  v.init.clear();
  v.freeze.clear();  // from the checkpoint
  v.resume = u.out;
  v.epochs = 3;
  mel::train_model(v);
  auto third = mel::load_model(u.out);
  EXPECT_EQ(third.meta.freeze, "features.0,features.3");
  for (auto& [n, p] : third.model->named_parameters())
    if (n.starts_with("features.0.") || n.starts_with("features.3.")) {
      EXPECT_EQ(glimpse::testing::relative_error(p, a[n]), 0.0) << n;
    }

  // Another class count: the features load, the classifier starts anew.
  Rng rng(4);
  auto two = small_gap_net(2, 32, rng);
  const interop::TorchImport r = interop::import_weights(*two, t.out, /*new_head=*/true);
  EXPECT_EQ(r.kept, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
  EXPECT_EQ(r.loaded.size(), 6u);
  // Without a new head that is refused, naming the key and both shapes.
  const std::string e = error_of([&] { interop::import_weights(*two, t.out); });
  EXPECT_NE(e.find("key 'classifier.weight': expected shape [2, 128], found [3, 128]"), std::string::npos) << e;
  // A prefix that names nothing.
  EXPECT_NE(error_of([&] { mel::freeze_layers(*two, "feature"); }).find("--freeze: 'feature' names no layer"),
            std::string::npos);
  fs::remove_all(dir);
}

// The other direction: tools/glimpse_torch.py's PyTorch twins of the five architectures, given
// weights under glimpse's names, compute what glimpse computes -- so a glimpse checkpoint loaded
// there (its strict load_state_dict) is the same network.
TEST(TorchImport, PyTorchTwinsOfEveryArchitectureGiveGlimpsesLogits) {
  const SafetensorsFile f =
      load_safetensors(std::string(GLIMPSE_TEST_FIXTURES) + "/glimpse_torch_round_trip.safetensors");
  auto get = [&](const std::string& name) {
    for (const auto& [n, t] : f.tensors)
      if (n == name) return t;
    ADD_FAILURE() << "fixture lacks " << name;
    return Tensor();
  };
  for (const std::string arch : {"small-gap", "bn-gap", "bn-gap-fine", "vgg16-gap", "resnet18-gap"}) {
    if (kSanitized && arch == "vgg16-gap") continue;  // Release build only
    Rng rng(1);
    auto model = make_model(arch, 3, 32, rng);
    for (auto& [name, t] : model->state()) t.copy_from(fill(name, t.shape()));
    NoGradGuard no_grad;
    model->eval();
    glimpse::testing::expect_close(arch + " logits", (*model)(get(arch + ".input")), get(arch + ".logits"), 1e-4);
  }
}
