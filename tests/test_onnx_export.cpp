// ONNX export (interop/onnx_export.h) checked by software that is not glimpse:
//  - the ONNX project's checker (libonnx) accepts every exported file, read back from disk, for
//    every architecture and the opsets 13..17;
//  - OpenCV's dnn module (libopencv-dnn-dev) runs the file and gives the probabilities (relative
//    error <= 1e-4 per element) and the class activation maps (<= 1e-4 of each map's largest
//    magnitude) that glimpse gives -- softmax(model(x)) and attr::cam()'s raw map for every class --
//    on real ISIC 2017 photos (skipped without ../shared/data/isic2017) and on random input
//    (always), at batch 2 and again at batch 1 (the batch dimension is dynamic).
// The large networks are random-initialised at small inputs (vgg16-gap 64 px, resnet18-gap 64 px),
// with random batch-norm statistics so that the BatchNormalization nodes are exercised.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "attribution/attribution.h"
#include "autograd/functions.h"
#include "common.h"
#include "core/grad_mode.h"
#include "core/rng.h"
#include "data/data.h"
#include "export.h"
#include "layers/checkpoint.h"
#include "layers/interop/onnx_export.h"
#include "layers/layers.h"
#include "layers/models.h"
#include "support.h"

#ifdef GLIMPSE_WITH_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif
#ifdef GLIMPSE_TEST_OPENCV_DNN
#include <opencv2/dnn.hpp>
#endif

namespace fs = std::filesystem;
using namespace glimpse;
using glimpse::testing::error_of;

namespace {

// Under AddressSanitizer (the CI's Debug build) the VGG-16 runs take ~30 s each; they run in the
// Release ctest, and the sanitizer build checks the same code paths on the smaller networks.
using glimpse::testing::kSanitized;

struct Arch {
  const char* name;
  int64_t size;
};
// Small inputs keep the whole file at a few seconds; every architecture still downsamples to a
// feature map of at least 2x2.
const Arch kArchs[] = {{"small-gap", 32}, {"bn-gap", 32}, {"bn-gap-fine", 32}, {"vgg16-gap", 64}, {"resnet18-gap", 64}};

// A model with non-trivial batch-norm statistics and affine parameters (fresh ones are 0/1).
std::shared_ptr<Model> make_test_model(const std::string& arch, int64_t size, uint64_t seed) {
  Rng rng(seed);
  auto model = make_model(arch, 3, size, rng);
  for (auto& [name, m] : model->named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      const int64_t c = bn->num_features;
      bn->running_mean.copy_from(Tensor::uniform({c}, rng, -0.2f, 0.2f));
      bn->running_var.copy_from(Tensor::uniform({c}, rng, 0.5f, 2.f));
      bn->weight.copy_from(Tensor::uniform({c}, rng, 0.5f, 1.5f));
      bn->bias.copy_from(Tensor::uniform({c}, rng, -0.2f, 0.2f));
    }
  model->eval();
  return model;
}

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("glimpse_onnx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST(OnnxExport, RefusesWhatItCannotExport) {
  // An architecture outside the exportable list is refused by name, in every build.
  EXPECT_NE(
      error_of([] { interop::check_onnx_exportable("lenet-gap"); }).find("architecture 'lenet-gap' cannot be exported"),
      std::string::npos);
  auto model = make_test_model("small-gap", 16, 1);
  model->info.name = "my-own-net";
  const std::string e = error_of([&] { interop::onnx_model_bytes(*model); });
  EXPECT_NE(e.find("'my-own-net' cannot be exported"), std::string::npos) << e;
  EXPECT_NE(e.find("small-gap, bn-gap, bn-gap-fine, vgg16-gap, resnet18-gap"), std::string::npos) << e;
  if (!interop::onnx_export_available()) {
    model->info.name = "small-gap";
    const std::string why = error_of([&] { interop::onnx_model_bytes(*model); });
    EXPECT_NE(why.find("libonnx-dev"), std::string::npos) << why;
    GTEST_SKIP() << "ONNX export not built: " << interop::onnx_unavailable_reason();
  }
  model->info.name = "small-gap";
  for (int opset : {12, 18}) {
    const std::string o = error_of([&] { interop::onnx_model_bytes(*model, {opset, {}}); });
    EXPECT_NE(o.find("opset " + std::to_string(opset) + " is not supported; give one from 13 to 17"), std::string::npos)
        << o;
  }
  // A module with no ONNX translation is named by its dotted name.
  Rng rng(2);
  auto odd = make_model("small-gap", 3, 16, rng);
  auto& features = dynamic_cast<Sequential&>(odd->find("features"));
  features.add("gelu_like", std::make_shared<GlobalAvgPool>());
  const std::string m = error_of([&] { interop::onnx_model_bytes(*odd); });
  EXPECT_NE(m.find("module 'features.gelu_like' (GlobalAvgPool) has no ONNX translation"), std::string::npos) << m;
}

#ifdef GLIMPSE_WITH_ONNX
// Every architecture, every supported opset: the file on disk passes the ONNX checker (its
// path-reading entry point, so the bytes are re-parsed), with the declared interface.
TEST(OnnxExport, CheckerAcceptsEveryArchitectureAndOpset) {
  for (const Arch& a : kArchs) {
    auto model = make_test_model(a.name, a.size, 7);
    for (int opset = interop::kOnnxMinOpset; opset <= interop::kOnnxMaxOpset; ++opset) {
      // The heavy net's five files differ only in their opset header: two of them are enough.
      const bool heavy = std::string(a.name) == "vgg16-gap" || (kSanitized && std::string(a.name) == "resnet18-gap");
      if (heavy && opset != interop::kOnnxMaxOpset && (kSanitized || opset != interop::kOnnxMinOpset)) continue;
      const std::string path = temp_path(std::string(a.name) + "_" + std::to_string(opset) + ".onnx");
      const interop::OnnxExportInfo info = interop::export_onnx(*model, path, {opset, {{"arch", a.name}}});
      SCOPED_TRACE(path);
      EXPECT_NO_THROW(onnx::checker::check_model(path));
      onnx::ModelProto proto;
      std::ifstream in(path, std::ios::binary);
      ASSERT_TRUE(proto.ParseFromIstream(&in));
      EXPECT_EQ(proto.opset_import(0).version(), opset);
      EXPECT_EQ(uint64_t(fs::file_size(path)), info.bytes);
      ASSERT_EQ(proto.graph().input_size(), 1);
      ASSERT_EQ(proto.graph().output_size(), 2);
      const auto& in_shape = proto.graph().input(0).type().tensor_type().shape();
      EXPECT_EQ(in_shape.dim(0).dim_param(), "N");  // dynamic batch
      EXPECT_EQ(in_shape.dim(2).dim_value(), a.size);
      EXPECT_EQ(proto.graph().output(0).name(), "probabilities");
      const auto& cam = proto.graph().output(1).type().tensor_type().shape();
      EXPECT_EQ(proto.graph().output(1).name(), "cam");
      EXPECT_EQ(cam.dim(0).dim_param(), "N");
      EXPECT_EQ(cam.dim(1).dim_value(), 3);
      EXPECT_EQ(cam.dim(2).dim_value(), info.cam_height);
      EXPECT_EQ(proto.metadata_props(0).key(), "arch");
      fs::remove(path);
    }
  }
}
#endif

// `melanoma export`: a checkpoint with an architecture that cannot be exported is refused by name,
// before its weights are read; a melanoma checkpoint becomes a file the checker accepts, carrying
// the checkpoint's metadata and the input normalisation.
TEST(OnnxExport, MelanomaExportCommand) {
  Rng rng(3);
  auto model = make_model("bn-gap", 3, 32, rng);
  mel::ModelMeta meta;
  meta.arch = "bn-gap";
  meta.size = 32;
  meta.class_names = mel::class_names();
  const std::string ckpt = temp_path("bn.safetensors"), onnx_path = temp_path("bn.onnx");
  save_checkpoint(*model, ckpt, mel::meta_to_map(meta));
  std::map<std::string, std::string> foreign = mel::meta_to_map(meta);
  foreign["arch"] = "lenet-gap";
  const std::string foreign_ckpt = temp_path("lenet.safetensors");
  save_checkpoint(*model, foreign_ckpt, foreign);

  if (!interop::onnx_export_available()) {
    const std::string e = error_of([&] { mel::run_export({ckpt, onnx_path, 13}); });
    EXPECT_NE(e.find("ONNX export is unavailable"), std::string::npos) << e;
    GTEST_SKIP() << "ONNX export not built: " << interop::onnx_unavailable_reason();
  }
  const std::string e = error_of([&] { mel::run_export({foreign_ckpt, onnx_path, 13}); });
  EXPECT_NE(e.find("architecture 'lenet-gap' cannot be exported to ONNX"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(onnx_path));

  const interop::OnnxExportInfo info = mel::run_export({ckpt, onnx_path, 15});
  EXPECT_EQ(info.opset, 15);
  EXPECT_EQ(info.cam_height, 4);
#ifdef GLIMPSE_WITH_ONNX
  EXPECT_NO_THROW(onnx::checker::check_model(onnx_path));
  onnx::ModelProto proto;
  std::ifstream in(onnx_path, std::ios::binary);
  ASSERT_TRUE(proto.ParseFromIstream(&in));
  std::map<std::string, std::string> props;
  for (const auto& p : proto.metadata_props()) props[p.key()] = p.value();
  EXPECT_EQ(props["glimpse.arch"], "bn-gap");
  EXPECT_EQ(props["glimpse.class_names"], "nevus,melanoma,seborrheic_keratosis");
  EXPECT_EQ(props["normalize_mean"], "0.485,0.456,0.406");
  EXPECT_EQ(props["cam_layer"], "features.23");
#endif
  fs::remove(ckpt);
  fs::remove(foreign_ckpt);
  fs::remove(onnx_path);
}

#if defined(GLIMPSE_WITH_ONNX) && defined(GLIMPSE_TEST_OPENCV_DNN)
namespace {

cv::Mat to_blob(const Tensor& x) {
  Tensor c = x.contiguous();
  const int dims[4] = {int(c.size(0)), int(c.size(1)), int(c.size(2)), int(c.size(3))};
  cv::Mat blob(4, dims, CV_32F);
  std::memcpy(blob.ptr<float>(), c.data(), sizeof(float) * c.numel());
  return blob;
}

Tensor from_mat(const cv::Mat& m) {
  Shape shape;
  for (int i = 0; i < m.dims; ++i) shape.push_back(m.size[i]);
  Tensor t = Tensor::empty(shape);
  EXPECT_TRUE(m.isContinuous());
  std::memcpy(t.data(), m.ptr<float>(), sizeof(float) * t.numel());
  return t;
}

// OpenCV's outputs for images `x` against glimpse's, rows [first, first + x.size(0)) of the reference.
void compare(cv::dnn::Net& net, const Tensor& x, const Tensor& probs_ref, const std::vector<Tensor>& cams_ref,
             int64_t first, const std::string& what) {
  net.setInput(to_blob(x), interop::kOnnxInput);
  std::vector<cv::Mat> outs;
  net.forward(outs, std::vector<cv::String>{interop::kOnnxProbabilities, interop::kOnnxCam});
  ASSERT_EQ(outs.size(), 2u);
  const Tensor probs = from_mat(outs[0]), cams = from_mat(outs[1]);
  const int64_t n = x.size(0), classes = probs_ref.size(1);
  ASSERT_EQ(probs.shape(), (Shape{n, classes})) << what;
  ASSERT_EQ(cams.dim(), 4) << what;
  ASSERT_EQ(cams.size(0), n);
  ASSERT_EQ(cams.size(1), classes);
  double p_err = 0, c_err = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < classes; ++c) {
      const float ref = probs_ref.at({first + i, c});
      p_err = std::max(p_err, std::fabs(double(probs.at({i, c})) - ref) / std::fabs(double(ref)));
      // The map of image i, class c against attr::cam's raw map: same h x w, error relative to its scale.
      const Tensor& mref = cams_ref[c];
      ASSERT_EQ(cams.size(2), mref.size(1)) << what;
      ASSERT_EQ(cams.size(3), mref.size(2)) << what;
      const int64_t hw = mref.size(1) * mref.size(2);
      Tensor got = Tensor::from_vector(
          {hw}, std::vector<float>(cams.data() + (i * classes + c) * hw, cams.data() + (i * classes + c + 1) * hw));
      Tensor want = Tensor::from_vector(
          {hw}, std::vector<float>(mref.data() + (first + i) * hw, mref.data() + (first + i + 1) * hw));
      c_err = std::max(c_err, glimpse::testing::relative_error(got, want));
    }
  std::printf("  %-30s probabilities rel err %.2e, CAMs rel err %.2e (cam %lldx%lld)\n", what.c_str(), p_err, c_err,
              (long long)cams.size(2), (long long)cams.size(3));
  EXPECT_LE(p_err, 1e-4) << what;
  EXPECT_LE(c_err, 1e-4) << what;
}

// Runs every architecture on `images` [N >= 2, 3, S0, S0] resized per architecture by `load`.
void opencv_matches_glimpse(const std::function<Tensor(int64_t size)>& load, const std::string& source) {
  for (const Arch& a : kArchs) {
    if (kSanitized && std::string(a.name) == "vgg16-gap") {
      std::printf("  vgg16-gap: compared in the Release build only (30 s under AddressSanitizer)\n");
      continue;
    }
    auto model = make_test_model(a.name, a.size, 11);
    const Tensor x = load(a.size);
    ASSERT_GE(x.size(0), 2);
    // glimpse: probabilities and every class's CAM (attr::cam's raw map, [N, h, w]).
    Tensor probs;
    {
      NoGradGuard no_grad;
      probs = softmax((*model)(x), 1).contiguous();
    }
    std::vector<Tensor> cams;
    for (int64_t c = 0; c < 3; ++c) {
      attr::Options opt;
      opt.targets.assign(x.size(0), c);
      opt.upsample = opt.normalize = false;
      cams.push_back(attr::cam(*model, x, opt).raw.contiguous());
    }
    const std::string bytes = interop::onnx_model_bytes(*model, {interop::kOnnxMaxOpset, {}});
    cv::dnn::Net net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    compare(net, x, probs, cams, 0, std::string(a.name) + " " + source + " batch " + std::to_string(x.size(0)));
    // The same network, now fed one image: the batch dimension is not baked in.
    compare(net, x.slice(1, 2), probs, cams, 1, std::string(a.name) + " " + source + " batch 1");
  }
}

}  // namespace

TEST(OnnxExport, OpenCvDnnMatchesGlimpseOnIsicPhotos) {
  const std::string isic = data::find_isic2017();
  if (isic.empty()) GTEST_SKIP() << "../shared/data/isic2017 not present (set GLIMPSE_ISIC_DIR)";
  const data::Dataset ds = data::Dataset::open(isic, "val");
  ASSERT_GE(ds.size(), 3u);
  // A nevus and a melanoma (the first of each in the validation split).
  std::vector<std::string> paths;
  for (int64_t want : {0, 1})
    for (const auto& s : ds.samples)
      if (s.label == want) {
        paths.push_back(s.image_path);
        break;
      }
  ASSERT_EQ(paths.size(), 2u);
  opencv_matches_glimpse(
      [&](int64_t size) {
        return concat({data::load_for_model(paths[0], size), data::load_for_model(paths[1], size)}, 0).contiguous();
      },
      "ISIC val");
}

TEST(OnnxExport, OpenCvDnnMatchesGlimpseOnRandomInput) {
  opencv_matches_glimpse(
      [](int64_t size) {
        Rng rng(5);
        return Tensor::randn({2, 3, size, size}, rng);
      },
      "random input");
}
#else
TEST(OnnxExport, OpenCvDnnMatchesGlimpse) {
  GTEST_SKIP() << (interop::onnx_export_available() ? "OpenCV's dnn module (libopencv-dnn-dev) not found"
                                                    : "ONNX export not built: " + interop::onnx_unavailable_reason());
}
#endif
