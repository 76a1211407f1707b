#include "cuda/allocator.h"

#include <algorithm>
#include <cstring>

#include "cuda/check.h"
#include "cuda/runtime.h"

namespace glimpse::cuda {
namespace {

// One thread per element, grid-stride so any count fits a bounded grid.
__global__ void fill_kernel(float* dst, float value, size_t count) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

std::string mib(size_t bytes) {
  return std::to_string(bytes >> 20) + "." + std::to_string(((bytes & ((1u << 20) - 1)) * 10) >> 20) + " MiB";
}

}  // namespace

size_t CachingAllocator::round_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kSmallLimit = size_t(1) << 20;
  bytes = std::max<size_t>(bytes, 1);
  if (bytes <= kSmallLimit) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t bytes, Device device) {
  GLIMPSE_CHECK(device.is_cuda(), "CachingAllocator::allocate: device ", device.str(), " is not a CUDA device");
  const size_t size = round_size(bytes);
  std::unique_lock<std::mutex> lock(mu_);
  Stats& st = stats_[device.index];
  auto& cache = free_[device.index];
  // Smallest cached block that fits, unless it would waste more than half of itself.
  auto it = cache.lower_bound(size);
  if (it != cache.end() && it->first <= 2 * size) {
    void* p = it->second;
    const size_t got = it->first;
    cache.erase(it);
    live_[p] = {got, device.index};
    st.cached_bytes -= got;
    st.in_use_bytes += got;
    st.peak_in_use_bytes = std::max(st.peak_in_use_bytes, st.in_use_bytes);
    ++st.cache_hits;
    return p;
  }
  DeviceGuard guard(device.index);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cached_locked(device.index);  // give the cache back to the driver and try once more
    err = cudaMalloc(&p, size);
  }
  if (err == cudaErrorMemoryAllocation && pressure_hook_) {
    // Workspaces (cuDNN's, which only grow) hold memory no tensor uses: back into the cache, then
    // to the driver. The hook frees through deallocate(), which takes the lock.
    cudaGetLastError();
    const PressureHook hook = pressure_hook_;
    lock.unlock();
    hook();
    lock.lock();
    release_cached_locked(device.index);
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
    GLIMPSE_FAIL("out of GPU memory on ", device.str(), ": asked for ", mib(size), " (", bytes, " bytes), ",
                 mib(free_b), " free of ", mib(total_b), ", ", mib(st.in_use_bytes), " held by glimpse tensors (",
                 cudaGetErrorName(err), "). Use a smaller batch or image size, or free other GPU work.");
  }
  ++st.cuda_mallocs;
  live_[p] = {size, device.index};
  st.in_use_bytes += size;
  st.peak_in_use_bytes = std::max(st.peak_in_use_bytes, st.in_use_bytes);
  return p;
}

void CachingAllocator::deallocate(void* ptr, Device) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) {
    detail::warn(__FILE__, __LINE__, "CachingAllocator::deallocate", "pointer was not allocated here; ignored");
    return;
  }
  const Block b = it->second;
  live_.erase(it);
  Stats& st = stats_[b.device];
  st.in_use_bytes -= b.size;
  st.cached_bytes += b.size;
  free_[b.device].emplace(b.size, ptr);
}

void CachingAllocator::release_cached_locked(int device) {
  auto& cache = free_[device];
  DeviceGuard guard(device);
  for (auto& [size, p] : cache) {
    CUDA_WARN(cudaFree(p));
    stats_[device].cached_bytes -= size;
  }
  cache.clear();
}

void CachingAllocator::set_memory_pressure_hook(PressureHook hook) {
  std::lock_guard<std::mutex> lock(mu_);
  pressure_hook_ = hook;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [device, cache] : free_) {
    if (!cache.empty()) release_cached_locked(device);
  }
}

CachingAllocator::Stats CachingAllocator::stats(int device) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = stats_.find(device);
  return it == stats_.end() ? Stats{} : it->second;
}

void CachingAllocator::copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  if (dst_dev.is_cuda() && src_dev.is_cuda() && dst_dev.index != src_dev.index) {
    CUDA_CHECK(cudaMemcpyPeer(dst, dst_dev.index, src, src_dev.index, bytes));
    return;
  }
  const cudaMemcpyKind kind = dst_dev.is_cpu()   ? cudaMemcpyDeviceToHost
                              : src_dev.is_cpu() ? cudaMemcpyHostToDevice
                                                 : cudaMemcpyDeviceToDevice;
  DeviceGuard guard(dst_dev.is_cuda() ? dst_dev.index : src_dev.index);
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
}

void CachingAllocator::fill(float* dst, Device device, float value, size_t count) {
  if (count == 0) return;
  if (device.is_cpu()) {
    std::fill(dst, dst + count, value);
    return;
  }
  DeviceGuard guard(device.index);
  const int threads = 256;
  const size_t want = (count + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>(want, 4096));
  fill_kernel<<<blocks, threads>>>(dst, value, count);
  // No synchronisation: everything runs on the legacy default stream, so every later kernel and
  // cudaMemcpy is ordered after this one.
  CUDA_CHECK(cudaGetLastError());
}

CachingAllocator& caching_allocator() {
  static CachingAllocator* a = new CachingAllocator();  // leaked on purpose: see the header
  return *a;
}

}  // namespace glimpse::cuda
