// RAII owners of CUDA resources: device buffers, streams, cuDNN and cuBLAS handles, the per-thread
// cuDNN workspace and cuDNN descriptors. Each frees its
// resource in its destructor (errors there are reported, never thrown), is movable and not copyable.
//
// cuDNN and cuBLAS handles are created once per device per thread, on first use, by cudnn_handle()
// and cublas_handle(): a handle must not be shared by threads running concurrently, and creating
// one costs milliseconds.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>

namespace glimpse::cuda {

// Raw device memory from the caching allocator (cuda/allocator.h): scratch space and workspaces.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, int device);
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }
  void reset();  // returns the memory to the cache
  // Grows (never shrinks) to at least `bytes`; the old contents are not kept. For workspaces.
  void reserve(size_t bytes, int device);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  int device_ = 0;
};

// A non-blocking stream on one device.
class Stream {
 public:
  explicit Stream(int device);
  ~Stream();
  Stream(Stream&& o) noexcept;
  Stream& operator=(Stream&&) = delete;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

class CudnnHandle {
 public:
  explicit CudnnHandle(int device);
  ~CudnnHandle();
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return handle_; }
  int device() const { return device_; }

 private:
  cudnnHandle_t handle_ = nullptr;
  int device_ = 0;
};

class CublasHandle {
 public:
  explicit CublasHandle(int device);
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }
  int device() const { return device_; }

 private:
  cublasHandle_t handle_ = nullptr;
  int device_ = 0;
};

// This thread's handle for `device` (the current device when -1), created on first use.
cudnnHandle_t cudnn_handle(int device = -1);
cublasHandle_t cublas_handle(int device = -1);

// This thread's shared cuDNN workspace on `device` (the current device when -1): grown on demand to
// at least `bytes` (the old contents are not kept) and shared by every cuDNN call of the thread, so
// steady-state training allocates no workspace. It shrinks only when memory runs out: the caching
// allocator then calls release_workspace (cuda/allocator.h). Returns null for 0 bytes. Throws the
// allocator's out-of-memory error (size asked, size free) when it cannot grow; callers that have a
// zero-workspace alternative catch it (cuda/cudnn_conv.cu).
void* workspace(size_t bytes, int device = -1);
// Returns the calling thread's workspaces to the allocator's cache (safe between calls: the work
// that used them is ordered before any later reuse on the default stream).
void release_workspace();

// ---- cuDNN descriptors (float32, NCHW) ----
class TensorDescriptor {
 public:
  TensorDescriptor();  // unset; set4d() before use
  TensorDescriptor(int64_t n, int64_t c, int64_t h, int64_t w) : TensorDescriptor() { set4d(n, c, h, w); }
  ~TensorDescriptor();
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  void set4d(int64_t n, int64_t c, int64_t h, int64_t w);  // error if a size does not fit an int
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor(int64_t k, int64_t c, int64_t r, int64_t s);  // [K, C/groups, R, S]
  ~FilterDescriptor();
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;
  cudnnFilterDescriptor_t get() const { return desc_; }

 private:
  cudnnFilterDescriptor_t desc_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  // Cross-correlation (as every framework), float accumulation, `groups` groups.
  ConvolutionDescriptor(int64_t pad_h, int64_t pad_w, int64_t stride_h, int64_t stride_w, int64_t dil_h, int64_t dil_w,
                        int64_t groups);
  ~ConvolutionDescriptor();
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
  void set_math(cudnnMathType_t math);
  cudnnConvolutionDescriptor_t get() const { return desc_; }

 private:
  cudnnConvolutionDescriptor_t desc_ = nullptr;
};

}  // namespace glimpse::cuda
