// Every hand-written CUDA kernel (cuda/kernels.h) and cuDNN wrapper (cuda/cudnn_conv.h,
// cuda/cudnn_batch_norm.h) against its CPU twin in core/, autograd/, layers/ and attribution/, on
// random inputs with odd sizes. Built only with the CUDA backend (tests/CMakeLists.txt).
//
// Tolerance: relative error (tests/support.h: max |gpu - cpu| / max |cpu|) <= 1e-4 everywhere.
// cuDNN convolution is run with CUDNN_FMA_MATH (ConvSettings::allow_tf32 = false, the default), so
// no TF32 rounding is involved and the same 1e-4 applies. The GPU reductions are deterministic
// (fixed order), but their order differs from the CPU's, hence a tolerance rather than equality.
//
// Without a usable GPU every device test skips (GTEST_SKIP) naming the reason from cuda::init():
// none passes vacuously and none fails. CudaKernelsHost runs everywhere: it checks that the
// launchers refuse bad shapes on the host, before any device work.
#include <gtest/gtest.h>

#ifdef GLIMPSE_WITH_CUDA

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/ops/activation.h"
#include "core/ops/batch_norm.h"
#include "core/ops/conv2d.h"
#include "core/ops/elementwise.h"
#include "core/ops/pool2d.h"
#include "core/ops/reduce.h"
#include "core/ops/upsample.h"
#include "cuda/check.h"
#include "cuda/cudnn_batch_norm.h"
#include "cuda/cudnn_conv.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"
#include "cuda/runtime.h"
#include "layers/optim.h"
#include "tests/support.h"

using namespace glimpse;
using glimpse::testing::expect_close;

namespace {

constexpr double kTol = 1e-4;

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::init()) GTEST_SKIP() << "no usable CUDA device, so no CUDA kernel can run: " << cuda::unavailable_reason();
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
cuda::DeviceBuffer device_floats(int64_t numel) { return cuda::DeviceBuffer(std::max<int64_t>(numel, 1) * sizeof(float), 0); }

// Waits for the kernels (surfacing their errors) and copies back as a CPU tensor.
Tensor download(const cuda::DeviceBuffer& b, const Shape& shape) {
  CUDA_CHECK(cudaDeviceSynchronize());
  Tensor t = Tensor::empty(shape);
  if (t.numel()) CUDA_CHECK(cudaMemcpy(t.data(), b.data(), t.numel() * sizeof(float), cudaMemcpyDeviceToHost));
  return t;
}
template <typename T>
std::vector<T> download_vec(const cuda::DeviceBuffer& b, size_t count) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> v(count);
  if (count) CUDA_CHECK(cudaMemcpy(v.data(), b.data(), count * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

Tensor randn(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  return Tensor::randn(s, rng);
}
Tensor uniform(const Shape& s, uint64_t seed, float lo, float hi) {
  Rng rng(seed);
  return Tensor::uniform(s, rng, lo, hi);
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
  msg = error_of([] { cuda::adam_step(nullptr, nullptr, nullptr, nullptr, nullptr, 4, 0.1f, 0.9f, 0.999f, 1e-8f, 0.f, false, 0); });
  EXPECT_NE(msg.find("steps count from 1"), std::string::npos) << msg;
}

// ---- element-wise ------------------------------------------------------------------------------

TEST_F(CudaKernels, BinaryOpsBroadcastLikeTheCpu) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 5, 7, 9}, {3, 5, 7, 9}}, {{3, 5, 7, 9}, {1, 5, 1, 1}}, {{2, 1, 7, 1}, {1, 5, 1, 9}},
      {{5, 7, 9}, {9}},             {{1}, {4, 3}},                {{3, 5, 1, 9}, {5, 7, 1}}};
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div};
  const char* names[] = {"add", "sub", "mul", "div"};
  uint64_t seed = 1;
  for (const auto& [sa, sb] : cases)
    for (int k = 0; k < 4; ++k) {
      Tensor a = randn(sa, seed++), b = uniform(sb, seed++, 0.5f, 2.f);  // b away from 0 for div
      const Shape so = broadcast_shapes(sa, sb, "test");
      Tensor ref = Tensor::empty(so);
      binary_forward(ref, a, b, ops[k]);
      auto da = upload(a), db = upload(b), dout = device_floats(shape_numel(so));
      cuda::binary_forward(dout.as<float>(), so, da.as<float>(), sa, db.as<float>(), sb, ops[k]);
      expect_close(std::string(names[k]) + " " + str(sa) + " " + str(sb), download(dout, so), ref, kTol);
    }
}

TEST_F(CudaKernels, UnaryAndAffine) {
  const UnaryOp ops[] = {UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Log, UnaryOp::Square,
                         UnaryOp::Abs, UnaryOp::Sigmoid, UnaryOp::Tanh};
  const char* names[] = {"neg", "exp", "log", "square", "abs", "sigmoid", "tanh"};
  const Shape s{3, 7, 11, 13};
  for (int k = 0; k < 7; ++k) {
    Tensor x = ops[k] == UnaryOp::Log ? uniform(s, 10 + k, 0.1f, 3.f) : randn(s, 10 + k);
    Tensor ref = Tensor::empty(s);
    unary_forward(ref, x, ops[k]);
    auto dx = upload(x), dy = device_floats(x.numel());
    cuda::unary_forward(dy.as<float>(), dx.as<float>(), x.numel(), ops[k]);
    expect_close(names[k], download(dy, s), ref, kTol);
  }
  Tensor x = randn(s, 20), ref = Tensor::empty(s);
  affine_forward(ref, x, -1.5f, 0.25f);
  auto dx = upload(x), dy = device_floats(x.numel());
  cuda::affine_forward(dy.as<float>(), dx.as<float>(), x.numel(), -1.5f, 0.25f);
  expect_close("affine", download(dy, s), ref, kTol);
}

TEST_F(CudaKernels, ReduceSumToIsTheBroadcastBackward) {
  const Shape in{3, 5, 7, 9};
  const std::vector<Shape> outs = {{1, 5, 1, 1}, {5, 1, 1}, {9}, {3, 1, 7, 1}, {1}, {3, 5, 7, 9}, {7, 9}};
  Tensor x = randn(in, 30);
  auto dx = upload(x);
  for (const Shape& so : outs) {
    Tensor ref = Tensor::empty(so);
    reduce_sum_to(ref, x);
    auto dout = device_floats(shape_numel(so));
    cuda::reduce_sum_to(dout.as<float>(), so, dx.as<float>(), in);
    expect_close("sum_to " + str(so), download(dout, so), ref, kTol);
  }
}

TEST_F(CudaKernels, BiasAddForwardAndBackward) {
  const int64_t N = 3, C = 7, H = 5, W = 9;
  Tensor x = randn({N, C, H, W}, 40), b = randn({C}, 41), gy = randn({N, C, H, W}, 42), gb0 = randn({C}, 43);
  Tensor ref = Tensor::empty(x.shape());
  binary_forward(ref, x, b.view({1, C, 1, 1}), BinaryOp::Add);
  auto dx = upload(x), db = upload(b), dy = device_floats(x.numel());
  cuda::bias_add_forward(dy.as<float>(), dx.as<float>(), db.as<float>(), N, C, H * W);
  expect_close("bias_add forward", download(dy, x.shape()), ref, kTol);

  Tensor sum = Tensor::empty({1, C, 1, 1});
  reduce_sum_to(sum, gy);
  Tensor gref = gb0.clone();
  gref.add_(sum.view({C}));  // backward accumulates
  auto dgy = upload(gy), dgb = upload(gb0);
  cuda::bias_add_backward(dgb.as<float>(), dgy.as<float>(), N, C, H * W, /*accumulate=*/true);
  expect_close("bias_add backward (+=)", download(dgb, {C}), gref, kTol);
  auto dgb_new = upload(gb0);  // overwritten: the old values must not leak into the result
  cuda::bias_add_backward(dgb_new.as<float>(), dgy.as<float>(), N, C, H * W, /*accumulate=*/false);
  expect_close("bias_add backward (=)", download(dgb_new, {C}), sum.view({C}), kTol);
}

// ---- activations -------------------------------------------------------------------------------

TEST_F(CudaKernels, ReluForwardAndAllThreeBackwardRules) {
  const Shape s{2, 3, 17, 19};
  Tensor x = randn(s, 50), g = randn(s, 51);
  auto dx = upload(x), dg = upload(g), dy = device_floats(x.numel());
  Tensor ref = Tensor::empty(s);
  relu_forward(ref, x);
  cuda::relu_forward(dy.as<float>(), dx.as<float>(), x.numel());
  expect_close("relu forward", download(dy, s), ref, kTol);
  const ReluRule rules[] = {ReluRule::Standard, ReluRule::Deconvnet, ReluRule::Guided};
  const char* names[] = {"relu backward standard", "relu backward deconvnet", "relu backward guided"};
  for (int k = 0; k < 3; ++k) {
    Tensor gref = Tensor::empty(s);
    relu_backward(gref, g, x, rules[k]);
    cuda::relu_backward(dy.as<float>(), dg.as<float>(), dx.as<float>(), x.numel(), rules[k]);
    expect_close(names[k], download(dy, s), gref, kTol);
  }
  Tensor lref = Tensor::empty(s), lgref = Tensor::empty(s);
  leaky_relu_forward(lref, x, 0.07f);
  leaky_relu_backward(lgref, g, x, 0.07f);
  cuda::leaky_relu_forward(dy.as<float>(), dx.as<float>(), x.numel(), 0.07f);
  expect_close("leaky_relu forward", download(dy, s), lref, kTol);
  cuda::leaky_relu_backward(dy.as<float>(), dg.as<float>(), dx.as<float>(), x.numel(), 0.07f);
  expect_close("leaky_relu backward", download(dy, s), lgref, kTol);
}

// ---- pooling -----------------------------------------------------------------------------------

TEST_F(CudaKernels, MaxAndAvgPoolForwardBackward) {
  const std::vector<Pool2dOptions> opts = {Pool2dOptions::square(2, 2), Pool2dOptions::square(3, 2, 1),
                                           Pool2dOptions::square(3, 1, 1), Pool2dOptions::square(2, 1),
                                           Pool2dOptions{3, 2, 2, 1, 1, 0}};
  const std::vector<Shape> shapes = {{2, 3, 11, 13}, {1, 2, 7, 5}, {3, 1, 8, 8}};
  uint64_t seed = 60;
  for (const Shape& s : shapes)
    for (const Pool2dOptions& o : opts) {
      const int64_t N = s[0], C = s[1], H = s[2], W = s[3];
      const int64_t P = window_out_size(H, o.kernel_h, o.stride_h, o.pad_h), Q = window_out_size(W, o.kernel_w, o.stride_w, o.pad_w);
      const Shape so{N, C, P, Q};
      const std::string tag = str(s) + " k" + std::to_string(o.kernel_h) + "x" + std::to_string(o.kernel_w) + " s" +
                              std::to_string(o.stride_h) + "x" + std::to_string(o.stride_w) + " p" +
                              std::to_string(o.pad_h) + "x" + std::to_string(o.pad_w);
      Tensor x = randn(s, seed++), g = randn(so, seed++), gx0 = randn(s, seed++);
      auto dx = upload(x), dg = upload(g), dout = device_floats(N * C * P * Q);
      cuda::DeviceBuffer argmax(N * C * P * Q * sizeof(int32_t), 0);

      Tensor ref = Tensor::empty(so);
      cpu::max_pool2d_forward(ref, x, o);
      cuda::max_pool2d_forward(dout.as<float>(), argmax.as<int32_t>(), dx.as<float>(), N, C, H, W, o);
      expect_close("max_pool fwd " + tag, download(dout, so), ref, kTol);
      Tensor gref = gx0.clone();
      cpu::max_pool2d_backward(gref, g, x, o);
      auto dgx = upload(gx0);
      cuda::max_pool2d_backward(dgx.as<float>(), dg.as<float>(), argmax.as<int32_t>(), N, C, H, W, o);
      expect_close("max_pool bwd (+=) " + tag, download(dgx, s), gref, kTol);

      Tensor aref = Tensor::empty(so);
      cpu::avg_pool2d_forward(aref, x, o);
      cuda::avg_pool2d_forward(dout.as<float>(), dx.as<float>(), N, C, H, W, o);
      expect_close("avg_pool fwd " + tag, download(dout, so), aref, kTol);
      Tensor agref = gx0.clone();
      cpu::avg_pool2d_backward(agref, g, o);
      auto dagx = upload(gx0);
      cuda::avg_pool2d_backward(dagx.as<float>(), dg.as<float>(), N, C, H, W, o);
      expect_close("avg_pool bwd (+=) " + tag, download(dagx, s), agref, kTol);
    }
}

TEST_F(CudaKernels, MaxPoolTiesAndNaNFollowTheCpu) {
  // Ties go to the first cell in row-major order; a NaN wins.
  Tensor x = Tensor::from_vector({1, 1, 4, 4}, {1, 1, 0, 0, 1, 1, 0, 0, 2, 5, std::nanf(""), 3, 5, 2, 3, 3});
  const Pool2dOptions o = Pool2dOptions::square(2, 2);
  Tensor g = Tensor::from_vector({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor ref = Tensor::empty({1, 1, 2, 2}), gref = Tensor::zeros({1, 1, 4, 4});
  cpu::max_pool2d_forward(ref, x, o);
  cpu::max_pool2d_backward(gref, g, x, o);
  auto dx = upload(x), dg = upload(g), dout = device_floats(4), dgx = upload(Tensor::zeros({1, 1, 4, 4}));
  cuda::DeviceBuffer argmax(4 * sizeof(int32_t), 0);
  cuda::max_pool2d_forward(dout.as<float>(), argmax.as<int32_t>(), dx.as<float>(), 1, 1, 4, 4, o);
  cuda::max_pool2d_backward(dgx.as<float>(), dg.as<float>(), argmax.as<int32_t>(), 1, 1, 4, 4, o);
  std::vector<float> got = download(dout, {4}).to_vector(), want = ref.to_vector();
  for (int i = 0; i < 4; ++i) {
    if (std::isnan(want[i])) EXPECT_TRUE(std::isnan(got[i])) << i;
    else EXPECT_EQ(got[i], want[i]) << i;
  }
  EXPECT_EQ(download(dgx, {16}).to_vector(), gref.to_vector());
}

TEST_F(CudaKernels, GlobalAvgPool) {
  const int64_t N = 3, C = 5, H = 7, W = 9;
  Tensor x = randn({N, C, H, W}, 70), g = randn({N, C}, 71), gx0 = randn({N, C, H, W}, 72);
  Tensor ref = Tensor::empty({N, C}), gref = gx0.clone();
  cpu::global_avg_pool_forward(ref, x);
  cpu::global_avg_pool_backward(gref, g);
  auto dx = upload(x), dg = upload(g), dout = device_floats(N * C), dgx = upload(gx0);
  cuda::global_avg_pool_forward(dout.as<float>(), dx.as<float>(), N * C, H * W);
  cuda::global_avg_pool_backward(dgx.as<float>(), dg.as<float>(), N * C, H * W);
  expect_close("global_avg_pool fwd", download(dout, {N, C}), ref, kTol);
  expect_close("global_avg_pool bwd (+=)", download(dgx, x.shape()), gref, kTol);
}

// ---- bilinear resize ---------------------------------------------------------------------------

TEST_F(CudaKernels, UpsampleBilinearBothAlignModes) {
  struct Case {
    int64_t H, W, OH, OW;
  };
  const Case cases[] = {{5, 7, 11, 13}, {7, 7, 64, 64}, {13, 11, 5, 4}, {1, 1, 3, 3}, {4, 4, 1, 1}, {6, 9, 6, 9}, {3, 5, 17, 2}};
  uint64_t seed = 80;
  for (const Case& c : cases)
    for (bool align : {false, true}) {
      const int64_t N = 2, C = 3;
      const std::string tag = std::to_string(c.H) + "x" + std::to_string(c.W) + "->" + std::to_string(c.OH) + "x" +
                              std::to_string(c.OW) + (align ? " align" : "");
      Tensor x = randn({N, C, c.H, c.W}, seed++), g = randn({N, C, c.OH, c.OW}, seed++), gx0 = randn(x.shape(), seed++);
      Tensor ref = Tensor::empty(g.shape()), gref = gx0.clone();
      cpu::upsample_bilinear_forward(ref, x, align);
      cpu::upsample_bilinear_backward(gref, g, align);
      auto dx = upload(x), dg = upload(g), dout = device_floats(g.numel()), dgx = upload(gx0);
      cuda::upsample_bilinear_forward(dout.as<float>(), dx.as<float>(), N * C, c.H, c.W, c.OH, c.OW, align);
      cuda::upsample_bilinear_backward(dgx.as<float>(), dg.as<float>(), N * C, c.H, c.W, c.OH, c.OW, align);
      expect_close("upsample fwd " + tag, download(dout, g.shape()), ref, kTol);
      expect_close("upsample bwd (+=) " + tag, download(dgx, x.shape()), gref, kTol);
    }
}

// ---- reductions and softmax --------------------------------------------------------------------

TEST_F(CudaKernels, SumAndMeanOverAll) {
  for (int64_t n : {1, 255, 256, 257, 100003}) {
    Tensor x = randn({n}, 90 + n);
    auto dx = upload(x), dout = device_floats(1);
    cuda::sum_all_forward(dout.as<float>(), dx.as<float>(), n);
    expect_close("sum n=" + std::to_string(n), download(dout, {}), sum(x), kTol);
    cuda::sum_all_forward(dout.as<float>(), dx.as<float>(), n, 1.f / static_cast<float>(n));
    expect_close("mean n=" + std::to_string(n), download(dout, {}), mean(x), kTol);
    // Backward of mean with upstream gradient 2: gx += 2/n.
    Tensor gx0 = randn({n}, 7), gref = gx0.clone();
    gref.add_(Tensor::full({n}, 2.f / static_cast<float>(n)));
    auto dg = upload(Tensor::full({}, 2.f)), dgx = upload(gx0);
    cuda::sum_all_backward(dgx.as<float>(), dg.as<float>(), n, 1.f / static_cast<float>(n));
    expect_close("mean bwd (+=) n=" + std::to_string(n), download(dgx, {n}), gref, kTol);
  }
}

TEST_F(CudaKernels, SumAndMeanOverOneDim) {
  const Shape s{3, 5, 7, 9};
  Tensor x0 = randn(s, 100);
  for (int64_t dim = 0; dim < 4; ++dim) {
    for (bool is_mean : {false, true}) {
      const std::string tag = std::string(is_mean ? "mean" : "sum") + " dim " + std::to_string(dim);
      Tensor x = x0.detach().set_requires_grad();
      Tensor y = is_mean ? mean(x, dim) : sum(x, dim);
      Tensor g = randn(y.shape(), 101 + dim);
      sum(y * g).backward();  // x.grad = scale * g broadcast along dim
      int64_t d = dim;
      const DimSplit sp = split_at(s, d, "test");
      const float scale = is_mean ? 1.f / static_cast<float>(sp.len) : 1.f;
      // gx starts at 7 everywhere: the backward overwrites, as the CPU twin.
      auto dx = upload(x0), dout = device_floats(y.numel()), dg = upload(g), dgx = upload(Tensor::full(s, 7.f));
      cuda::sum_dim_forward(dout.as<float>(), dx.as<float>(), sp.outer, sp.len, sp.inner, scale);
      cuda::sum_dim_backward(dgx.as<float>(), dg.as<float>(), sp.outer, sp.len, sp.inner, scale);
      expect_close(tag + " fwd", download(dout, y.shape()), y.detach(), kTol);
      expect_close(tag + " bwd", download(dgx, s), x.grad(), kTol);
    }
  }
}

// Softmax and log-softmax share one check: CPU forward/backward against the launchers.
struct SoftmaxPair {
  const char* name;
  void (*cpu_fwd)(Tensor&, const Tensor&, const DimSplit&);
  void (*cpu_bwd)(Tensor&, const Tensor&, const Tensor&, const DimSplit&);
  void (*gpu_fwd)(float*, const float*, int64_t, int64_t, int64_t, cudaStream_t);
  void (*gpu_bwd)(float*, const float*, const float*, int64_t, int64_t, int64_t, cudaStream_t);
};

TEST_F(CudaKernels, SoftmaxAndLogSoftmax) {
  const Shape s{3, 7, 5, 11};
  Tensor x = randn(s, 110) * 3.f, g = randn(s, 111);
  auto dx = upload(x), dg = upload(g), dy = device_floats(x.numel()), dgx = device_floats(x.numel());
  const SoftmaxPair pairs[] = {
      {"softmax", softmax_forward, softmax_backward, cuda::softmax_forward, cuda::softmax_backward},
      {"log_softmax", log_softmax_forward, log_softmax_backward, cuda::log_softmax_forward, cuda::log_softmax_backward}};
  for (const SoftmaxPair& f : pairs)
    for (int64_t dim : {0, 1, 3}) {
      int64_t d = dim;
      const DimSplit sp = split_at(s, d, "test");
      const std::string tag = std::string(f.name) + " dim " + std::to_string(dim);
      Tensor y = Tensor::empty(s), gx = Tensor::empty(s);
      f.cpu_fwd(y, x, sp);
      f.cpu_bwd(gx, g, y, sp);
      f.gpu_fwd(dy.as<float>(), dx.as<float>(), sp.outer, sp.len, sp.inner, 0);
      expect_close(tag + " fwd", download(dy, s), y, kTol);
      f.gpu_bwd(dgx.as<float>(), dg.as<float>(), dy.as<float>(), sp.outer, sp.len, sp.inner, 0);
      expect_close(tag + " bwd", download(dgx, s), gx, kTol);
    }
}

// ---- cross-entropy -----------------------------------------------------------------------------

TEST_F(CudaKernels, CrossEntropyWithAndWithoutClassWeights) {
  const int64_t N = 13, K = 7;
  std::vector<int64_t> targets(N);
  for (int64_t n = 0; n < N; ++n) targets[n] = (n * 5 + 2) % K;
  Tensor weights = uniform({K}, 120, 0.2f, 3.f);
  for (bool weighted : {false, true}) {
    const std::string tag = weighted ? " weighted" : "";
    Tensor logits = (randn({N, K}, 121) * 2.f).set_requires_grad();
    Tensor loss = cross_entropy(logits, targets, weighted ? weights : Tensor());
    loss.backward();
    auto dz = upload(logits.detach()), dt = upload(targets), dw = upload(weights);
    auto dloss = device_floats(1), dwsum = device_floats(1), dlogp = device_floats(N * K), dgz = device_floats(N * K);
    auto dgl = upload(Tensor::full({}, 1.f));
    const float* w = weighted ? dw.as<float>() : nullptr;
    cuda::cross_entropy_forward(dloss.as<float>(), dwsum.as<float>(), dlogp.as<float>(), dz.as<float>(),
                                dt.as<int64_t>(), w, N, K);
    cuda::cross_entropy_backward(dgz.as<float>(), dgl.as<float>(), dlogp.as<float>(), dt.as<int64_t>(), w,
                                 dwsum.as<float>(), N, K);
    expect_close("cross_entropy loss" + tag, download(dloss, {}), loss.detach(), kTol);
    expect_close("cross_entropy grad" + tag, download(dgz, {N, K}), logits.grad(), kTol);
  }
}

// ---- optimizers --------------------------------------------------------------------------------

void set_grad(Tensor& p, const Tensor& g) { p.impl()->grad = g.clone().impl_ptr(); }

TEST_F(CudaKernels, FusedSgdMatchesLayersOptim) {
  const std::vector<SGDOptions> variants = {{.lr = 0.1f},
                                            {.lr = 0.05f, .weight_decay = 0.01f},
                                            {.lr = 0.1f, .momentum = 0.9f},
                                            {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.3f, .weight_decay = 1e-3f},
                                            {.lr = 0.1f, .momentum = 0.8f, .nesterov = true, .weight_decay = 1e-2f}};
  const int64_t n = 1001;
  int v = 0;
  for (const SGDOptions& o : variants) {
    Tensor p = randn({n}, 130 + v).set_requires_grad();
    SGD opt({p}, o);
    auto dp = upload(p.detach()), dbuf = device_floats(n);
    for (int step = 0; step < 3; ++step) {
      Tensor g = randn({n}, 140 + 10 * v + step);
      set_grad(p, g);
      opt.step();
      auto dg = upload(g);
      cuda::sgd_step(dp.as<float>(), dbuf.as<float>(), dg.as<float>(), n, o.lr, o.momentum, o.dampening, o.nesterov,
                     o.weight_decay, step == 0);
    }
    expect_close("sgd variant " + std::to_string(v), download(dp, {n}), p.detach(), kTol);
    ++v;
  }
}

TEST_F(CudaKernels, FusedAdamAndAdamWMatchLayersOptim) {
  const int64_t n = 777;
  int v = 0;
  for (bool decoupled : {false, true})
    for (bool amsgrad : {false, true}) {
      AdamOptions o;
      o.lr = 0.01f;
      o.weight_decay = decoupled ? 0.05f : 0.01f;
      o.amsgrad = amsgrad;
      Tensor p = randn({n}, 150 + v).set_requires_grad();
      std::unique_ptr<Adam> opt;
      if (decoupled) opt = std::make_unique<AdamW>(std::vector<Tensor>{p}, o);
      else opt = std::make_unique<Adam>(std::vector<Tensor>{p}, o);
      auto dp = upload(p.detach()), dm = upload(Tensor::zeros({n})), dv = upload(Tensor::zeros({n})),
           dvmax = upload(Tensor::zeros({n}));
      for (int step = 1; step <= 4; ++step) {
        Tensor g = randn({n}, 160 + 10 * v + step);
        set_grad(p, g);
        opt->step();
        auto dg = upload(g);
        cuda::adam_step(dp.as<float>(), dm.as<float>(), dv.as<float>(), amsgrad ? dvmax.as<float>() : nullptr,
                        dg.as<float>(), n, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, decoupled, step);
      }
      expect_close(std::string(decoupled ? "adamw" : "adam") + (amsgrad ? " amsgrad" : ""), download(dp, {n}),
                   p.detach(), kTol);
      ++v;
    }
}

// ---- attribution helpers -----------------------------------------------------------------------

TEST_F(CudaKernels, CamWeightedSumAndGradientMeans) {
  const int64_t N = 3, K = 11, H = 7, W = 9, P = H * W;
  Tensor A = randn({N, K, H, W}, 170), G = randn({N, K, H, W}, 171);
  // alpha[n,k] = mean over p of G (Grad-CAM), computed here in double as attribution/cam.cpp does.
  Tensor alpha = Tensor::empty({N, K});
  for (int64_t j = 0; j < N * K; ++j) {
    double s = 0;
    for (int64_t p = 0; p < P; ++p) s += G.data()[j * P + p];
    alpha.data()[j] = static_cast<float>(s / P);
  }
  alpha.data()[4] = 0.f;  // a zero weight (skipped channel)
  auto dA = upload(A), dG = upload(G), dalpha = device_floats(N * K), dout = device_floats(N * P);
  cuda::channel_spatial_mean(dalpha.as<float>(), dG.as<float>(), N * K, P);
  Tensor galpha = download(dalpha, {N, K});
  galpha.data()[4] = 0.f;
  expect_close("grad-cam channel means", galpha, alpha, kTol);
  auto dw = upload(alpha);
  for (bool relu : {false, true}) {
    Tensor ref = Tensor::zeros({N, H, W});
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t p = 0; p < P; ++p) ref.data()[n * P + p] += alpha.data()[n * K + k] * A.data()[(n * K + k) * P + p];
    if (relu)
      for (int64_t i = 0; i < ref.numel(); ++i) ref.data()[i] = std::max(ref.data()[i], 0.f);
    cuda::weighted_channel_sum(dout.as<float>(), dA.as<float>(), dw.as<float>(), N, K, P, relu);
    expect_close(std::string("weighted channel sum") + (relu ? " relu" : ""), download(dout, {N, H, W}), ref, kTol);
  }
}

TEST_F(CudaKernels, NormalizeMapsAndThreshold) {
  const int64_t N = 4, H = 13, W = 17, per = H * W;
  Tensor maps = randn({N, H, W}, 180);
  for (int64_t j = 0; j < per; ++j) maps.data()[1 * per + j] = 0.25f;  // constant map -> zeros
  maps.data()[2 * per + 5] = std::numeric_limits<float>::quiet_NaN();  // non-finite map -> zeros
  Tensor ref = attr::normalize_maps(maps);
  auto dm = upload(maps), dout = device_floats(N * per);
  cuda::normalize_maps(dout.as<float>(), dm.as<float>(), N, per);
  Tensor got = download(dout, {N, H, W});
  expect_close("normalize_maps", got, ref, kTol);
  // Threshold one normalized map at 0.5 (what threshold_map does once the threshold is known).
  cuda::DeviceBuffer mask(per, 0);
  cuda::threshold_map(mask.as<uint8_t>(), dout.as<float>(), per, 0.5f);
  std::vector<uint8_t> m = download_vec<uint8_t>(mask, per);
  for (int64_t j = 0; j < per; ++j) ASSERT_EQ(m[j], ref.data()[j] >= 0.5f ? 1 : 0) << j;
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
  expect_close("conv bwd data (+=) " + tag, download(dgx, x.shape()), gx, kTol);
  expect_close("conv bwd filter (+=) " + tag, download(dgw, w.shape()), gw, kTol);
  expect_close("conv bwd bias (+=) " + tag, download(dgb, {c.K}), gb, kTol);
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

TEST_F(CudaKernels, CudnnConvolutionHeuristicFp32) {
  SettingsGuard guard;
  cuda::set_conv_settings({});  // heuristics, FMA math (no TF32): 1e-4 holds
  uint64_t seed = 200;
  for (const ConvCase& c : conv_cases()) check_conv(c, "heuristic", seed += 10);
}

TEST_F(CudaKernels, CudnnConvolutionDeterministicAndBenchmark) {
  SettingsGuard guard;
  cuda::set_conv_settings({.benchmark = false, .deterministic = true});
  uint64_t seed = 300;
  for (const ConvCase& c : conv_cases()) {
    check_conv(c, "deterministic", seed += 10);
    cuda::ConvGeometry g{c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.opt};
    for (cuda::ConvPass pass : {cuda::ConvPass::Forward, cuda::ConvPass::BackwardData, cuda::ConvPass::BackwardFilter}) {
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

// ---- cuDNN batch norm --------------------------------------------------------------------------

TEST_F(CudaKernels, CudnnBatchNormTrainEvalBackward) {
  const int64_t N = 3, C = 5, H = 7, W = 9, L = H * W;
  const float momentum = 0.1f, eps = 1e-5f;
  for (bool affine : {true, false}) {
    const std::string tag = affine ? "" : " (no affine)";
    Tensor x = randn({N, C, H, W}, 400) * 2.f + 0.5f, g = randn(x.shape(), 401);
    Tensor gamma = affine ? uniform({C}, 402, 0.5f, 1.5f) : Tensor(), beta = affine ? randn({C}, 403) : Tensor();
    Tensor rm = randn({C}, 404), rv = uniform({C}, 405, 0.5f, 2.f);
    auto dx = upload(x), dg = upload(g), dy = device_floats(x.numel());
    auto dgamma = affine ? upload(gamma) : cuda::DeviceBuffer(), dbeta = affine ? upload(beta) : cuda::DeviceBuffer();
    const float* pgamma = affine ? dgamma.as<float>() : nullptr;
    const float* pbeta = affine ? dbeta.as<float>() : nullptr;

    for (bool training : {true, false}) {
      const std::string mode = (training ? " train" : " eval") + tag;
      Tensor y = Tensor::empty(x.shape()), smean = Tensor::empty({C}), sinv = Tensor::empty({C});
      Tensor rm_ref = rm.clone(), rv_ref = rv.clone();
      auto drm = upload(rm), drv = upload(rv), dsm = device_floats(C), dsi = device_floats(C);
      if (training) {
        cpu::batch_norm_forward_train(y, smean, sinv, rm_ref, rv_ref, x, gamma, beta, momentum, eps);
        cuda::batch_norm_forward_train(dy.as<float>(), dsm.as<float>(), dsi.as<float>(), drm.as<float>(),
                                       drv.as<float>(), dx.as<float>(), pgamma, pbeta, N, C, L, momentum, eps);
        expect_close("bn running_mean" + mode, download(drm, {C}), rm_ref, kTol);
        expect_close("bn running_var (unbiased)" + mode, download(drv, {C}), rv_ref, kTol);
      } else {
        cpu::batch_norm_forward_eval(y, smean, sinv, x, gamma, beta, rm, rv, eps);
        cuda::batch_norm_forward_eval(dy.as<float>(), dsm.as<float>(), dsi.as<float>(), dx.as<float>(), pgamma, pbeta,
                                      drm.as<float>(), drv.as<float>(), N, C, L, eps);
      }
      expect_close("bn y" + mode, download(dy, x.shape()), y, kTol);
      expect_close("bn save_mean" + mode, download(dsm, {C}), smean, kTol);
      expect_close("bn save_invstd" + mode, download(dsi, {C}), sinv, kTol);

      // Backward, accumulating onto non-zero gradients.
      Tensor gx = randn(x.shape(), 410), ggamma = randn({C}, 411), gbeta = randn({C}, 412);
      auto dgx = upload(gx), dgg = upload(ggamma), dgb = upload(gbeta);
      cpu::batch_norm_backward(gx, ggamma, gbeta, g, x, gamma, smean, sinv, training, eps);
      cuda::batch_norm_backward(dgx.as<float>(), dgg.as<float>(), dgb.as<float>(), dg.as<float>(), dx.as<float>(),
                                pgamma, dsm.as<float>(), dsi.as<float>(), N, C, L, training, eps);
      expect_close("bn gx (+=)" + mode, download(dgx, x.shape()), gx, kTol);
      expect_close("bn ggamma (+=)" + mode, download(dgg, {C}), ggamma, kTol);
      expect_close("bn gbeta (+=)" + mode, download(dgb, {C}), gbeta, kTol);
    }
  }
}

}  // namespace

#else  // !GLIMPSE_WITH_CUDA

// tests/CMakeLists.txt builds this file only with the CUDA backend; this keeps a stray build honest.
TEST(CudaKernels, NotBuilt) { GTEST_SKIP() << "glimpse was built without the CUDA backend (GLIMPSE_CUDA=OFF)"; }

#endif  // GLIMPSE_WITH_CUDA
