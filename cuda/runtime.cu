#include "cuda/check.h"
#include "cuda/runtime.h"

namespace glimpse::cuda {

const char* hint_for(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice: return "No CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi).";
    case cudaErrorInsufficientDriver: return "The NVIDIA driver is older than this CUDA runtime; update the driver.";
    case cudaErrorMemoryAllocation: return "Out of GPU memory: use a smaller batch or free other GPU work.";
    default: return "";
  }
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error: no driver / no device means zero devices
    return 0;
  }
  return n;
}

}  // namespace glimpse::cuda
