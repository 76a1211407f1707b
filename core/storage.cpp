#include "core/storage.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "core/error.h"

namespace glimpse {
namespace {

// 64-byte alignment: whole cache lines and AVX-512-safe loads for Eigen's packets.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) GLIMPSE_FAIL("out of CPU memory: could not allocate ", bytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, Device) override { std::free(ptr); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill(float* dst, Device, float value, size_t count) override { std::fill(dst, dst + count, value); }
};

struct Registry {
  Allocator* cuda = nullptr;
  std::string cuda_why = "glimpse was built without the CUDA backend (configure with -DGLIMPSE_CUDA=ON on a machine with nvcc and cuDNN)";
};
Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Allocator& allocator_for(DeviceType type) {
  static CpuAllocator cpu;
  if (type == DeviceType::CPU) return cpu;
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
  data_ = static_cast<float*>(allocator_for(device.type).allocate(count * sizeof(float), device));
}

Storage::~Storage() { allocator_for(device_.type).deallocate(data_, device_); }

}  // namespace glimpse
