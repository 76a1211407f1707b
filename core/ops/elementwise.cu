// Element-wise kernels, the GPU twins of core/ops/elementwise.cpp: binary ops with broadcasting,
// unary ops, affine, the broadcasting backward (reduce_sum_to) and the channel bias add.
//
// The CUDA twin of core/ops/elementwise.h: kernels and their launchers (declared in cuda/kernels.h), the
// Tensor-level functions dispatch() reaches, and their registration (register_elementwise).
#include "core/ops/elementwise.h"

#include <cmath>

#include <cublas_v2.h>
#include "core/dispatch.h"
#include "core/error.h"

#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/resources.h"
#include "cuda/tensor_ops.h"

namespace glimpse::cuda {

namespace {

constexpr int kMaxRank = 8;

// Output sizes and, per operand, the element stride of each output dimension (0 where broadcast).
// Passed to the kernel by value (it fits in the parameter space).
struct BroadcastIndex {
  int rank = 0;
  int64_t size[kMaxRank] = {};
  int64_t stride_a[kMaxRank] = {};
  int64_t stride_b[kMaxRank] = {};
};

// Contiguous strides of `shape` read from an output of rank `rank`, 0 in broadcast dimensions.
void fill_strides(int64_t* st, const Shape& shape, const Shape& out) {
  const int rank = static_cast<int>(out.size()), shift = rank - static_cast<int>(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    st[d + shift] = shape[d] == 1 ? 0 : s;
    s *= shape[d];
  }
}

template <BinaryOp op>
__device__ inline float apply(float x, float y) {
  if constexpr (op == BinaryOp::Add)
    return x + y;
  else if constexpr (op == BinaryOp::Sub)
    return x - y;
  else if constexpr (op == BinaryOp::Mul)
    return x * y;
  else
    return x / y;
}

template <BinaryOp op>
__global__ void binary_same_kernel(float* out, const float* a, const float* b, int64_t n) {
  GLIMPSE_GRID_LOOP(i, n) out[i] = apply<op>(a[i], b[i]);
}

// Output index i decomposed from the last dimension; each operand's offset accumulates its stride.
template <BinaryOp op>
__global__ void binary_broadcast_kernel(float* out, const float* a, const float* b, int64_t n, BroadcastIndex ix) {
  GLIMPSE_GRID_LOOP(i, n) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = ix.rank - 1; d >= 0; --d) {
      const int64_t k = rem % ix.size[d];
      rem /= ix.size[d];
      oa += k * ix.stride_a[d];
      ob += k * ix.stride_b[d];
    }
    out[i] = apply<op>(a[oa], b[ob]);
  }
}

template <BinaryOp op>
void launch_binary(float* out, const float* a, const float* b, int64_t n, const BroadcastIndex* ix, cudaStream_t s) {
  if (!ix)
    detail::launch_elements("binary_same_kernel", n, s, binary_same_kernel<op>, out, a, b, n);
  else
    detail::launch_elements("binary_broadcast_kernel", n, s, binary_broadcast_kernel<op>, out, a, b, n, *ix);
}

template <UnaryOp op>
__global__ void unary_kernel(float* out, const float* x, int64_t n) {
  GLIMPSE_GRID_LOOP(i, n) {
    const float v = x[i];
    if constexpr (op == UnaryOp::Neg)
      out[i] = -v;
    else if constexpr (op == UnaryOp::Exp)
      out[i] = expf(v);
    else if constexpr (op == UnaryOp::Log)
      out[i] = logf(v);
    else if constexpr (op == UnaryOp::Square)
      out[i] = v * v;
    else if constexpr (op == UnaryOp::Abs)
      out[i] = fabsf(v);
    else if constexpr (op == UnaryOp::Sigmoid)
      out[i] = 1.f / (1.f + expf(-v));
    else
      out[i] = tanhf(v);
  }
}

template <UnaryOp op>
void launch_unary(float* out, const float* x, int64_t n, cudaStream_t s) {
  detail::launch_elements("unary_kernel", n, s, unary_kernel<op>, out, x, n);
}

__global__ void affine_kernel(float* out, const float* x, int64_t n, float scale, float shift) {
  GLIMPSE_GRID_LOOP(i, n) out[i] = scale * x[i] + shift;
}

// The input's dimensions split into those kept in the output (in order, so the flat output index
// is a mixed-radix number over them) and those summed away.
struct SumToIndex {
  int kept = 0, summed = 0;
  int64_t kept_size[kMaxRank] = {}, kept_stride[kMaxRank] = {};
  int64_t sum_size[kMaxRank] = {}, sum_stride[kMaxRank] = {};
  int64_t sum_count = 1;
};

// One block per output element (grid-stride over outputs); the block's threads stride over the
// summed index space, accumulating in double, then a fixed-order block reduction.
__global__ void reduce_sum_to_kernel(float* out, const float* in, int64_t out_n, SumToIndex ix) {
  for (int64_t o = blockIdx.x; o < out_n; o += gridDim.x) {
    int64_t rem = o, base = 0;
    for (int d = ix.kept - 1; d >= 0; --d) {
      base += (rem % ix.kept_size[d]) * ix.kept_stride[d];
      rem /= ix.kept_size[d];
    }
    double acc = 0;
    for (int64_t r = threadIdx.x; r < ix.sum_count; r += blockDim.x) {
      int64_t rr = r, off = base;
      for (int d = ix.summed - 1; d >= 0; --d) {
        off += (rr % ix.sum_size[d]) * ix.sum_stride[d];
        rr /= ix.sum_size[d];
      }
      acc += in[off];
    }
    acc = detail::block_sum(acc);
    if (threadIdx.x == 0) out[o] = static_cast<float>(acc);
  }
}

__global__ void bias_add_kernel(float* y, const float* x, const float* b, int64_t n, int64_t C, int64_t L) {
  GLIMPSE_GRID_LOOP(i, n) y[i] = x[i] + b[(i / L) % C];
}

// gb[c] = sum over n and l of gy[n, c, l]: one block per channel.
__global__ void bias_add_backward_kernel(float* gb, const float* gy, int64_t N, int64_t C, int64_t L) {
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < N * L; j += blockDim.x) acc += gy[((j / L) * C + c) * L + j % L];
    acc = detail::block_sum(acc);
    if (threadIdx.x == 0) gb[c] = static_cast<float>(acc);
  }
}

}  // namespace

void binary_forward(float* out, const Shape& out_shape, const float* a, const Shape& a_shape, const float* b,
                    const Shape& b_shape, BinaryOp op, cudaStream_t s) {
  GLIMPSE_CHECK(out_shape.size() <= kMaxRank, "cuda::binary_forward: rank ", out_shape.size(), " of ",
                shape_str(out_shape), " exceeds ", kMaxRank);
  GLIMPSE_CHECK(broadcast_shapes(a_shape, b_shape, "cuda::binary_forward") == out_shape,
                "cuda::binary_forward: output ", shape_str(out_shape), " is not the broadcast of ", shape_str(a_shape),
                " and ", shape_str(b_shape));
  const int64_t n = shape_numel(out_shape);
  if (n == 0) return;
  BroadcastIndex ix;
  const bool same = a_shape == out_shape && b_shape == out_shape;
  if (!same) {
    ix.rank = static_cast<int>(out_shape.size());
    for (int d = 0; d < ix.rank; ++d) ix.size[d] = out_shape[d];
    fill_strides(ix.stride_a, a_shape, out_shape);
    fill_strides(ix.stride_b, b_shape, out_shape);
  }
  const BroadcastIndex* pix = same ? nullptr : &ix;
  switch (op) {
    case BinaryOp::Add:
      return launch_binary<BinaryOp::Add>(out, a, b, n, pix, s);
    case BinaryOp::Sub:
      return launch_binary<BinaryOp::Sub>(out, a, b, n, pix, s);
    case BinaryOp::Mul:
      return launch_binary<BinaryOp::Mul>(out, a, b, n, pix, s);
    case BinaryOp::Div:
      return launch_binary<BinaryOp::Div>(out, a, b, n, pix, s);
  }
}

void unary_forward(float* out, const float* x, int64_t n, UnaryOp op, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::unary_forward: negative size ", n);
  switch (op) {
    case UnaryOp::Neg:
      return launch_unary<UnaryOp::Neg>(out, x, n, s);
    case UnaryOp::Exp:
      return launch_unary<UnaryOp::Exp>(out, x, n, s);
    case UnaryOp::Log:
      return launch_unary<UnaryOp::Log>(out, x, n, s);
    case UnaryOp::Square:
      return launch_unary<UnaryOp::Square>(out, x, n, s);
    case UnaryOp::Abs:
      return launch_unary<UnaryOp::Abs>(out, x, n, s);
    case UnaryOp::Sigmoid:
      return launch_unary<UnaryOp::Sigmoid>(out, x, n, s);
    case UnaryOp::Tanh:
      return launch_unary<UnaryOp::Tanh>(out, x, n, s);
  }
}

void affine_forward(float* out, const float* x, int64_t n, float scale, float shift, cudaStream_t s) {
  GLIMPSE_CHECK(n >= 0, "cuda::affine_forward: negative size ", n);
  detail::launch_elements("affine_kernel", n, s, affine_kernel, out, x, n, scale, shift);
}

void reduce_sum_to(float* out, const Shape& out_shape, const float* in, const Shape& in_shape, cudaStream_t s) {
  const int rank = static_cast<int>(in_shape.size());
  GLIMPSE_CHECK(rank <= kMaxRank && out_shape.size() <= in_shape.size(), "cuda::reduce_sum_to: cannot reduce ",
                shape_str(in_shape), " to ", shape_str(out_shape));
  const int shift = rank - static_cast<int>(out_shape.size());
  SumToIndex ix;
  int64_t stride = 1;
  // Walk the input's dimensions from the last, classifying each as kept or summed.
  int64_t kept_size[kMaxRank], kept_stride[kMaxRank], sum_size[kMaxRank], sum_stride[kMaxRank];
  for (int d = rank - 1; d >= 0; --d) {
    const int64_t od = d >= shift ? out_shape[d - shift] : 1;
    GLIMPSE_CHECK(od == in_shape[d] || od == 1, "cuda::reduce_sum_to: cannot reduce ", shape_str(in_shape), " to ",
                  shape_str(out_shape));
    if (od == in_shape[d] && od != 1) {
      kept_size[ix.kept] = od;
      kept_stride[ix.kept++] = stride;
    } else if (in_shape[d] != 1) {
      sum_size[ix.summed] = in_shape[d];
      sum_stride[ix.summed++] = stride;
      ix.sum_count *= in_shape[d];
    }
    stride *= in_shape[d];
  }
  // Collected last-first; the kernel wants first-to-last (the last dimension varies fastest).
  for (int i = 0; i < ix.kept; ++i) {
    ix.kept_size[i] = kept_size[ix.kept - 1 - i];
    ix.kept_stride[i] = kept_stride[ix.kept - 1 - i];
  }
  for (int i = 0; i < ix.summed; ++i) {
    ix.sum_size[i] = sum_size[ix.summed - 1 - i];
    ix.sum_stride[i] = sum_stride[ix.summed - 1 - i];
  }
  const int64_t out_n = shape_numel(out_shape);
  if (out_n == 0) return;
  if (shape_numel(in_shape) == 0) {
    CUDA_CHECK(cudaMemsetAsync(out, 0, out_n * sizeof(float), s));
    return;
  }
  detail::launch_rows("reduce_sum_to_kernel", out_n, s, reduce_sum_to_kernel, out, in, out_n, ix);
}

// Empty sizes are valid (as on the CPU): nothing to add, and a backward over an empty batch adds 0.
void bias_add_forward(float* y, const float* x, const float* b, int64_t N, int64_t C, int64_t L, cudaStream_t s) {
  GLIMPSE_CHECK(N >= 0 && C >= 0 && L >= 0, "cuda::bias_add_forward: bad sizes N=", N, " C=", C, " L=", L);
  detail::launch_elements("bias_add_kernel", N * C * L, s, bias_add_kernel, y, x, b, N * C * L, C, L);
}

void bias_add_backward(float* gb, const float* gy, int64_t N, int64_t C, int64_t L, cudaStream_t s) {
  GLIMPSE_CHECK(N >= 0 && C >= 0 && L >= 0, "cuda::bias_add_backward: bad sizes N=", N, " C=", C, " L=", L);
  detail::launch_rows("bias_add_backward_kernel", C, s, bias_add_backward_kernel, gb, gy, N, C, L);
}

// ---- the Tensor-level functions (the dispatch slots), named <op>_slots:: so that the registration
// below cannot pick a launcher of the same name ----
namespace elementwise_slots {

void binary_forward(Tensor& out, const Tensor& a, const Tensor& b, BinaryOp op) {
  const auto guard = on_device_of(out);
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  cuda::binary_forward(device_data(out), out.shape(), device_data(ac), ac.shape(), device_data(bc), bc.shape(), op);
}

void unary_forward(Tensor& out, const Tensor& x, UnaryOp op) {
  const auto guard = on_device_of(out);
  cuda::unary_forward(device_data(out), device_data(x.contiguous()), out.numel(), op);
}

void affine_forward(Tensor& out, const Tensor& x, float scale, float shift) {
  const auto guard = on_device_of(out);
  cuda::affine_forward(device_data(out), device_data(x.contiguous()), out.numel(), scale, shift);
}

void reduce_sum_to(Tensor& out, const Tensor& in) {
  // The CPU twin refuses a shape `in` does not broadcast from; so does this, before any launch.
  GLIMPSE_CHECK(broadcast_shapes(out.shape(), in.shape(), "sum_to") == in.shape(), "sum_to: cannot reduce ",
                shape_str(in.shape()), " to ", shape_str(out.shape()));
  const auto guard = on_device_of(out);
  const Tensor ic = in.contiguous();
  cuda::reduce_sum_to(device_data(out), out.shape(), device_data(ic), ic.shape());
}

// y += alpha x (Tensor::add_: gradient accumulation, optimizers), through cuBLAS.
void add_scaled(Tensor& y, const Tensor& x, float alpha) {
  const auto guard = on_device_of(y);
  CUBLAS_CHECK(cublasSaxpy_64(cublas_handle(), y.numel(), &alpha, device_data(x), 1, device_data(y), 1));
}
}  // namespace elementwise_slots

// One line per slot; each picks the Tensor-level overload by the slot's type, so a signature that
// drifts from the CPU twin's stops the build here.
void register_elementwise(DeviceKernels& k) {
  k.binary_forward = &elementwise_slots::binary_forward;
  k.unary_forward = &elementwise_slots::unary_forward;
  k.affine_forward = &elementwise_slots::affine_forward;
  k.reduce_sum_to = &elementwise_slots::reduce_sum_to;
  k.add_scaled = &elementwise_slots::add_scaled;
}

}  // namespace glimpse::cuda
