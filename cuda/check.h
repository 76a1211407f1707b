// Checked CUDA calls: CUDA_CHECK(cudaMalloc(...)) throws glimpse::Error naming the file, line, the
// call, CUDA's message and a hint for the user.
#pragma once
#include <cuda_runtime.h>

#include "core/error.h"

namespace glimpse::cuda {
const char* hint_for(cudaError_t err);
}

#define CUDA_CHECK(call)                                                                               \
  do {                                                                                                 \
    cudaError_t glimpse_err_ = (call);                                                                 \
    if (glimpse_err_ != cudaSuccess)                                                                   \
      ::glimpse::detail::fail(__FILE__, __LINE__, #call,                                               \
                              ::glimpse::detail::concat("CUDA error ", cudaGetErrorName(glimpse_err_), ": ", \
                                                        cudaGetErrorString(glimpse_err_), ". ",        \
                                                        ::glimpse::cuda::hint_for(glimpse_err_)));     \
  } while (0)
