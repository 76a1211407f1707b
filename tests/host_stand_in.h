// A host-memory stand-in for cuda:0, for the tests that check device plumbing on machines without
// a GPU (header only; not a test executable itself).
//
// HostBackedAllocator: host memory registered as the CUDA allocator, so tensors report cuda:0 while
// living in host memory. Alone it checks dispatch's errors (no kernel registered, operands on two
// devices): no kernel ever reads such a tensor.
//
// fill_host_stand_in_kernels: fills every slot of a DeviceKernels table with its CPU twin behind a
// copy to the CPU and back (OnHost below). With both registered, a model and its inputs can live
// on "cuda:0" and a whole training step or attribution method runs through dispatch: any path that
// still reads a device tensor with Tensor::data(), or mixes devices, fails exactly as it would on a
// GPU, while the values are the CPU's (so they must equal a CPU run bit for bit). What it cannot
// check is the CUDA kernels themselves: test_cuda_kernels / test_cuda_ops do, on a GPU.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <optional>
#include <tuple>
#include <type_traits>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/storage.h"
#include "core/tensor.h"

#ifdef GLIMPSE_WITH_CUDA
#include "cuda/runtime.h"
#endif

namespace glimpse::testing {

// Host memory posing as device memory: only the device tag of its tensors matters to these tests.
class HostBackedAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override { return ::operator new(std::max<size_t>(bytes, 1)); }
  void deallocate(void* ptr, Device) override { ::operator delete(ptr); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill(float* dst, Device, float value, size_t count) override { std::fill(dst, dst + count, value); }
};

namespace detail {

// One argument of a stand-in call: a tensor on the stand-in device is replaced by a CPU copy for the
// CPU kernel; an output (Tensor&) is copied back when the stage ends. Other arguments pass through.
template <typename A>
struct Stage {
  A value;
  explicit Stage(A v) : value(std::forward<A>(v)) {}
  A get() { return std::forward<A>(value); }
};

inline Tensor host_copy(const Tensor& t) { return t.defined() ? t.to(Device::cpu()) : Tensor(); }

template <>
struct Stage<const Tensor&> {
  Tensor host;
  explicit Stage(const Tensor& t) : host(host_copy(t)) {}
  const Tensor& get() { return host; }
};

template <>
struct Stage<Tensor&> {
  Tensor& device;
  Tensor host;
  explicit Stage(Tensor& t) : device(t), host(host_copy(t)) {}
  ~Stage() {
    if (device.defined()) device.copy_from(host.to(device.device()));
  }
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;
  Tensor& get() { return host; }
};

}  // namespace detail

// OnHost<cpu_fn>::call has cpu_fn's signature and runs cpu_fn on CPU copies of its tensors.
template <auto cpu_fn>
struct OnHost;
template <typename... Args, void (*cpu_fn)(Args...)>
struct OnHost<cpu_fn> {
  static void call(Args... args) {
    std::tuple<detail::Stage<Args>...> stages(std::forward<Args>(args)...);  // each stage built in place
    std::apply([](auto&... s) { cpu_fn(s.get()...); }, stages);
  }  // the output stages copy back here
};

// Every slot of `k` -> its CPU twin on host copies (the same CPU kernels dispatch() runs on the CPU).
inline void fill_host_stand_in_kernels(DeviceKernels& k) {
#define GLIMPSE_STAND_IN(name) k.name = &OnHost<&cpu::name>::call;
  GLIMPSE_KERNELS(GLIMPSE_STAND_IN)
#undef GLIMPSE_STAND_IN
}

// Registers the stand-in for a scope: the allocator, and with `with_kernels` the kernel table too;
// restores the empty allocator slot and the previous table at the end. Does nothing (active() is
// false) where a real CUDA allocator is registered (call cuda::init() first): a GPU's must not be
// replaced. Every stand-in tensor must be gone before the scope ends.
class HostStandInScope {
 public:
  explicit HostStandInScope(bool with_kernels) {
    try {
      allocator_for(DeviceType::CUDA);
      return;  // a real device backend is registered
    } catch (const Error&) {
    }
    saved_ = cuda_kernels();
    register_allocator(DeviceType::CUDA, &allocator_);
    if (with_kernels) fill_host_stand_in_kernels(cuda_kernels());
    active_ = true;
  }
  ~HostStandInScope() {
    if (!active_) return;
    cuda_kernels() = saved_;
    register_allocator(DeviceType::CUDA, nullptr);
  }
  HostStandInScope(const HostStandInScope&) = delete;
  HostStandInScope& operator=(const HostStandInScope&) = delete;
  bool active() const { return active_; }

 private:
  HostBackedAllocator allocator_;
  DeviceKernels saved_;
  bool active_ = false;
};

// A fixture whose tests run on the stand-in with its kernel table; they skip where a real CUDA device
// registers itself (the GPU tests cover it there, and the stand-in must not replace it).
class StandInTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef GLIMPSE_WITH_CUDA
    cuda::init();
#endif
    stand_in_.emplace(/*with_kernels=*/true);
    if (!stand_in_->active())
      GTEST_SKIP() << "a real CUDA device is registered: the GPU tests cover it, the stand-in would replace it";
  }
  void TearDown() override { stand_in_.reset(); }  // the test body's tensors are gone by now

  std::optional<HostStandInScope> stand_in_;
};

}  // namespace glimpse::testing
