#include "core/dispatch.h"

#include "core/error.h"

namespace glimpse {

DeviceKernels& cuda_kernels() {
  static DeviceKernels table;
  return table;
}

namespace detail {

void no_device_kernel(const char* op, Device device) {
  GLIMPSE_FAIL(op, ": no ", device.is_cuda() ? "CUDA" : device.str(),
               " implementation registered (built without CUDA?); the tensor is on ", device.str(),
               ", move it with .to(Device::cpu())");
}

void operands_on_two_devices(const char* op, Device a, Device b) {
  GLIMPSE_FAIL(op, ": operands on ", a.str(), " and ", b.str(), "; move one with .to()");
}

}  // namespace detail
}  // namespace glimpse
