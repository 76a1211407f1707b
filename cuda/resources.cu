#include "cuda/resources.h"

#include <cstdint>
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

// ---- workspace ----
namespace {
std::vector<DeviceBuffer>& thread_workspaces() {
  thread_local std::vector<DeviceBuffer> buffers;
  return buffers;
}
}  // namespace

void* workspace(size_t bytes, int device) {
  if (bytes == 0) return nullptr;
  device = resolve(device);
  GLIMPSE_CHECK(device < device_count(), "no CUDA device ", device, " (", device_count(), " present)");
  auto& buffers = thread_workspaces();
  if (buffers.size() <= static_cast<size_t>(device)) buffers.resize(device + 1);
  DeviceBuffer& b = buffers[device];
  if (b.data() && b.bytes() >= bytes) return b.data();
  b.reset();  // give the old block back first, so that the cache may serve the larger request with it
  b.reserve(bytes, device);
  return b.data();
}

void release_workspace() {
  for (DeviceBuffer& b : thread_workspaces()) b.reset();
}

// ---- descriptors ----
namespace {
int as_int(int64_t v, const char* what) {
  GLIMPSE_CHECK(v >= 0 && v <= INT32_MAX, "cuDNN descriptor: ", what, " = ", v, " does not fit cuDNN's int");
  return static_cast<int>(v);
}
void destroy_warn(cudnnStatus_t st, const char* call) {
  if (st != CUDNN_STATUS_SUCCESS) detail::warn(__FILE__, __LINE__, call, cudnnGetErrorString(st));
}
}  // namespace

TensorDescriptor::TensorDescriptor() { CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_)); }
TensorDescriptor::~TensorDescriptor() {
  destroy_warn(cudnnDestroyTensorDescriptor(desc_), "cudnnDestroyTensorDescriptor");
}
void TensorDescriptor::set4d(int64_t n, int64_t c, int64_t h, int64_t w) {
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, as_int(n, "N"), as_int(c, "C"),
                                         as_int(h, "H"), as_int(w, "W")));
}

FilterDescriptor::FilterDescriptor(int64_t k, int64_t c, int64_t r, int64_t s) {
  const int ik = as_int(k, "K"), ic = as_int(c, "C/groups"), ir = as_int(r, "R"), is = as_int(s, "S");
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&desc_));
  const cudnnStatus_t st = cudnnSetFilter4dDescriptor(desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, ik, ic, ir, is);
  if (st != CUDNN_STATUS_SUCCESS) cudnnDestroyFilterDescriptor(desc_);
  CUDNN_CHECK(st);
}
FilterDescriptor::~FilterDescriptor() {
  destroy_warn(cudnnDestroyFilterDescriptor(desc_), "cudnnDestroyFilterDescriptor");
}

ConvolutionDescriptor::ConvolutionDescriptor(int64_t pad_h, int64_t pad_w, int64_t stride_h, int64_t stride_w,
                                             int64_t dil_h, int64_t dil_w, int64_t groups) {
  const int ph = as_int(pad_h, "pad_h"), pw = as_int(pad_w, "pad_w"), sh = as_int(stride_h, "stride_h"),
            sw = as_int(stride_w, "stride_w"), dh = as_int(dil_h, "dilation_h"), dw = as_int(dil_w, "dilation_w"),
            g = as_int(groups, "groups");
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&desc_));
  cudnnStatus_t st =
      cudnnSetConvolution2dDescriptor(desc_, ph, pw, sh, sw, dh, dw, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetConvolutionGroupCount(desc_, g);
  if (st != CUDNN_STATUS_SUCCESS) cudnnDestroyConvolutionDescriptor(desc_);
  CUDNN_CHECK(st);
}
ConvolutionDescriptor::~ConvolutionDescriptor() {
  destroy_warn(cudnnDestroyConvolutionDescriptor(desc_), "cudnnDestroyConvolutionDescriptor");
}
void ConvolutionDescriptor::set_math(cudnnMathType_t math) { CUDNN_CHECK(cudnnSetConvolutionMathType(desc_, math)); }

}  // namespace glimpse::cuda
