// The CUDA caching allocator: device memory for tensors (core/storage.h's Allocator) without a
// cudaMalloc/cudaFree per op in steady state.
//
// Requests are rounded up (to 512 B below 1 MiB, to 2 MiB above) and freed blocks are kept in a
// per-device cache keyed by rounded size; a request takes the smallest cached block that fits and is
// at most twice its size, else cudaMalloc. When cudaMalloc runs out of memory the cache is released
// (cudaFree) and the allocation retried; then the memory-pressure hook runs (cuda::init sets it to
// give back the calling thread's cuDNN workspaces, cuda/resources.h), the cache is released again and
// the allocation retried a last time. If it still fails the error gives the size asked and the size
// free, and nothing already allocated is touched.
//
// All glimpse GPU work runs on the legacy default stream for now, so a block returned to the cache
// can be reused at once: later work on that stream is ordered after the work that used it.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/storage.h"

namespace glimpse::cuda {

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device device) override;
  void deallocate(void* ptr, Device device) override;
  // cpu<->cuda and cuda<->cuda (same or different devices) with cudaMemcpy; cpu<->cpu with memcpy.
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) override;
  // Fills `count` floats on `device` with a small kernel (asynchronous, on the default stream).
  void fill(float* dst, Device device, float value, size_t count) override;

  struct Stats {
    size_t in_use_bytes = 0;  // handed out, not yet returned
    size_t cached_bytes = 0;  // returned, kept for reuse
    size_t peak_in_use_bytes = 0;
    size_t cuda_mallocs = 0;  // calls to cudaMalloc so far
    size_t cache_hits = 0;
  };
  Stats stats(int device) const;
  // Frees every cached (unused) block of every device.
  void empty_cache();
  // Called, without the allocator's lock, when an allocation still fails after the cache was
  // released: it should return memory held for reuse elsewhere (workspaces) to this allocator.
  using PressureHook = void (*)();
  void set_memory_pressure_hook(PressureHook hook);

  static size_t round_size(size_t bytes);

 private:
  struct Block {
    size_t size;
    int device;
  };
  void release_cached_locked(int device);  // cudaFree of one device's cached blocks

  mutable std::mutex mu_;
  PressureHook pressure_hook_ = nullptr;
  std::unordered_map<void*, Block> live_;             // pointer -> block handed out
  std::map<int, std::multimap<size_t, void*>> free_;  // device -> (size -> cached block)
  std::map<int, Stats> stats_;
};

// The process-wide instance (never destroyed, so tensors freed during exit stay safe).
CachingAllocator& caching_allocator();

}  // namespace glimpse::cuda
