#include "core/storage.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace glimpse {
namespace {

// 64-byte alignment: whole cache lines and AVX-512-safe loads for Eigen's packets.
//
// Large blocks are cached: training allocates and frees the same activation and gradient buffers
// every step, and glibc serves blocks over 128 KiB with a fresh mmap, so each step paid a page
// fault per 4 KiB page touched (about 11% of a W1 training step, bench/NOTES.md). A freed block of
// 128 KiB or more goes to a free list of its exact size (training repeats exact sizes) and is
// handed out again; at most kMaxCached bytes wait there. Under AddressSanitizer nothing is cached,
// so use-after-free stays detectable.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    if (kCache && rounded >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(rounded);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= rounded;
        return p;
      }
    }
    // The block's size sits in a 64-byte header in front of it, so deallocate knows it.
    auto* base = static_cast<char*>(std::aligned_alloc(64, rounded + 64));
    if (!base) GLIMPSE_FAIL("out of CPU memory: could not allocate ", bytes, " bytes");
    *reinterpret_cast<size_t*>(base) = rounded;
    return base + 64;
  }
  void deallocate(void* ptr, Device) override {
    if (!ptr) return;
    char* base = static_cast<char*>(ptr) - 64;
    const size_t rounded = *reinterpret_cast<size_t*>(base);
    if (kCache && rounded >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + rounded <= kMaxCached) {
        free_[rounded].push_back(ptr);
        cached_ += rounded;
        return;
      }
    }
    std::free(base);
  }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill(float* dst, Device, float value, size_t count) override { std::fill(dst, dst + count, value); }

 private:
#if defined(__SANITIZE_ADDRESS__)
  static constexpr bool kCache = false;
#else
  static constexpr bool kCache = true;
#endif
  static constexpr size_t kMinCached = size_t(128) << 10;
  static constexpr size_t kMaxCached = size_t(512) << 20;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

struct Registry {
  Allocator* cuda = nullptr;
  std::string cuda_why =
      "glimpse was built without the CUDA backend (configure with -DGLIMPSE_CUDA=ON on a machine with nvcc and cuDNN)";
};
Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Allocator& allocator_for(DeviceType type) {
  // Never destroyed: tensors held by other static objects may be freed after main returns.
  static CpuAllocator* cpu = new CpuAllocator();
  if (type == DeviceType::CPU) return *cpu;
  auto& r = registry();
  if (!r.cuda) GLIMPSE_FAIL("CUDA device requested but unavailable: ", r.cuda_why);
  return *r.cuda;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  GLIMPSE_CHECK(type == DeviceType::CUDA, "only the CUDA allocator can be registered");
  registry().cuda = allocator;
}

void set_unavailable_reason(DeviceType type, const char* why) {
  if (type == DeviceType::CUDA) registry().cuda_why = why;
}

Storage::Storage(size_t count, Device device) : count_(count), device_(device) {
  // count * sizeof(float) must not wrap (a shape of 2^62 elements passes the int64 shape rule).
  GLIMPSE_CHECK(count <= (SIZE_MAX - 128) / sizeof(float), "cannot allocate ", count,
                " float32 elements: the byte size exceeds the address space");
  data_ = static_cast<float*>(allocator_for(device.type).allocate(count * sizeof(float), device));
}

Storage::~Storage() { allocator_for(device_.type).deallocate(data_, device_); }

}  // namespace glimpse
