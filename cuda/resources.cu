#include "cuda/resources.h"

#include <memory>
#include <utility>
#include <vector>

#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/runtime.h"

namespace glimpse::cuda {

// ---- DeviceBuffer ----
DeviceBuffer::DeviceBuffer(size_t bytes, int device) : bytes_(bytes), device_(device) {
  if (bytes) ptr_ = caching_allocator().allocate(bytes, Device::cuda(device));
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), device_(o.device_) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    device_ = o.device_;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (ptr_) caching_allocator().deallocate(ptr_, Device::cuda(device_));
  ptr_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::reserve(size_t bytes, int device) {
  if (ptr_ && device == device_ && bytes <= bytes_) return;
  reset();
  *this = DeviceBuffer(bytes, device);
}

// ---- Stream ----
Stream::Stream(int device) : device_(device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

Stream::Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)), device_(o.device_) {}

Stream::~Stream() {
  if (stream_) CUDA_WARN(cudaStreamDestroy(stream_));
}

void Stream::synchronize() const { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

// ---- handles ----
CudnnHandle::CudnnHandle(int device) : device_(device) {
  DeviceGuard guard(device);
  CUDNN_CHECK(cudnnCreate(&handle_));
}

CudnnHandle::~CudnnHandle() {
  if (!handle_) return;
  cudnnStatus_t st = cudnnDestroy(handle_);
  if (st != CUDNN_STATUS_SUCCESS) detail::warn(__FILE__, __LINE__, "cudnnDestroy", cudnnGetErrorString(st));
}

CublasHandle::CublasHandle(int device) : device_(device) {
  DeviceGuard guard(device);
  CUBLAS_CHECK(cublasCreate(&handle_));
}

CublasHandle::~CublasHandle() {
  if (!handle_) return;
  cublasStatus_t st = cublasDestroy(handle_);
  if (st != CUBLAS_STATUS_SUCCESS) detail::warn(__FILE__, __LINE__, "cublasDestroy", cublasGetStatusString(st));
}

namespace {

int resolve(int device) {
  if (device >= 0) return device;
  CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

template <typename H>
H& per_thread(std::vector<std::unique_ptr<H>>& slots, int device) {
  GLIMPSE_CHECK(device < device_count(), "no CUDA device ", device, " (", device_count(), " present)");
  if (slots.size() <= static_cast<size_t>(device)) slots.resize(device + 1);
  if (!slots[device]) slots[device] = std::make_unique<H>(device);
  return *slots[device];
}

}  // namespace

cudnnHandle_t cudnn_handle(int device) {
  thread_local std::vector<std::unique_ptr<CudnnHandle>> slots;
  return per_thread(slots, resolve(device)).get();
}

cublasHandle_t cublas_handle(int device) {
  thread_local std::vector<std::unique_ptr<CublasHandle>> slots;
  return per_thread(slots, resolve(device)).get();
}

}  // namespace glimpse::cuda
