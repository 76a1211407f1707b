// Block copies behind concat and pad2d, the GPU twins of core/ops/shape.cpp, forward and backward
// side by side. Pure data movement: the results equal the CPU's bit for bit.
//
// The CUDA twin of core/ops/shape.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_shape).
#include "core/ops/shape.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

// dst[r, c] = src[r, c] for r < rows, c < width, rows `dst_stride` / `src_stride` floats apart: concat
// forward copies x's rows into out's, backward copies them back out. One thread per copied value.
__global__ void copy_rows_kernel(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
                                 int64_t width) {
  GLIMPSE_GRID_LOOP(i, rows * width) {
    const int64_t r = i / width, c = i % width;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

// One thread per output cell: the value of x under it, or `value` in the border.
__global__ void pad2d_forward_kernel(float* out, const float* x, int64_t planes, int64_t H, int64_t W, int64_t OH,
                                     int64_t OW, int64_t top, int64_t left, float value) {
  GLIMPSE_GRID_LOOP(i, planes * OH * OW) {
    const int64_t p = i / (OH * OW), h = i / OW % OH - top, w = i % OW - left;
    out[i] = h >= 0 && h < H && w >= 0 && w < W ? x[(p * H + h) * W + w] : value;
  }
}

// One thread per input cell: its gradient is the output cell it was copied to.
__global__ void pad2d_backward_kernel(float* gx, const float* gout, int64_t planes, int64_t H, int64_t W, int64_t OH,
                                      int64_t OW, int64_t top, int64_t left) {
  GLIMPSE_GRID_LOOP(i, planes * H * W) {
    const int64_t p = i / (H * W), h = i / W % H, w = i % W;
    gx[i] = gout[(p * OH + h + top) * OW + w + left];
  }
}

void check_concat(int64_t outer, int64_t len, int64_t inner, int64_t total, int64_t at, const char* op) {
  GLIMPSE_CHECK(outer >= 0 && len >= 0 && inner >= 0 && at >= 0 && at + len <= total, "cuda::", op,
                ": bad sizes outer=", outer, " len=", len, " inner=", inner, " total=", total, " at=", at);
}

void check_pad(int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t top, int64_t left,
               const char* op) {
  GLIMPSE_CHECK(planes >= 0 && H >= 0 && W >= 0 && top >= 0 && left >= 0 && top + H <= OH && left + W <= OW,
                "cuda::", op, ": bad sizes planes=", planes, " H=", H, " W=", W, " OH=", OH, " OW=", OW, " top=", top,
                " left=", left);
}

}  // namespace

void concat_forward(float* out, const float* x, int64_t outer, int64_t len, int64_t inner, int64_t total, int64_t at,
                    cudaStream_t s) {
  check_concat(outer, len, inner, total, at, "concat_forward");
  detail::launch_elements("copy_rows_kernel", outer * len * inner, s, copy_rows_kernel, out + at * inner, total * inner,
                          x, len * inner, outer, len * inner);
}

void concat_backward(float* gx, const float* gout, int64_t outer, int64_t len, int64_t inner, int64_t total, int64_t at,
                     cudaStream_t s) {
  check_concat(outer, len, inner, total, at, "concat_backward");
  detail::launch_elements("copy_rows_kernel", outer * len * inner, s, copy_rows_kernel, gx, len * inner,
                          gout + at * inner, total * inner, outer, len * inner);
}

void pad2d_forward(float* out, const float* x, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                   int64_t top, int64_t left, float value, cudaStream_t s) {
  check_pad(planes, H, W, OH, OW, top, left, "pad2d_forward");
  detail::launch_elements("pad2d_forward_kernel", planes * OH * OW, s, pad2d_forward_kernel, out, x, planes, H, W, OH,
                          OW, top, left, value);
}

void pad2d_backward(float* gx, const float* gout, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                    int64_t top, int64_t left, cudaStream_t s) {
  check_pad(planes, H, W, OH, OW, top, left, "pad2d_backward");
  detail::launch_elements("pad2d_backward_kernel", planes * H * W, s, pad2d_backward_kernel, gx, gout, planes, H, W, OH,
                          OW, top, left);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace shape_slots {

// x (forward) or gx (backward) is [outer, len, inner] around dim, a block of the concatenation
// [outer, total, inner].
void concat_forward(Tensor& out, const Tensor& x, int64_t dim, int64_t at) {
  const auto guard = on_device_of(out);
  const DimSplit s = split_at(x.shape(), dim, "concat");
  cuda::concat_forward(device_data(out), device_data(x), s.outer, s.len, s.inner, out.size(dim), at);
}

void concat_backward(Tensor& gx, const Tensor& gout, int64_t dim, int64_t at) {
  const auto guard = on_device_of(gx);
  const DimSplit s = split_at(gx.shape(), dim, "concat");
  cuda::concat_backward(device_data(gx), device_data(gout), s.outer, s.len, s.inner, gout.size(dim), at);
}

// Planes counted on the padded tensor: x may have empty planes (H or W = 0) whose padding still
// has to be written.
int64_t padded_planes(const Tensor& padded) {
  return padded.numel() / std::max<int64_t>(padded.size(-2) * padded.size(-1), 1);
}

void pad2d_forward(Tensor& out, const Tensor& x, int64_t top, int64_t left, float value) {
  const auto guard = on_device_of(out);
  cuda::pad2d_forward(device_data(out), device_data(x), padded_planes(out), x.size(-2), x.size(-1), out.size(-2),
                      out.size(-1), top, left, value);
}

void pad2d_backward(Tensor& gx, const Tensor& gout, int64_t top, int64_t left) {
  const auto guard = on_device_of(gx);
  cuda::pad2d_backward(device_data(gx), device_data(gout), padded_planes(gout), gx.size(-2), gx.size(-1), gout.size(-2),
                       gout.size(-1), top, left);
}

}  // namespace shape_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_shape(DeviceKernels& k) {
  k.concat_forward = &shape_slots::concat_forward;
  k.concat_backward = &shape_slots::concat_backward;
  k.pad2d_forward = &shape_slots::pad2d_forward;
  k.pad2d_backward = &shape_slots::pad2d_backward;
}

}  // namespace glimpse::cuda
