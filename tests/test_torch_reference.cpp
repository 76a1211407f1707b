// glimpse against PyTorch on the W1 network (small_gap_net(3)): the fixture of
// tools/make_torch_reference.py holds PyTorch's weights, a fixed input batch, the logits, the
// cross-entropy loss and every parameter gradient (computed in float64), plain and with class
// weights. We load the weights by name, run forward and backward, and compare.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/io/safetensors.h"
#include "layers/checkpoint.h"
#include "layers/models.h"

using namespace glimpse;

namespace {

const std::string kReference = std::string(GLIMPSE_TEST_FIXTURES) + "/small_gap_reference.safetensors";
constexpr double kTolerance = 1e-4;

// max|a - b| / max(max|b|, 1e-6), over the whole tensor; b is the reference.
double relative_error(const Tensor& a, const Tensor& b) {
  std::vector<float> va = a.contiguous().to_vector(), vb = b.contiguous().to_vector();
  EXPECT_EQ(va.size(), vb.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(va.size(), vb.size()); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(va[i]) - vb[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(vb[i])));
  }
  return diff / std::max(scale, 1e-6);
}

void expect_close(const std::string& what, const Tensor& got, const Tensor& ref) {
  ASSERT_TRUE(got.defined()) << what << ": no value (a gradient that never arrived?)";
  ASSERT_EQ(got.numel(), ref.numel()) << what << ": " << shape_str(got.shape()) << " vs reference "
                                      << shape_str(ref.shape());
  double err = relative_error(got, ref);
  std::printf("  %-34s %-16s rel err %.3e\n", what.c_str(), shape_str(ref.shape()).c_str(), err);
  EXPECT_LE(err, kTolerance) << what;
  EXPECT_FALSE(std::isnan(err)) << what;
}

void run_case(const std::string& prefix, const Tensor& class_weights) {
  SafetensorsFile ref = load_safetensors(kReference);
  auto model = small_gap_net(3, 16);
  CheckpointLoad r = load_checkpoint(*model, kReference, /*strict=*/false);  // the file holds more than weights
  EXPECT_TRUE(r.missing.empty()) << "parameters absent from the reference file: " << r.missing.size();
  ASSERT_EQ(r.loaded.size(), 8u);
  for (const auto& [name, p] : model->named_parameters()) {
    EXPECT_EQ(p.to_vector(), ref.at(name).to_vector()) << name << " was not loaded exactly";
  }

  Tensor x = ref.at("input");
  std::vector<int64_t> targets;
  for (float t : ref.at("targets").to_vector()) targets.push_back(static_cast<int64_t>(t));

  model->zero_grad();
  Tensor logits = (*model)(x);
  Tensor loss = cross_entropy(logits, targets, class_weights);
  loss.backward();

  std::printf("case %s\n", prefix.empty() ? "1 (plain cross-entropy)" : "2 (class weights)");
  expect_close("logits", logits, ref.at("logits"));
  expect_close(prefix + "loss", loss, ref.at(prefix + "loss"));
  for (const auto& [name, p] : model->named_parameters()) {
    expect_close(prefix + "grad." + name, p.grad(), ref.at(prefix + "grad." + name));
  }
}

}  // namespace

TEST(TorchReference, SmallGapNetForwardBackward) { run_case("", Tensor()); }

TEST(TorchReference, SmallGapNetWeightedCrossEntropy) {
  SafetensorsFile ref = load_safetensors(kReference);
  run_case("case2.", ref.at("case2.class_weights"));
}
