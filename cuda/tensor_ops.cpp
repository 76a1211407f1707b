// What every op's CUDA twin (core/ops/<op>.cu) shares: device pointers of tensors, and the one list
// of registrations that fills core's dispatch table.
#include "cuda/tensor_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops/reduce.h"
#include "cuda/check.h"
#include "cuda/cudnn_batch_norm.h"
#include "cuda/cudnn_conv.h"
#include "cuda/kernels.h"
#include "cuda/resources.h"

namespace glimpse::cuda {

float* device_data(const Tensor& t) {
  GLIMPSE_CHECK(t.defined() && t.device().is_cuda(), "cuda: expected a tensor on a CUDA device, got ",
                t.defined() ? t.device().str() : std::string("an undefined tensor"));
  GLIMPSE_CHECK(t.is_contiguous(), "cuda: the tensor of shape ", shape_str(t.shape()), " is not contiguous");
  return t.impl()->storage->data() + t.impl()->offset;
}

float* device_data_or_null(const Tensor& t) { return t.defined() ? device_data(t) : nullptr; }

void register_kernels() {
  DeviceKernels& k = cuda_kernels();
#define GLIMPSE_REGISTER(op) register_##op(k);
  GLIMPSE_CUDA_OPS(GLIMPSE_REGISTER)
#undef GLIMPSE_REGISTER
}

}  // namespace glimpse::cuda
