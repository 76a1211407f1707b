// Storage: one flat float32 buffer on one device, shared (via shared_ptr) by every tensor view of it.
// Memory comes from the Allocator registered for the device type: the CPU one is built in; the CUDA
// backend registers its caching allocator when it is linked in and a device is present.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace glimpse {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes, Device device) = 0;
  virtual void deallocate(void* ptr, Device device) = 0;
  // Copies `bytes` between any two devices this allocator's backend knows.
  virtual void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) = 0;
  virtual void fill(float* dst, Device device, float value, size_t count) = 0;
};

// The allocator for a device type; throws a clear error if that backend is not available.
Allocator& allocator_for(DeviceType type);
// Called by a backend (the CUDA one) to make its devices usable. `why_unavailable` is reported
// when no allocator could be registered (no driver, no GPU, built without CUDA).
void register_allocator(DeviceType type, Allocator* allocator);
void set_unavailable_reason(DeviceType type, const char* why);

class Storage {
 public:
  Storage(size_t count, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return count_; }
  Device device() const { return device_; }

 private:
  float* data_ = nullptr;
  size_t count_ = 0;
  Device device_;
};

}  // namespace glimpse
