// Device dispatch (core/dispatch.h) and the CUDA ops behind it.
//
// DeviceDispatch runs in every build, on any machine: where no real CUDA allocator is registered
// (CPU-only build, or no GPU), it registers host memory as the "CUDA" allocator for the test, so
// tensors report cuda:0 while living in host memory, and checks the errors of dispatch itself:
// an op with no CUDA kernel names the op and the device, operands on two devices name both, and
// to() round-trips. No kernel ever reads such a tensor: every error fires before a kernel would.
//
// CudaOps (CUDA builds) runs W1 training and Grad-CAM end to end on cuda:0 against the CPU, within
// 1e-3 (the 20 W1 training losses and the Grad-CAM maps: many ops in a row, reductions in another
// order). Every single op, forward and backward, is compared in tests/test_op_table.cpp. Without a
// usable GPU each test skips, naming the reason cuda::init() gives: none passes vacuously.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "attribution/attribution.h"
#include "autograd/functions.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/grad_mode.h"
#include "core/ops/activation.h"
#include "layers/models.h"
#include "layers/optim.h"
#include "tests/host_stand_in.h"
#include "tests/support.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

using namespace glimpse;
using glimpse::testing::error_of;
using glimpse::testing::expect_close;

namespace {

// The stand-in's allocator only: its kernel table stays empty, as in a build without CUDA.
class DeviceDispatch : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef GLIMPSE_WITH_CUDA
    cuda::init();  // a real GPU registers the real allocator, which must not be replaced
#endif
    stand_in_.emplace(/*with_kernels=*/false);
    if (!stand_in_->active())
      GTEST_SKIP() << "a real CUDA allocator is registered (a GPU is present): CudaOps covers the device; the "
                      "host-backed stand-in would replace the real allocator";
  }
  // Every tensor of the test body is gone by now, so none is freed through an absent allocator.
  void TearDown() override { stand_in_.reset(); }
  static Tensor on_cuda(const Shape& shape, float value) { return Tensor::full(shape, value, Device::cuda(0)); }

  std::optional<glimpse::testing::HostStandInScope> stand_in_;
};

void expect_has(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "expected \"" << part << "\" in: " << msg;
}

TEST_F(DeviceDispatch, OpWithoutCudaKernelNamesOpAndDevice) {
  Tensor x = on_cuda({1, 2, 4, 4}, 1.f);
  ASSERT_EQ(x.device().str(), "cuda:0");
  const char* why = "no CUDA implementation registered (built without CUDA?)";
  expect_has(error_of([&] { relu(x); }), std::string("relu: ") + why);
  expect_has(error_of([&] { max_pool2d(x, Pool2dOptions::square(2, 2)); }), std::string("max_pool2d: ") + why);
  expect_has(error_of([&] { relu_max_pool2x2(x); }), std::string("relu_max_pool2x2: ") + why);
  expect_has(error_of([&] { global_avg_pool(x); }), std::string("global_avg_pool: ") + why);
  expect_has(error_of([&] {
               conv2d(x, on_cuda({3, 2, 3, 3}, 0.5f), on_cuda({3}, 0.f));
             }),
             std::string("conv2d: ") + why);
  expect_has(error_of([&] {
               linear(on_cuda({2, 3}, 1.f), on_cuda({4, 3}, 1.f), on_cuda({4}, 0.f));
             }),
             std::string("linear: ") + why);
  expect_has(error_of([&] { cross_entropy(on_cuda({2, 3}, 0.f), {0, 2}); }), std::string("cross_entropy: ") + why);
  expect_has(error_of([&] { add(x, x); }), std::string("add: ") + why);
  expect_has(error_of([&] { x.add_(x); }), std::string("add_: ") + why);
  Tensor rm = on_cuda({2}, 0.f), rv = on_cuda({2}, 1.f);
  expect_has(error_of([&] { batch_norm(x, Tensor(), Tensor(), rm, rv, true); }), std::string("batch_norm: ") + why);
  expect_has(error_of([&] { pad2d(x, 1, 1, 1, 1); }), std::string("pad2d: ") + why);
  expect_has(error_of([&] { concat({x, x}, 1); }), std::string("concat: ") + why);
  expect_has(error_of([&] { max(x, 1); }), std::string("max: ") + why);
  expect_has(error_of([&] {
               bce_with_logits(x, on_cuda({1, 2, 4, 4}, 0.5f));
             }),
             std::string("bce_with_logits: ") + why);
  // The error says where the tensor is and what to do.
  expect_has(error_of([&] { relu(x); }), "the tensor is on cuda:0, move it with .to(Device::cpu())");
}

TEST_F(DeviceDispatch, OptimizerOnCudaParameterNamesItself) {
  Tensor p = on_cuda({3}, 1.f).set_requires_grad();
  p.impl()->grad = on_cuda({3}, 0.5f).impl_ptr();
  SGD sgd({p}, SGDOptions{});
  expect_has(error_of([&] { sgd.step(); }), "SGD: no CUDA implementation registered");
  Adam adam({p}, AdamOptions{});
  expect_has(error_of([&] { adam.step(); }), "Adam: no CUDA implementation registered");
}

TEST_F(DeviceDispatch, OperandsOnTwoDevicesNameBoth) {
  Tensor c = Tensor::ones({2, 3}), g = on_cuda({2, 3}, 1.f);
  expect_has(error_of([&] { add(c, g); }), "add: operands on cpu and cuda:0");
  expect_has(error_of([&] { mul(g, c); }), "mul: operands on cuda:0 and cpu");
  expect_has(error_of([&] { matmul(c, on_cuda({3, 2}, 1.f)); }), "matmul: operands on cpu and cuda:0");
  expect_has(error_of([&] { linear(c, on_cuda({4, 3}, 1.f), Tensor()); }), "linear: operands on cpu and cuda:0");
  expect_has(error_of([&] {
               linear(c, Tensor::ones({4, 3}), on_cuda({4}, 1.f));
             }),
             "linear: operands on cpu and cuda:0");
  expect_has(error_of([&] {
               conv2d(Tensor::ones({1, 2, 4, 4}), on_cuda({3, 2, 3, 3}, 1.f), Tensor());
             }),
             "conv2d: operands on cpu and cuda:0");
  expect_has(error_of([&] {
               cross_entropy(Tensor::zeros({2, 3}), {0, 1}, on_cuda({3}, 1.f));
             }),
             "cross_entropy: operands on cpu and cuda:0");
  // dispatch() itself, for a kernel whose op does not compare its operands: checked before the
  // kernel table is even consulted.
  Tensor out = on_cuda({2, 3}, 0.f);
  expect_has(
      error_of([&] { dispatch("relu", out.device(), GLIMPSE_KERNEL(relu_backward), out, c, g, ReluRule::Standard); }),
      "relu: operands on cuda:0 and cpu");
}

TEST_F(DeviceDispatch, ToRoundTripsValues) {
  Rng rng(7);
  Tensor x = Tensor::randn({2, 3, 5}, rng);
  Tensor d = x.to(Device::cuda(0));
  EXPECT_EQ(d.device(), Device::cuda(0));
  EXPECT_EQ(d.shape(), x.shape());
  Tensor back = d.to(Device::cpu());
  EXPECT_TRUE(back.device().is_cpu());
  EXPECT_EQ(back.to_vector(), x.to_vector());
  EXPECT_TRUE(d.to(Device::cuda(0)).same(d));  // already there: the same tensor
  // A slice (offset into the storage) moves as what it shows.
  EXPECT_EQ(x.slice(1, 2).to(Device::cuda(0)).to(Device::cpu()).to_vector(), x.slice(1, 2).contiguous().to_vector());
}

// Module::to swaps the storage under every parameter and buffer: handles held elsewhere (layers,
// an optimizer) follow, and the values survive the round trip.
TEST_F(DeviceDispatch, ModuleToMovesParametersInPlace) {
  Rng rng(3);
  auto net = small_gap_net(3, 16, rng);
  std::vector<std::vector<float>> before;
  for (auto& [name, t] : net->state()) before.push_back(t.to_vector());
  std::vector<Tensor> handles = net->parameters();
  net->to(Device::cuda(0));
  for (auto& [name, t] : net->state()) EXPECT_EQ(t.device(), Device::cuda(0)) << name;
  for (auto& h : handles) EXPECT_EQ(h.device(), Device::cuda(0));
  expect_has(error_of([&] {
               (*net)(Tensor::ones({1, 3, 16, 16}, Device::cuda(0)));
             }),
             "conv2d: no CUDA implementation registered");
  net->to(Device::cpu());
  size_t i = 0;
  for (auto& [name, t] : net->state()) {
    EXPECT_TRUE(t.device().is_cpu()) << name;
    EXPECT_EQ(t.to_vector(), before[i++]) << name;
  }
}

// The stand-in's allocator and kernel table: every slot runs its CPU twin on host copies, so the
// values must equal the CPU's (tolerance 0).
using StandInOps = glimpse::testing::StandInTest;

// Still refused on the device: a target outside [0, 1], found on the host copy.
TEST_F(StandInOps, BceRefusesABadTargetOnTheDevice) {
  Tensor x = Tensor::zeros({2, 2}, Device::cuda(0)), y = Tensor::full({2, 2}, 1.5f, Device::cuda(0));
  expect_has(error_of([&] { bce_with_logits(x, y); }), "bce_with_logits: target 1.5 at element 0 is outside [0, 1]");
  expect_has(error_of([&] { bce_with_logits(x, Tensor::zeros({2, 2})); }), "bce_with_logits");
}

}  // namespace

// ---- the CUDA ops against the CPU ------------------------------------------------------------------
#ifdef GLIMPSE_WITH_CUDA
namespace {

constexpr double kChainTol = 1e-3;  // 20 training steps, or a whole Grad-CAM

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::init()) GTEST_SKIP() << "no usable CUDA device: " << cuda::unavailable_reason();
  }
};

// W1 (small-gap, 3x64x64, 3 classes) trained 20 steps on each device from the same weights on the
// same 20 batches: the losses agree within 1e-3 (relative to max(1, |loss|)), for SGD and Adam.
void train_w1_on_both(const std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>& make_opt) {
  Rng init_cpu(11), init_gpu(11);
  auto net_cpu = small_gap_net(3, 64, init_cpu);
  auto net_gpu = small_gap_net(3, 64, init_gpu);
  net_gpu->to(Device::cuda(0));
  auto opt_cpu = make_opt(net_cpu->parameters());
  auto opt_gpu = make_opt(net_gpu->parameters());
  Rng data(12);
  for (int step = 0; step < 20; ++step) {
    Tensor x = Tensor::uniform({8, 3, 64, 64}, data, -1.f, 1.f);
    std::vector<int64_t> y(8);
    for (auto& t : y) t = static_cast<int64_t>(data.uniform(0.f, 3.f)) % 3;
    float losses[2];
    int i = 0;
    for (auto [net, opt, dev] : {std::tuple{net_cpu.get(), opt_cpu.get(), Device::cpu()},
                                 std::tuple{net_gpu.get(), opt_gpu.get(), Device::cuda(0)}}) {
      opt->zero_grad();
      Tensor loss = cross_entropy((*net)(x.to(dev)), y);
      loss.backward();
      opt->step();
      losses[i++] = loss.item();
    }
    EXPECT_NEAR(losses[1], losses[0], kChainTol * std::max(1.f, std::fabs(losses[0]))) << "step " << step;
  }
}

TEST_F(CudaOps, W1TrainingLossesMatchTheCpuSgd) {
  train_w1_on_both([](std::vector<Tensor> p) {
    return std::make_unique<SGD>(std::move(p), SGDOptions{.lr = 0.01f, .momentum = 0.9f});
  });
}

TEST_F(CudaOps, W1TrainingLossesMatchTheCpuAdam) {
  train_w1_on_both([](std::vector<Tensor> p) { return std::make_unique<Adam>(std::move(p), AdamOptions{}); });
}

// Grad-CAM of a W1 net on each device: the same targets and the same maps within 1e-3.
TEST_F(CudaOps, W1GradCamMatchesTheCpu) {
  Rng init_cpu(21), init_gpu(21), data(22);
  auto net_cpu = small_gap_net(3, 64, init_cpu);
  auto net_gpu = small_gap_net(3, 64, init_gpu);
  net_gpu->to(Device::cuda(0));
  Tensor x = Tensor::uniform({2, 3, 64, 64}, data, -1.f, 1.f);
  attr::AttributionMap a = attr::gradcam(*net_cpu, x);
  attr::AttributionMap b = attr::gradcam(*net_gpu, x.to(Device::cuda(0)));
  EXPECT_EQ(b.targets, a.targets);
  expect_close("gradcam raw", b.raw, a.raw, kChainTol);
  expect_close("gradcam map", b.map, a.map, kChainTol);
}

}  // namespace
#endif  // GLIMPSE_WITH_CUDA
