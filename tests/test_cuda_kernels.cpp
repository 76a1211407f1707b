// What only the CUDA backend has: the launchers' own refusals, and cuDNN's algorithm settings, cache
// and workspace. Every op's values against the CPU -- every kernel, every shape the hand-written
// per-kernel tests used to cover, forward and backward -- are in the one table of
// tests/test_op_table.cpp, run there on the stand-in and on a GPU. Built only with the CUDA backend
// (tests/CMakeLists.txt).
//
// Tolerance: relative error (tests/support.h, NaN-aware) <= 1e-4. cuDNN convolution runs with
// CUDNN_FMA_MATH (ConvSettings::allow_tf32 = false, the default), so no TF32 rounding is involved.
//
// Without a usable GPU every device test skips (GTEST_SKIP) naming the reason from cuda::init():
// none passes vacuously and none fails. CudaKernelsHost runs everywhere: it checks that the
// launchers refuse bad shapes on the host, before any device work.
#include <gtest/gtest.h>

#ifdef GLIMPSE_WITH_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/ops/conv2d.h"
#include "cuda/check.h"
#include "cuda/cudnn_batch_norm.h"
#include "cuda/cudnn_conv.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"
#include "cuda/runtime.h"
#include "tests/support.h"

using namespace glimpse;
using glimpse::testing::expect_close;

namespace {

constexpr double kTol = 1e-4;

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::init())
      GTEST_SKIP() << "no usable CUDA device, so no CUDA kernel can run: " << cuda::unavailable_reason();
  }
};

// ---- host <-> device through the RAII buffer ----

template <typename T>
cuda::DeviceBuffer upload(const T* data, size_t count) {
  cuda::DeviceBuffer b(std::max<size_t>(count, 1) * sizeof(T), 0);
  if (count) CUDA_CHECK(cudaMemcpy(b.data(), data, count * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
cuda::DeviceBuffer upload(const Tensor& t) {
  Tensor c = t.contiguous();
  return upload(c.data(), static_cast<size_t>(c.numel()));
}
template <typename T>
cuda::DeviceBuffer upload(const std::vector<T>& v) {
  return upload(v.data(), v.size());
}
// A device buffer for `numel` floats, uninitialised.
cuda::DeviceBuffer device_floats(int64_t numel) {
  return cuda::DeviceBuffer(std::max<int64_t>(numel, 1) * sizeof(float), 0);
}

// Waits for the kernels (surfacing their errors) and copies back as a CPU tensor.
Tensor download(const cuda::DeviceBuffer& b, const Shape& shape) {
  CUDA_CHECK(cudaDeviceSynchronize());
  Tensor t = Tensor::empty(shape);
  if (t.numel()) CUDA_CHECK(cudaMemcpy(t.data(), b.data(), t.numel() * sizeof(float), cudaMemcpyDeviceToHost));
  return t;
}
Tensor randn(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  return Tensor::randn(s, rng);
}

std::string str(const Shape& s) { return shape_str(s); }

// ---- host-side validation: runs without a GPU (the launchers refuse before touching the device) ----

TEST(CudaKernelsHost, LaunchersRefuseBadShapesNamingThem) {
  using glimpse::testing::error_of;
  std::string msg = error_of([] {
    cuda::binary_forward(nullptr, {3, 4}, nullptr, {3, 4}, nullptr, {5}, BinaryOp::Add);
  });
  EXPECT_NE(msg.find("cannot be broadcast"), std::string::npos) << msg;
  msg = error_of([] { cuda::binary_forward(nullptr, {3, 5}, nullptr, {3, 4}, nullptr, {4}, BinaryOp::Mul); });
  EXPECT_NE(msg.find("is not the broadcast of"), std::string::npos) << msg;
  msg = error_of([] { cuda::reduce_sum_to(nullptr, {2, 3}, nullptr, {4, 3}); });
  EXPECT_NE(msg.find("cannot reduce [4, 3] to [2, 3]"), std::string::npos) << msg;
  msg = error_of([] {
    cuda::ConvGeometry g{1, 6, 8, 8, 4, 3, 3, Conv2dOptions().group(4)};
    cuda::conv2d_forward(nullptr, nullptr, nullptr, nullptr, g);
  });
  EXPECT_NE(msg.find("groups = 4 must divide C = 6 and K = 4"), std::string::npos) << msg;
  msg = error_of([] {
    cuda::ConvGeometry g{1, 3, 2, 2, 4, 5, 5, Conv2dOptions()};
    cuda::conv2d_backward_data(nullptr, nullptr, nullptr, g);
  });
  EXPECT_NE(msg.find("does not fit the padded 2x2 input"), std::string::npos) << msg;
  msg = error_of([] {
    cuda::batch_norm_forward_train(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 3, 1,
                                   0.1f, 1e-5f);
  });
  EXPECT_NE(msg.find("more than one value per channel"), std::string::npos) << msg;
  msg = error_of([] { cuda::max_pool2d_backward(nullptr, nullptr, nullptr, 1, 1, 4, 4, Pool2dOptions::square(2, 2)); });
  EXPECT_NE(msg.find("needs the argmax offsets"), std::string::npos) << msg;
  msg = error_of([] {
    cuda::adam_step(nullptr, nullptr, nullptr, nullptr, nullptr, 4, 0.1f, 0.9f, 0.999f, 1e-8f, 0.f, false, 0);
  });
  EXPECT_NE(msg.find("steps count from 1"), std::string::npos) << msg;
}

// ---- cuDNN convolution -------------------------------------------------------------------------

struct ConvCase {
  int64_t N, C, H, W, K, R, S;
  Conv2dOptions opt;
};

void check_conv(const ConvCase& c, const std::string& mode, uint64_t seed) {
  const int64_t G = c.opt.groups;
  cuda::ConvGeometry g{c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.opt};
  const int64_t P = g.P(), Q = g.Q();
  const std::string tag = mode + " x" + str({c.N, c.C, c.H, c.W}) + " w" + str({c.K, c.C / G, c.R, c.S}) + " s" +
                          std::to_string(c.opt.stride_h) + " p" + std::to_string(c.opt.pad_h) + " d" +
                          std::to_string(c.opt.dilation_h) + " g" + std::to_string(G);
  Tensor x = randn({c.N, c.C, c.H, c.W}, seed), w = randn({c.K, c.C / G, c.R, c.S}, seed + 1) * 0.3f,
         b = randn({c.K}, seed + 2), gy = randn({c.N, c.K, P, Q}, seed + 3);
  Tensor gx0 = randn(x.shape(), seed + 4), gw0 = randn(w.shape(), seed + 5), gb0 = randn({c.K}, seed + 6);
  Tensor y = Tensor::empty(gy.shape()), gx = gx0.clone(), gw = gw0.clone(), gb = gb0.clone();
  cpu::conv2d_forward(y, x, w, b, c.opt);
  cpu::conv2d_backward_data(gx, gy, w, c.opt);
  cpu::conv2d_backward_filter(gw, gb, gy, x, c.opt);
  auto dx = upload(x), dw = upload(w), db = upload(b), dgy = upload(gy), dy = device_floats(y.numel());
  auto dgx = upload(gx0), dgw = upload(gw0), dgb = upload(gb0);
  cuda::conv2d_forward(dy.as<float>(), dx.as<float>(), dw.as<float>(), db.as<float>(), g);
  cuda::conv2d_backward_data(dgx.as<float>(), dgy.as<float>(), dw.as<float>(), g);
  cuda::conv2d_backward_filter(dgw.as<float>(), dgb.as<float>(), dgy.as<float>(), dx.as<float>(), g);
  expect_close("conv fwd " + tag, download(dy, y.shape()), y, kTol);
  expect_close("conv bwd data (overwrites) " + tag, download(dgx, x.shape()), gx, kTol);
  expect_close("conv bwd filter (overwrites) " + tag, download(dgw, w.shape()), gw, kTol);
  expect_close("conv bwd bias (overwrites) " + tag, download(dgb, {c.K}), gb, kTol);
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {2, 3, 11, 13, 8, 3, 3, Conv2dOptions().padding(1)},
      {3, 5, 9, 7, 4, 3, 3, Conv2dOptions().stride(2)},
      {2, 4, 13, 11, 6, 3, 3, Conv2dOptions().padding(2).dilation(2)},
      {2, 6, 10, 9, 9, 3, 3, Conv2dOptions().padding(1).group(3)},
      {1, 8, 7, 7, 8, 3, 3, Conv2dOptions().padding(1).group(8)},  // depthwise
      {2, 3, 8, 9, 5, 1, 1, Conv2dOptions()},
      {1, 2, 15, 17, 3, 5, 3, Conv2dOptions{.stride_h = 2, .stride_w = 1, .pad_h = 2, .pad_w = 1}},
  };
  return cases;
}

// Restores the process-wide settings after a test that changes them.
struct SettingsGuard {
  cuda::ConvSettings saved = cuda::conv_settings();
  ~SettingsGuard() { cuda::set_conv_settings(saved); }
};

TEST_F(CudaKernels, CudnnConvolutionDeterministicAndBenchmark) {
  SettingsGuard guard;
  cuda::set_conv_settings({.benchmark = false, .deterministic = true});
  uint64_t seed = 300;
  for (const ConvCase& c : conv_cases()) {
    check_conv(c, "deterministic", seed += 10);
    cuda::ConvGeometry g{c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.opt};
    for (cuda::ConvPass pass :
         {cuda::ConvPass::Forward, cuda::ConvPass::BackwardData, cuda::ConvPass::BackwardFilter}) {
      const cuda::ConvAlgoChoice a = cuda::conv_algorithm(pass, g);
      EXPECT_TRUE(a.deterministic) << "pass " << static_cast<int>(pass) << " algo " << a.algo;
      EXPECT_EQ(a.math, CUDNN_FMA_MATH);
    }
  }
  cuda::set_conv_settings({.benchmark = true});
  for (const ConvCase& c : conv_cases()) check_conv(c, "benchmark", seed += 10);
}

TEST_F(CudaKernels, CudnnAlgorithmChoiceIsCachedPerShape) {
  SettingsGuard guard;
  cuda::set_conv_settings({});
  cuda::clear_conv_algo_cache();
  EXPECT_EQ(cuda::conv_algo_cache_size(), 0u);
  const ConvCase& c = conv_cases()[0];
  cuda::ConvGeometry g{c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.opt};
  const cuda::ConvAlgoChoice first = cuda::conv_algorithm(cuda::ConvPass::Forward, g);
  EXPECT_EQ(cuda::conv_algo_cache_size(), 1u);
  const cuda::ConvAlgoChoice again = cuda::conv_algorithm(cuda::ConvPass::Forward, g);
  EXPECT_EQ(cuda::conv_algo_cache_size(), 1u);  // same shape: no new entry
  EXPECT_EQ(first.algo, again.algo);
  g.N += 1;
  cuda::conv_algorithm(cuda::ConvPass::Forward, g);
  EXPECT_EQ(cuda::conv_algo_cache_size(), 2u);  // another batch size: another entry
}

TEST_F(CudaKernels, WorkspaceOutOfMemoryNamesSizes) {
  const std::string msg = glimpse::testing::error_of([] { cuda::workspace(size_t(1) << 46); });  // 64 TiB
  EXPECT_NE(msg.find("out of GPU memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free of"), std::string::npos) << msg;
  EXPECT_NE(cuda::workspace(1024), nullptr);  // still usable afterwards
  cuda::release_workspace();
}

}  // namespace

#else  // !GLIMPSE_WITH_CUDA

// tests/CMakeLists.txt builds this file only with the CUDA backend; this keeps a stray build honest.
TEST(CudaKernels, NotBuilt) { GTEST_SKIP() << "glimpse was built without the CUDA backend (GLIMPSE_CUDA=OFF)"; }

#endif  // GLIMPSE_WITH_CUDA
