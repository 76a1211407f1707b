// Options of 2-D convolution and pooling, shared by the CPU kernels (core/ops), the CUDA kernels
// (cuda/) and the differentiable ops (autograd/functions.h), plus the output-size rule they all use.
#pragma once
#include <cstdint>

namespace glimpse {

struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  Conv2dOptions& stride(int64_t s) {
    stride_h = stride_w = s;
    return *this;
  }
  Conv2dOptions& padding(int64_t p) {
    pad_h = pad_w = p;
    return *this;
  }
  Conv2dOptions& dilation(int64_t d) {
    dilation_h = dilation_w = d;
    return *this;
  }
  Conv2dOptions& group(int64_t g) {
    groups = g;
    return *this;
  }
};

struct Pool2dOptions {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
  static Pool2dOptions square(int64_t kernel, int64_t stride, int64_t pad = 0) {
    return {kernel, kernel, stride, stride, pad, pad};
  }
  bool operator==(const Pool2dOptions&) const = default;
  // 2x2 windows, stride 2, no padding: the pooling of every VGG-style net, which has fast kernels.
  bool is_2x2_stride2() const { return *this == square(2, 2); }
};

// Output length of a sliding window (floor mode, as PyTorch's ceil_mode=False):
//   out = floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1
// May be <= 0 when the padded input is smaller than the dilated kernel; callers check.
inline int64_t window_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation = 1) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

}  // namespace glimpse
