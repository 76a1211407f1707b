// CUDA runtime: detection, initialisation and versions. Everything here is safe to call on a
// machine without a GPU or a driver; only init() registers the CUDA device with core/storage.h.
#pragma once
#include <string>

namespace glimpse::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count();

// Makes Device::cuda(i) usable by tensors: registers the caching allocator (cuda/allocator.h) for
// DeviceType::CUDA and the CUDA kernels of the ops (cuda/tensor_ops.h, into core/dispatch.h). Returns false, and
// records why (core/storage.h: set_unavailable_reason, so that asking for a CUDA tensor names the reason), when there
// is no driver, no GPU, or the cuDNN library loaded at run time has another major version than the headers glimpse was
// compiled with. Idempotent and thread-safe; the answer is computed once.
bool init();
// Why init() returned false ("" when it returned true or was not called).
std::string unavailable_reason();

// Versions, encoded as major*1000 + minor*10 (CUDA) / major*10000 + minor*100 + patch (cuDNN 9).
int runtime_version();         // cudaRuntimeGetVersion
int driver_version();          // cudaDriverGetVersion; 0 when there is no driver
int cudnn_compiled_version();  // CUDNN_VERSION from cudnn_version.h at build time
int cudnn_runtime_version();   // cudnnGetVersion() of the library actually loaded
// "CUDA runtime 13.0, driver 12.8, cuDNN 9.13.0 (compiled against 9.13.0), 1 device(s): NVIDIA H100 ..."
std::string version_string();

// Name and memory of device i (needs a device).
std::string device_name(int device);

// Sets the current device for the scope and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

}  // namespace glimpse::cuda
