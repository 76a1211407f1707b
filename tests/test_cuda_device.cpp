// The CUDA device plumbing: availability reporting (always runs), and with a GPU the caching
// allocator, copies, fill and the RAII resources. Without a GPU the device tests skip, saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/tensor.h"
#include "tests/support.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/resources.h"
#include "cuda/runtime.h"
#include "cuda/tensor_ops.h"
#endif

using namespace glimpse;

using glimpse::testing::error_of;

// Asking for a CUDA tensor where there is none must say why, never crash or return garbage.
TEST(CudaAvailability, UnavailableDeviceSaysWhy) {
#ifdef GLIMPSE_WITH_CUDA
  if (cuda::init()) GTEST_SKIP() << "a CUDA device is present: " << cuda::version_string();
  const std::string why = cuda::unavailable_reason();
  ASSERT_FALSE(why.empty());
  const std::string msg = error_of([] { Tensor::zeros({2}, Device::cuda()); });
  EXPECT_NE(msg.find("unavailable"), std::string::npos) << msg;
  EXPECT_NE(msg.find(why), std::string::npos) << msg;
#else
  const std::string msg = error_of([] { Tensor::zeros({2}, Device::cuda()); });
  EXPECT_NE(msg.find("unavailable"), std::string::npos) << msg;
  EXPECT_NE(msg.find("built without the CUDA backend"), std::string::npos) << msg;
  // The CPU keeps working after the refusal.
  EXPECT_EQ(Tensor::ones({3}).to_vector(), (std::vector<float>{1, 1, 1}));
#endif
}

#ifdef GLIMPSE_WITH_CUDA

TEST(CudaRuntime, VersionsAreConsistent) {
  EXPECT_GT(cuda::runtime_version(), 0);
  EXPECT_GE(cuda::cudnn_compiled_version(), 90000);  // cuDNN 9 headers
  // The library actually loaded must have the major version of the headers (init() refuses otherwise).
  EXPECT_EQ(cuda::cudnn_runtime_version() / 10000, cuda::cudnn_compiled_version() / 10000) << cuda::version_string();
  EXPECT_FALSE(cuda::version_string().empty());
}

TEST(CudaRuntime, CheckedCallsNameTheCallAndHint) {
  const std::string msg = error_of([] { CUDA_CHECK(cudaErrorMemoryAllocation); });
  EXPECT_NE(msg.find("cudaErrorMemoryAllocation"), std::string::npos) << msg;
  EXPECT_NE(msg.find("smaller batch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test_cuda_device.cpp"), std::string::npos) << msg;
  const std::string dnn = error_of([] { CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  EXPECT_NE(dnn.find("cuDNN error"), std::string::npos) << dnn;
  EXPECT_NE(dnn.find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << dnn;
  const std::string blas = error_of([] { CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  EXPECT_NE(blas.find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << blas;
}

// Host-only checks (no device needed): the default-stream rule and the fault classification that
// check_launch (cuda/launch.cuh) uses to say a fault came from an earlier kernel.
TEST(CudaRuntime, OnlyTheDefaultStreamIsAccepted) {
  EXPECT_EQ(error_of([] { cuda::require_default_stream(nullptr, "relu_forward"); }), "(no error)");
  EXPECT_EQ(error_of([] { cuda::require_default_stream(cudaStreamLegacy, "relu_forward"); }), "(no error)");
  const std::string msg =
      error_of([] { cuda::require_default_stream(reinterpret_cast<cudaStream_t>(0x10), "relu_forward"); });
  EXPECT_NE(msg.find("cuda::relu_forward"), std::string::npos) << msg;
  EXPECT_NE(msg.find("only the default stream"), std::string::npos) << msg;
}

TEST(CudaRuntime, KernelFaultsAreTheAsynchronousErrors) {
  for (cudaError_t e : {cudaErrorIllegalAddress, cudaErrorLaunchFailure, cudaErrorAssert, cudaErrorMisalignedAddress})
    EXPECT_TRUE(cuda::is_async_fault(e)) << cudaGetErrorName(e);
  for (cudaError_t e : {cudaErrorInvalidConfiguration, cudaErrorNoKernelImageForDevice, cudaErrorMemoryAllocation,
                        cudaErrorInvalidValue})
    EXPECT_FALSE(cuda::is_async_fault(e)) << cudaGetErrorName(e);
}

// Every dispatch slot gets a CUDA twin from its op's register_<op>() (core/ops/<op>.cu); a slot left
// out would surface only on a GPU, as "no CUDA implementation registered". Host-only: registering
// assigns function pointers and touches no device; the table is restored afterwards.
TEST(CudaRuntime, EveryDispatchSlotHasACudaTwin) {
  const DeviceKernels saved = cuda_kernels();
  cuda_kernels() = DeviceKernels{};
  cuda::register_kernels();
  const DeviceKernels filled = cuda_kernels();
  cuda_kernels() = saved;
#define GLIMPSE_EXPECT_SLOT(name) EXPECT_NE(filled.name, nullptr) << #name " has no CUDA twin";
  GLIMPSE_KERNELS(GLIMPSE_EXPECT_SLOT)
#undef GLIMPSE_EXPECT_SLOT
}

TEST(CudaAllocator, RoundsSizes) {
  EXPECT_EQ(cuda::CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(cuda::CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(cuda::CachingAllocator::round_size((1u << 20) + 1), 2u << 20);
}

class CudaDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0)
      GTEST_SKIP() << "no CUDA device: " << (cuda::init() ? std::string("?") : cuda::unavailable_reason());
    ASSERT_TRUE(cuda::init()) << cuda::unavailable_reason();
  }
};

TEST_F(CudaDevice, RoundTripIsBitExact) {
  Rng rng(7);
  Tensor x = Tensor::randn({3, 5, 7, 11}, rng);
  // Values a careless copy would alter: signed zero, denormals, infinities, NaN payloads.
  float* p = x.data();
  p[0] = -0.f;
  p[1] = std::numeric_limits<float>::denorm_min();
  p[2] = std::numeric_limits<float>::infinity();
  p[3] = -std::numeric_limits<float>::infinity();
  p[4] = std::numeric_limits<float>::quiet_NaN();
  Tensor g = x.to(Device::cuda());
  EXPECT_EQ(g.device(), Device::cuda());
  EXPECT_EQ(g.shape(), x.shape());
  Tensor g2 = g.clone();  // device-to-device copy
  Tensor back = g2.to(Device::cpu());
  ASSERT_EQ(back.numel(), x.numel());
  EXPECT_EQ(std::memcmp(back.data(), x.data(), x.numel() * sizeof(float)), 0);
}

TEST_F(CudaDevice, StridedViewMovesContiguously) {
  Tensor x = Tensor::from_vector({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor rows = x.slice(1, 3).to(Device::cuda());
  EXPECT_EQ(rows.to(Device::cpu()).to_vector(), (std::vector<float>{2, 3, 4, 5}));
}

TEST_F(CudaDevice, FillWorks) {
  for (int64_t n : {1, 255, 256, 257, 1 << 20, (1 << 22) + 3}) {
    Tensor t = Tensor::full({n}, 2.5f, Device::cuda());
    std::vector<float> v = t.to(Device::cpu()).to_vector();
    ASSERT_EQ(static_cast<int64_t>(v.size()), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(v[i], 2.5f) << "n=" << n << " i=" << i;
  }
  Tensor z = Tensor::zeros({17}, Device::cuda());
  z.fill_(-1.f);
  EXPECT_EQ(z.to(Device::cpu()).to_vector(), std::vector<float>(17, -1.f));
}

TEST_F(CudaDevice, CacheReusesFreedBlocks) {
  auto& a = cuda::caching_allocator();
  void* first = nullptr;
  { first = Tensor::empty({1000}, Device::cuda()).impl()->storage->data(); }
  const size_t mallocs = a.stats(0).cuda_mallocs;
  void* again = Tensor::empty({1000}, Device::cuda()).impl()->storage->data();
  EXPECT_EQ(first, again);
  EXPECT_EQ(a.stats(0).cuda_mallocs, mallocs);  // no new cudaMalloc in steady state
  a.empty_cache();
  EXPECT_EQ(a.stats(0).cached_bytes, 0u);
}

TEST_F(CudaDevice, OutOfMemoryNamesSizes) {
  const std::string msg = error_of([] { Tensor::empty({int64_t(1) << 46}, Device::cuda()); });  // 256 TiB
  EXPECT_NE(msg.find("out of GPU memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free of"), std::string::npos) << msg;
  // The device still works afterwards.
  EXPECT_EQ(Tensor::ones({2}, Device::cuda()).to(Device::cpu()).to_vector(), (std::vector<float>{1, 1}));
}

TEST_F(CudaDevice, ResourcesAreCreatedOncePerThread) {
  cuda::DeviceBuffer buf(1000, 0);
  EXPECT_NE(buf.data(), nullptr);
  buf.reserve(10, 0);  // no shrink
  EXPECT_EQ(buf.bytes(), 1000u);
  buf.reserve(5000, 0);
  EXPECT_EQ(buf.bytes(), 5000u);
  cuda::Stream s(0);
  s.synchronize();
  cudnnHandle_t h1 = cuda::cudnn_handle(0), h2 = cuda::cudnn_handle(0);
  EXPECT_EQ(h1, h2);
  EXPECT_NE(cuda::cublas_handle(0), nullptr);
  cudnnHandle_t other = nullptr;
  std::thread([&] { other = cuda::cudnn_handle(0); }).join();
  EXPECT_NE(other, h1);
}

#endif  // GLIMPSE_WITH_CUDA
