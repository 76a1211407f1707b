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
}  // namespace glimpse::cuda

#define CUDA_CHECK(call)                                                                               \
  do {                                                                                                 \
    cudaError_t glimpse_err_ = (call);                                                                 \
    if (glimpse_err_ != cudaSuccess)                                                                   \
      ::glimpse::detail::fail(__FILE__, __LINE__, #call,                                               \
                              ::glimpse::detail::concat("CUDA error ", cudaGetErrorName(glimpse_err_), ": ", \
                                                        cudaGetErrorString(glimpse_err_), ". ",        \
                                                        ::glimpse::cuda::hint_for(glimpse_err_)));     \
  } while (0)

#define CUDNN_CHECK(call)                                                                              \
  do {                                                                                                 \
    cudnnStatus_t glimpse_st_ = (call);                                                                \
    if (glimpse_st_ != CUDNN_STATUS_SUCCESS)                                                           \
      ::glimpse::detail::fail(__FILE__, __LINE__, #call,                                               \
                              ::glimpse::detail::concat("cuDNN error ", static_cast<int>(glimpse_st_), \
                                                        ": ", cudnnGetErrorString(glimpse_st_), ". ",  \
                                                        ::glimpse::cuda::hint_for(glimpse_st_)));      \
  } while (0)

#define CUBLAS_CHECK(call)                                                                             \
  do {                                                                                                 \
    cublasStatus_t glimpse_st_ = (call);                                                               \
    if (glimpse_st_ != CUBLAS_STATUS_SUCCESS)                                                          \
      ::glimpse::detail::fail(__FILE__, __LINE__, #call,                                               \
                              ::glimpse::detail::concat("cuBLAS error ", cublasGetStatusName(glimpse_st_), \
                                                        ": ", cublasGetStatusString(glimpse_st_), ". ", \
                                                        ::glimpse::cuda::hint_for(glimpse_st_)));      \
  } while (0)

// For the few places that must not throw (destructors): report and carry on.
#define CUDA_WARN(call)                                                                                \
  do {                                                                                                 \
    cudaError_t glimpse_err_ = (call);                                                                 \
    if (glimpse_err_ != cudaSuccess && glimpse_err_ != cudaErrorCudartUnloading)                       \
      ::glimpse::cuda::detail::warn(__FILE__, __LINE__, #call, cudaGetErrorString(glimpse_err_));     \
  } while (0)

namespace glimpse::cuda::detail {
void warn(const char* file, int line, const char* call, const char* message) noexcept;
}
