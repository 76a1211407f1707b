// Checked CUDA, cuDNN and cuBLAS calls. CUDA_CHECK(cudaMalloc(...)), CUDNN_CHECK(cudnnCreate(...)) and
// CUBLAS_CHECK(cublasCreate(...)) throw glimpse::Error naming the file, line, the call, the library's
// own name and message for the status, and a hint for the user where one helps.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"

namespace glimpse::cuda {
const char* hint_for(cudaError_t err);
const char* hint_for(cudnnStatus_t status);
const char* hint_for(cublasStatus_t status);

// True for the errors a faulting kernel leaves behind (an illegal address, a device-side assert, a
// launch failure, ...). They arrive asynchronously, so the first CUDA call that checks after the
// fault reports them: the kernel at fault ran EARLIER than the call that says so.
bool is_async_fault(cudaError_t err);

// glimpse queues all GPU work on the legacy default stream (0): its temporaries (scratch buffers,
// cuDNN workspaces) go back to the caching allocator when they leave scope, before the GPU has run
// the work that uses them, which is safe only while every later use is queued behind that work on
// the same stream. Until temporaries record events, every launcher refuses any other stream, naming
// `op`, instead of risking a silent reuse.
void require_default_stream(cudaStream_t stream, const char* op);
}  // namespace glimpse::cuda

#define CUDA_CHECK(call)                                                                                               \
  do {                                                                                                                 \
    cudaError_t glimpse_err_ = (call);                                                                                 \
    if (glimpse_err_ != cudaSuccess)                                                                                   \
      ::glimpse::detail::fail(                                                                                         \
          __FILE__, __LINE__, #call,                                                                                   \
          ::glimpse::detail::concat("CUDA error ", cudaGetErrorName(glimpse_err_), ": ",                               \
                                    cudaGetErrorString(glimpse_err_), ". ", ::glimpse::cuda::hint_for(glimpse_err_))); \
  } while (0)

#define CUDNN_CHECK(call)                                                                                             \
  do {                                                                                                                \
    cudnnStatus_t glimpse_st_ = (call);                                                                               \
    if (glimpse_st_ != CUDNN_STATUS_SUCCESS)                                                                          \
      ::glimpse::detail::fail(                                                                                        \
          __FILE__, __LINE__, #call,                                                                                  \
          ::glimpse::detail::concat("cuDNN error ", static_cast<int>(glimpse_st_), ": ",                              \
                                    cudnnGetErrorString(glimpse_st_), ". ", ::glimpse::cuda::hint_for(glimpse_st_))); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                                       \
  do {                                                                                                           \
    cublasStatus_t glimpse_st_ = (call);                                                                         \
    if (glimpse_st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
      ::glimpse::detail::fail(__FILE__, __LINE__, #call,                                                         \
                              ::glimpse::detail::concat("cuBLAS error ", cublasGetStatusName(glimpse_st_), ": ", \
                                                        cublasGetStatusString(glimpse_st_), ". ",                \
                                                        ::glimpse::cuda::hint_for(glimpse_st_)));                \
  } while (0)

// For the few places that must not throw (destructors): report and carry on.
#define CUDA_WARN(call)                                                                           \
  do {                                                                                            \
    cudaError_t glimpse_err_ = (call);                                                            \
    if (glimpse_err_ != cudaSuccess && glimpse_err_ != cudaErrorCudartUnloading)                  \
      ::glimpse::cuda::detail::warn(__FILE__, __LINE__, #call, cudaGetErrorString(glimpse_err_)); \
  } while (0)

namespace glimpse::cuda::detail {
void warn(const char* file, int line, const char* call, const char* message) noexcept;
}
