#include "cuda/runtime.h"

#include <cudnn_version.h>

#include <cstdio>
#include <mutex>

#include "core/storage.h"
#include "cuda/allocator.h"
#include "cuda/check.h"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

const char* hint_for(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice:
      return "No CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and nvidia-smi).";
    case cudaErrorInsufficientDriver:
      return "The NVIDIA driver is older than this CUDA runtime; update the driver.";
    case cudaErrorMemoryAllocation:
      return "Out of GPU memory: use a smaller batch or free other GPU work.";
    case cudaErrorInvalidDevice:
      return "No device with that index: see glimpse::cuda::device_count().";
    case cudaErrorNoKernelImageForDevice:
      return "This GPU's architecture is not in CMAKE_CUDA_ARCHITECTURES; rebuild with it added (e.g. "
             "-DCMAKE_CUDA_ARCHITECTURES=\"80;90\").";
    default:
      return "";
  }
}

const char* hint_for(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_NOT_INITIALIZED:
      return "cuDNN could not initialise: is a GPU present and the driver loaded?";
    case CUDNN_STATUS_ALLOC_FAILED:
      return "cuDNN ran out of GPU memory: use a smaller batch.";
    case CUDNN_STATUS_BAD_PARAM:
      return "An argument (shape, stride, descriptor) is invalid for this cuDNN call.";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "cuDNN does not support this configuration; the CPU path may.";
    case CUDNN_STATUS_VERSION_MISMATCH:
      return "The cuDNN library loaded differs from the headers glimpse was built with.";
    default:
      return "";
  }
}

const char* hint_for(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "cuBLAS could not initialise: is a GPU present and the driver loaded?";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "cuBLAS ran out of GPU memory: use a smaller batch.";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "An argument (size, leading dimension) is invalid for this cuBLAS call.";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "This GPU lacks a feature the call needs.";
    default:
      return "";
  }
}

bool is_async_fault(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorAssert:
    case cudaErrorMisalignedAddress:
    case cudaErrorIllegalInstruction:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

void require_default_stream(cudaStream_t stream, const char* op) {
  GLIMPSE_CHECK(stream == nullptr || stream == cudaStreamLegacy, "cuda::", op,
                ": only the default stream (0) is supported: temporaries return to the allocator's cache when "
                "they leave scope, which is safe only while all work is ordered on one stream");
}

namespace detail {
void warn(const char* file, int line, const char* call, const char* message) noexcept {
  const char* slash = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') slash = p + 1;
  std::fprintf(stderr, "glimpse: warning: %s failed: %s [%s:%d]\n", call, message, slash, line);
}
}  // namespace detail

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error: no driver / no device means zero devices
    return 0;
  }
  return n;
}

namespace {

struct InitState {
  std::once_flag once;
  bool ok = false;
  std::string why;
};
InitState& init_state() {
  static InitState s;
  return s;
}

// Why there is no usable device, in words, from what cudaGetDeviceCount says.
std::string no_device_reason() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  cudaGetLastError();
  if (err == cudaSuccess && n > 0) return "";
  if (err == cudaSuccess || err == cudaErrorNoDevice)
    return "no CUDA GPU was found on this machine (the CUDA runtime reports 0 devices; check nvidia-smi and "
           "CUDA_VISIBLE_DEVICES)";
  if (err == cudaErrorInsufficientDriver)
    return "no NVIDIA driver is loaded, or it is older than the CUDA runtime glimpse was built with (" +
           std::string(cudaGetErrorName(err)) + ")";
  return std::string("the CUDA runtime could not enumerate devices: ") + cudaGetErrorName(err) + ": " +
         cudaGetErrorString(err);
}

}  // namespace

bool init() {
  InitState& s = init_state();
  std::call_once(s.once, [&s] {
    s.why = no_device_reason();
    if (s.why.empty()) {
      const int compiled = cudnn_compiled_version() / 10000, loaded = cudnn_runtime_version() / 10000;
      if (compiled != loaded)
        s.why = "the cuDNN library loaded at run time is version " + std::to_string(loaded) +
                ".x but glimpse was compiled against cuDNN " + std::to_string(compiled) +
                ".x (cudnn_version.h); install the matching libcudnn or rebuild";
    }
    if (!s.why.empty()) {
      set_unavailable_reason(DeviceType::CUDA, ("CUDA backend built, but " + s.why).c_str());
      return;
    }
    // The kernels first: once the allocator is in, CUDA tensors exist and ops must find them.
    register_kernels();
    caching_allocator().set_memory_pressure_hook(&release_workspace);  // out of memory: workspaces first
    register_allocator(DeviceType::CUDA, &caching_allocator());
    s.ok = true;
  });
  return s.ok;
}

std::string unavailable_reason() { return init_state().why; }

int runtime_version() {
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) cudaGetLastError();
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) cudaGetLastError();
  return v;
}

int cudnn_compiled_version() { return CUDNN_VERSION; }
int cudnn_runtime_version() { return static_cast<int>(cudnnGetVersion()); }

std::string device_name(int device) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
}

std::string version_string() {
  auto cuda_ver = [](int v) {
    return v ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : std::string("none");
  };
  auto cudnn_ver = [](int v) {
    return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
  };
  std::string s = "CUDA runtime " + cuda_ver(runtime_version()) + ", driver " + cuda_ver(driver_version()) +
                  ", cuDNN " + cudnn_ver(cudnn_runtime_version()) + " (compiled against " +
                  cudnn_ver(cudnn_compiled_version()) + ")";
  const int n = device_count();
  s += ", " + std::to_string(n) + " device(s)";
  for (int i = 0; i < n; ++i) s += (i ? "; " : ": ") + device_name(i);
  return s;
}

DeviceGuard::DeviceGuard(int device) {
  CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != device) CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_) CUDA_WARN(cudaSetDevice(prev_));
}

}  // namespace glimpse::cuda
