// Device dispatch (core/dispatch.h) and the CUDA ops behind it.
//
// DeviceDispatch runs in every build, on any machine: where no real CUDA allocator is registered
// (CPU-only build, or no GPU), it registers host memory as the "CUDA" allocator for the test, so
// tensors report cuda:0 while living in host memory, and checks the errors of dispatch itself:
// an op with no CUDA kernel names the op and the device, operands on two devices name both, and
// to() round-trips. No kernel ever reads such a tensor: every error fires before a kernel would.
//
// CudaOps (CUDA builds) compares every dispatched op, forward and backward, on cuda:0 against the
// CPU, and W1 training and Grad-CAM end to end. Tolerances, stated per test: 1e-4 relative for the
// ops (cuDNN runs with CUDNN_FMA_MATH, ConvSettings::allow_tf32 = false, and cuBLAS in its default
// FP32 math mode, so no TF32 is involved); 1e-3 for the 20 W1 training losses and the Grad-CAM maps
// (many ops in a row, reductions in another order). Without a usable GPU each of them skips, naming
// the reason cuda::init() gives: none passes vacuously.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "attribution/attribution.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/dispatch.h"
#include "core/error.h"
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
  expect_has(error_of([&] { conv2d(x, on_cuda({3, 2, 3, 3}, 0.5f), on_cuda({3}, 0.f)); }),
             std::string("conv2d: ") + why);
  expect_has(error_of([&] { linear(on_cuda({2, 3}, 1.f), on_cuda({4, 3}, 1.f), on_cuda({4}, 0.f)); }),
             std::string("linear: ") + why);
  expect_has(error_of([&] { cross_entropy(on_cuda({2, 3}, 0.f), {0, 2}); }), std::string("cross_entropy: ") + why);
  expect_has(error_of([&] { add(x, x); }), std::string("add: ") + why);
  expect_has(error_of([&] { x.add_(x); }), std::string("add_: ") + why);
  Tensor rm = on_cuda({2}, 0.f), rv = on_cuda({2}, 1.f);
  expect_has(error_of([&] { batch_norm(x, Tensor(), Tensor(), rm, rv, true); }), std::string("batch_norm: ") + why);
  expect_has(error_of([&] { pad2d(x, 1, 1, 1, 1); }), std::string("pad2d: ") + why);
  expect_has(error_of([&] { concat({x, x}, 1); }), std::string("concat: ") + why);
  expect_has(error_of([&] { max(x, 1); }), std::string("max: ") + why);
  expect_has(error_of([&] { bce_with_logits(x, on_cuda({1, 2, 4, 4}, 0.5f)); }),
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
  expect_has(error_of([&] { linear(c, Tensor::ones({4, 3}), on_cuda({4}, 1.f)); }),
             "linear: operands on cpu and cuda:0");
  expect_has(error_of([&] { conv2d(Tensor::ones({1, 2, 4, 4}), on_cuda({3, 2, 3, 3}, 1.f), Tensor()); }),
             "conv2d: operands on cpu and cuda:0");
  expect_has(error_of([&] { cross_entropy(Tensor::zeros({2, 3}), {0, 1}, on_cuda({3}, 1.f)); }),
             "cross_entropy: operands on cpu and cuda:0");
  // dispatch() itself, for a kernel whose op does not compare its operands: checked before the
  // kernel table is even consulted.
  Tensor out = on_cuda({2, 3}, 0.f);
  expect_has(error_of([&] {
               dispatch("relu", out.device(), &relu_backward, &DeviceKernels::relu_backward, out, c, g,
                        ReluRule::Standard);
             }),
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
  expect_has(error_of([&] { (*net)(Tensor::ones({1, 3, 16, 16}, Device::cuda(0))); }),
             "conv2d: no CUDA implementation registered");
  net->to(Device::cpu());
  size_t i = 0;
  for (auto& [name, t] : net->state()) {
    EXPECT_TRUE(t.device().is_cpu()) << name;
    EXPECT_EQ(t.to_vector(), before[i++]) << name;
  }
}

// One op with its inputs: f maps the inputs (all on one device) to an output. `frozen` inputs take
// no gradient (so a backward without that gradient runs); with `nan_every` > 0, every nan_every-th
// value of input 0 is NaN (a NaN the CPU propagates must appear at the same place on the device, and
// one it does not must not: the comparison counts a one-sided NaN as an infinite error).
struct OpCase {
  std::string name;
  std::vector<Shape> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  std::vector<size_t> frozen = {};
  int64_t nan_every = 0;
};

// Runs f on the CPU and on cuda:0 (a GPU, or the host stand-in) with the same inputs and the same
// output gradient; compares the outputs and every input's gradient within `tol`.
void check_op(const OpCase& c, uint64_t seed, double tol) {
  SCOPED_TRACE(c.name);
  Rng rng(seed);
  std::vector<Tensor> cpu_in, gpu_in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    Tensor t = Tensor::uniform(c.inputs[i], rng, -1.f, 1.f);
    if (i == 0 && c.nan_every > 0)
      for (int64_t j = 0; j < t.numel(); j += c.nan_every) t.data()[j] = std::numeric_limits<float>::quiet_NaN();
    const bool grad = std::find(c.frozen.begin(), c.frozen.end(), i) == c.frozen.end();
    cpu_in.push_back(t.clone().set_requires_grad(grad));
    gpu_in.push_back(t.to(Device::cuda(0)).set_requires_grad(grad));
  }
  Tensor y_cpu = c.f(cpu_in), y_gpu = c.f(gpu_in);
  ASSERT_EQ(y_gpu.device(), Device::cuda(0));
  expect_close(c.name + " forward", y_gpu, y_cpu, tol);
  if (!y_cpu.requires_grad()) return;
  Tensor gy = Tensor::uniform(y_cpu.shape(), rng, -1.f, 1.f);
  y_cpu.backward(gy);
  y_gpu.backward(gy.to(Device::cuda(0)));
  for (size_t i = 0; i < cpu_in.size(); ++i)
    if (cpu_in[i].grad().defined())  // an input the op takes no gradient for (class weights) has none
      expect_close(c.name + " grad " + std::to_string(i), gpu_in[i].grad(), cpu_in[i].grad(), tol);
}

// The four ops that had no CUDA twin until their dispatch slots came, forward and backward (targets
// for bce mapped into [0, 1]; pos_weight made positive). Inputs without a gradient (the targets,
// the class weights) are not compared.
std::vector<OpCase> shape_and_max_cases() {
  return {
      {"concat (dim 1, three inputs)", {{2, 3, 4}, {2, 1, 4}, {2, 5, 4}},
       [](auto& v) { return concat({v[0], v[1], v[2]}, 1); }},
      {"concat (last dim)", {{3, 2}, {3, 4}}, [](auto& v) { return concat({v[0], v[1]}, -1); }},
      {"pad2d", {{2, 3, 5, 4}}, [](auto& v) { return pad2d(v[0], 1, 2, 3, 0, -0.5f); }},
      {"max (dim 1)", {{3, 7, 5}}, [](auto& v) { return max(v[0], 1); }},
      {"max (dim 0, keepdim)", {{4, 6}}, [](auto& v) { return max(v[0], 0, true); }},
      {"max (all)", {{5, 3}}, [](auto& v) { return max(v[0]); }},
      {"bce_with_logits", {{6, 3}, {6, 3}},
       [](auto& v) { return bce_with_logits(v[0], mul_scalar(add_scalar(v[1], 1.f), 0.5f)); }},
      {"bce_with_logits (pos_weight)", {{6, 3}, {6, 3}, {3}},
       [](auto& v) {
         return bce_with_logits(mul_scalar(v[0], 4.f), mul_scalar(add_scalar(v[1], 1.f), 0.5f),
                                add_scalar(abs(v[2]), 0.5f));
       }},
  };
}

// A batch-norm call with its running statistics made on the input's device (not compared).
Tensor bn(const std::vector<Tensor>& v, bool training) {
  const int64_t C = v[0].size(1);
  Tensor rm = Tensor::zeros({C}, v[0].device()), rv = Tensor::ones({C}, v[0].device());
  return batch_norm(v[0], v.size() > 1 ? v[1] : Tensor(), v.size() > 2 ? v[2] : Tensor(), rm, rv, training);
}

// The shapes and values where a device most often parts from the CPU: empty batches, channels and
// inner dimensions (which cuDNN and cuBLAS refuse), NaN inputs, gradients not wanted, and the
// less common options.
std::vector<OpCase> edge_cases() {
  const auto pad1 = Conv2dOptions().padding(1);
  const auto two = Pool2dOptions::square(2, 2);
  return {
      {"conv2d, empty batch", {{0, 3, 8, 8}, {4, 3, 3, 3}, {4}}, [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); }},
      {"conv2d, no input channels", {{2, 0, 5, 5}, {4, 0, 3, 3}, {4}},
       [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); }},
      {"conv2d, empty plane with padding", {{2, 3, 0, 4}, {4, 3, 1, 1}, {4}},
       [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); }},
      {"conv2d, bias gradient only", {{2, 3, 6, 6}, {4, 3, 3, 3}, {4}},
       [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); }, {0, 1}},
      {"conv2d, NaN input", {{1, 2, 6, 6}, {3, 2, 3, 3}, {3}}, [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); },
       {}, 17},
      {"batch_norm train, 3-D input", {{4, 3, 5}, {3}, {3}}, [](auto& v) { return bn(v, true); }},
      {"batch_norm train, no input gradient", {{4, 3, 3, 3}, {3}, {3}}, [](auto& v) { return bn(v, true); }, {0}},
      {"batch_norm eval, empty batch", {{0, 3, 4, 4}, {3}, {3}}, [](auto& v) { return bn(v, false); }},
      {"batch_norm eval, 2-D input", {{5, 4}, {4}, {4}}, [](auto& v) { return bn(v, false); }},
      {"matmul, K = 0", {{5, 0}, {0, 3}}, [](auto& v) { return matmul(v[0], v[1]); }},
      {"matmul, N = 0", {{5, 7}, {7, 0}}, [](auto& v) { return matmul(v[0], v[1]); }},
      {"matmul, M = 0", {{0, 7}, {7, 3}}, [](auto& v) { return matmul(v[0], v[1]); }},
      {"linear, empty batch", {{0, 8}, {3, 8}, {3}}, [](auto& v) { return linear(v[0], v[1], v[2]); }},
      {"linear, no input features", {{4, 0}, {3, 0}, {3}}, [](auto& v) { return linear(v[0], v[1], v[2]); }},
      {"upsample_bilinear, align_corners", {{2, 3, 5, 6}}, [](auto& v) { return upsample_bilinear(v[0], 11, 7, true); }},
      {"upsample_bilinear, align_corners to 1x1", {{1, 2, 4, 4}},
       [](auto& v) { return upsample_bilinear(v[0], 1, 1, true); }},
      {"relu_max_pool2x2, NaN input", {{2, 3, 9, 7}}, [](auto& v) { return relu_max_pool2x2(v[0]); }, {}, 5},
      {"max_pool2d, NaN input", {{2, 3, 8, 8}}, [two](auto& v) { return max_pool2d(v[0], two); }, {}, 7},
      {"relu, NaN input", {{3, 11}}, [](auto& v) { return relu(v[0]); }, {}, 4},
      {"global_avg_pool, NaN input", {{2, 3, 4, 4}}, [](auto& v) { return global_avg_pool(v[0]); }, {}, 21},
      {"sum (all), NaN input", {{4, 9}}, [](auto& v) { return sum(v[0]); }, {}, 13},
      {"sum (dim 1), empty dim", {{3, 0, 4}}, [](auto& v) { return sum(v[0], 1); }},
  };
}

// The stand-in's allocator and kernel table: every slot runs its CPU twin on host copies, so the
// values must equal the CPU's (tolerance 0).
using StandInOps = glimpse::testing::StandInTest;

TEST_F(StandInOps, ConcatPad2dMaxBceMatchTheCpu) {
  uint64_t seed = 300;
  for (const auto& c : shape_and_max_cases()) check_op(c, seed++, 0.0);
}

// The edge cases through dispatch: on the stand-in they prove the CPU accepts each of them and that
// nothing on the way to the device kernel refuses them; on a GPU (CudaOps) they test the kernels.
TEST_F(StandInOps, EdgeCasesMatchTheCpu) {
  uint64_t seed = 500;
  for (const auto& c : edge_cases()) check_op(c, seed++, 0.0);
}

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

constexpr double kOpTol = 1e-4;    // one op, FP32 throughout (no TF32)
constexpr double kChainTol = 1e-3;  // 20 training steps, or a whole Grad-CAM

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::init()) GTEST_SKIP() << "no usable CUDA device: " << cuda::unavailable_reason();
  }
};

TEST_F(CudaOps, EveryDispatchedOpMatchesTheCpu) {
  const auto pad1 = Conv2dOptions().padding(1);
  const std::vector<OpCase> cases = {
      {"add (broadcast)", {{2, 3, 4, 5}, {1, 3, 1, 1}}, [](auto& v) { return add(v[0], v[1]); }},
      {"sub", {{2, 3, 4}, {2, 3, 4}}, [](auto& v) { return sub(v[0], v[1]); }},
      {"mul (broadcast)", {{4, 5}, {5}}, [](auto& v) { return mul(v[0], v[1]); }},
      {"exp", {{3, 7}}, [](auto& v) { return exp(v[0]); }},
      {"mul_scalar", {{3, 7}}, [](auto& v) { return mul_scalar(v[0], -2.5f); }},
      {"relu", {{2, 3, 5, 5}}, [](auto& v) { return relu(v[0]); }},
      {"leaky_relu", {{2, 3, 5, 5}}, [](auto& v) { return leaky_relu(v[0], 0.1f); }},
      {"softmax", {{4, 7}}, [](auto& v) { return softmax(v[0], 1); }},
      {"log_softmax (dim 0)", {{5, 3, 2}}, [](auto& v) { return log_softmax(v[0], 0); }},
      {"sum (dim)", {{3, 4, 5}}, [](auto& v) { return sum(v[0], 1); }},
      {"mean (all)", {{3, 4, 5}}, [](auto& v) { return mean(v[0]); }},
      {"matmul", {{5, 7}, {7, 3}}, [](auto& v) { return matmul(v[0], v[1]); }},
      {"linear", {{6, 128}, {3, 128}, {3}}, [](auto& v) { return linear(v[0], v[1], v[2]); }},
      {"conv2d 3x3 pad 1 + bias", {{2, 3, 9, 11}, {8, 3, 3, 3}, {8}},
       [pad1](auto& v) { return conv2d(v[0], v[1], v[2], pad1); }},
      {"conv2d stride 2, groups 2", {{2, 4, 9, 9}, {6, 2, 3, 3}, {6}},
       [](auto& v) { return conv2d(v[0], v[1], v[2], Conv2dOptions().stride(2).group(2)); }},
      {"conv2d_relu (inference)", {{2, 3, 8, 8}, {4, 3, 3, 3}, {4}},
       [pad1](auto& v) {
         NoGradGuard ng;
         return conv2d_relu(v[0], v[1], v[2], pad1);
       }},
      {"max_pool2d 2x2", {{2, 3, 8, 9}}, [](auto& v) { return max_pool2d(v[0], Pool2dOptions::square(2, 2)); }},
      {"max_pool2d 3x3/2 pad 1", {{2, 3, 9, 9}},
       [](auto& v) { return max_pool2d(v[0], Pool2dOptions::square(3, 2, 1)); }},
      {"relu_max_pool2x2 (odd)", {{2, 3, 9, 7}}, [](auto& v) { return relu_max_pool2x2(v[0]); }},
      {"avg_pool2d 3x3/2 pad 1", {{2, 3, 9, 8}},
       [](auto& v) { return avg_pool2d(v[0], Pool2dOptions::square(3, 2, 1)); }},
      {"global_avg_pool", {{3, 5, 6, 7}}, [](auto& v) { return global_avg_pool(v[0]); }},
      {"upsample_bilinear", {{2, 3, 5, 6}}, [](auto& v) { return upsample_bilinear(v[0], 16, 13); }},
      {"cross_entropy", {{6, 4}}, [](auto& v) { return cross_entropy(v[0], {0, 3, 1, 1, 2, 0}); }},
      {"cross_entropy (weighted)", {{6, 4}, {4}},
       [](auto& v) { return cross_entropy(v[0], {0, 3, 1, 1, 2, 0}, add_scalar(abs(v[1]), 0.5f)); }},
  };
  uint64_t seed = 100;
  for (const auto& c : cases) check_op(c, seed++, kOpTol);
}

// concat, pad2d, max and bce_with_logits on a GPU (the stand-in checks their plumbing above).
TEST_F(CudaOps, ConcatPad2dMaxBceMatchTheCpu) {
  uint64_t seed = 300;
  for (const auto& c : shape_and_max_cases()) check_op(c, seed++, kOpTol);
}

TEST_F(CudaOps, EdgeCasesMatchTheCpu) {
  uint64_t seed = 500;
  for (const auto& c : edge_cases()) check_op(c, seed++, kOpTol);
}

// Past one launch's reach: more rows than the 65,535 blocks of a row launch, and more elements
// than the 65,535 x 256 threads of an element launch (2^24 + a few), so every grid-stride loop
// takes a second turn.
TEST_F(CudaOps, LargeTensorsTakeASecondGridStride) {
  const int64_t rows = 70000, elements = (int64_t(1) << 24) + 4099;
  const std::vector<OpCase> cases = {
      {"relu, 2^24 + 4099 values", {{elements}}, [](auto& v) { return relu(v[0]); }},
      {"add (broadcast), 70000 rows", {{rows, 3}, {3}}, [](auto& v) { return add(v[0], v[1]); }},
      {"global_avg_pool, 70000 planes", {{rows, 1, 2, 2}}, [](auto& v) { return global_avg_pool(v[0]); }},
      {"softmax, 70000 rows", {{rows, 3}}, [](auto& v) { return softmax(v[0], 1); }},
      {"sum (dim 0), 70000 rows", {{rows, 3}}, [](auto& v) { return sum(v[0], 0); }},
      {"sum (all), 2^24 + 4099 values", {{elements}}, [](auto& v) { return sum(v[0]); }},
      {"linear bias gradient, 70000 rows", {{rows, 4}, {2, 4}, {2}}, [](auto& v) { return linear(v[0], v[1], v[2]); }},
  };
  uint64_t seed = 700;
  for (const auto& c : cases) check_op(c, seed++, kOpTol);
}

// relu_max_pool2x2 and relu under the deconvnet and guided backward rules.
TEST_F(CudaOps, ReluRulesMatchTheCpu) {
  for (ReluRule rule : {ReluRule::Standard, ReluRule::Deconvnet, ReluRule::Guided}) {
    ReluRuleGuard guard(rule);
    check_op({"relu_max_pool2x2, rule " + std::to_string(static_cast<int>(rule)), {{2, 3, 8, 8}},
              [](auto& v) { return relu_max_pool2x2(v[0]); }},
             7, kOpTol);
    check_op({"relu, rule " + std::to_string(static_cast<int>(rule)), {{2, 3, 5, 5}},
              [](auto& v) { return relu(v[0]); }},
             8, kOpTol);
  }
}

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
