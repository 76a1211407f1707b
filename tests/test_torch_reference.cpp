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
#include "tests/support.h"

using namespace glimpse;
using glimpse::testing::expect_close;

namespace {

const std::string kReference = std::string(GLIMPSE_TEST_FIXTURES) + "/small_gap_reference.safetensors";
constexpr double kTolerance = 1e-4;

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
  expect_close("logits", logits, ref.at("logits"), kTolerance);
  expect_close(prefix + "loss", loss, ref.at(prefix + "loss"), kTolerance);
  for (const auto& [name, p] : model->named_parameters()) {
    expect_close(prefix + "grad." + name, p.grad(), ref.at(prefix + "grad." + name), kTolerance);
  }
}

}  // namespace

TEST(TorchReference, SmallGapNetForwardBackward) { run_case("", Tensor()); }

TEST(TorchReference, SmallGapNetWeightedCrossEntropy) {
  SafetensorsFile ref = load_safetensors(kReference);
  run_case("case2.", ref.at("case2.class_weights"));
}
